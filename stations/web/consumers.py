"""The dashboard's live socket: one per open page, pushing re-read fragments on domain events.

Protocol. A page connects to /ws/dashboard/?page=<name>&<the page's parameters> through the htmx
ws extension (templates/base.html). The socket
  1. refuses anonymous users and foreign origins at the handshake (an origin is the page's own
     only with the same scheme, host and port, or one of CSRF_TRUSTED_ORIGINS);
  2. takes only the events of the groups of what the page shows and the user may see (events
     travel in batches on one channel-layer group, stations/events.py);
  3. sends the page's live fragments at once, so a reconnected page catches up on what it missed;
  4. on events, after a short pause that folds a burst into one read, re-reads the database and
     sends the fragments the events touched.
Every fragment's root element carries the id of the element it replaces: the ws extension swaps
each top-level element out of band. A message holds either table parts (<tbody>, <tr>) only or
none: the browser's parser drops a table part that follows another element. The browser sends
nothing.

When what the user may see changes (a membership added, changed or removed, a logout), their
sockets close with ACCESS_CHANGED: the page, reloaded, shows what they may see now.

Events are hints: the channel layer drops messages under load, so nothing shown comes from an
event's payload, and a lost event costs only freshness until the next one or a reconnect.
"""

import asyncio
import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist
from django.http.request import validate_host

from accounts import access
from csms import proxies
from stations import events
from stations.access import may_operate_station, stations_for
from stations.models import Connector, Station, Transaction
from stations.web import fragments

log = logging.getLogger(__name__)

SOCKET_PATH = "/ws/dashboard/"
# The close code that tells the page (static/js/dashboard.js) that the user's access changed:
# an application code, which every supported server can send, and htmx does not reconnect on.
ACCESS_CHANGED = 4001


def live_url(params: dict[str, str]) -> str:
    return f"{SOCKET_PATH}?{urlencode(params)}"


def visible_groups(user: AbstractBaseUser) -> list[str]:
    """Everything for those who see everything, else the groups of the user's sites."""
    if access.sees_everything(user):
        return [events.EVERYTHING]
    return [events.site_group(pk) for pk in access.sites_for(user).values_list("pk", flat=True)]


def _number(params: dict[str, str], name: str) -> int | None:
    value = params.get(name, "")
    return int(value) if value.isdigit() else None


class LivePage:
    """What one open page shows live, for one user; its methods run on the database thread."""

    groups: list[str]
    # Kinds of events the page has nothing to show for: dropped before they cost a read.
    ignored: frozenset[str] = frozenset({events.FRAMES_LOGGED})
    # Seconds to gather events before one re-read: long enough to fold a charger's burst
    # (status, meter values, transaction) into one read.
    pause = 0.2
    # Events after which the nav's count of stations awaiting approval is read again.
    PENDING_COUNT_EVENTS = {"station.registration"}

    def __init__(self, user: AbstractBaseUser) -> None:
        self.user = user
        self.may_operate = access.may_operate(user)

    def initial(self) -> list[str]:
        """The messages that show the page's live parts as they are now."""
        raise NotImplementedError

    def update(self, batch: list[dict]) -> list[str]:
        """The messages that show what a batch of events may have changed."""
        raise NotImplementedError

    def changed(self, batch: list[dict]) -> list[str]:
        """The page's own messages, then the nav's pending count if the batch may change it
        (its own message: the page's may be table parts, which nothing else may join)."""
        messages = self.update(batch)
        if any(event["event"] in self.PENDING_COUNT_EVENTS for event in batch):
            messages.append(self.render(
                "pending_count", pending_count=fragments.pending_stations(self.user).count()))
        return messages

    def render(self, name: str, **context) -> str:
        return fragments.render(name, {"may_operate": self.may_operate, "viewer": self.user,
                                       **context})


class OverviewPage(LivePage):
    # Network-wide counts hear every charger's events: re-read them at most twice a second.
    pause = 0.5

    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        self.groups = visible_groups(user)

    def initial(self) -> list[str]:
        return [self._counters() + self._alerts()]

    def update(self, batch: list[dict]) -> list[str]:
        alerting = any(
            event["event"] in ("station.security", "station.refused")
            or (event["event"] == "connector.status"
                and event["data"].get("status") == Connector.Status.FAULTED)
            for event in batch
        )
        return [self._counters() + (self._alerts() if alerting else "")]

    def _counters(self) -> str:
        return self.render("counters", counts=fragments.overview_counts(self.user))

    def _alerts(self) -> str:
        return self.render("alerts", alerts=fragments.alerts(self.user))


class SitesPage(LivePage):
    pause = 0.5

    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        self.groups = visible_groups(user)
        self.number = _number(params, "p") or 1
        self.shown: set[int] = set()

    def initial(self) -> list[str]:
        page = fragments.page_of(fragments.sites(self.user), self.number)
        self.shown = {site.pk for site in page}
        return [self.render("sites_body", sites=page)]

    def update(self, batch: list[dict]) -> list[str]:
        touched = {event["site_id"] for event in batch} & self.shown
        if not touched:
            return []
        return ["".join(self.render("site_row", site=site)
                        for site in fragments.sites(self.user).filter(pk__in=touched))]


class SitePage(LivePage):
    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        self.site = access.sites_for(user).get(pk=_number(params, "site"))
        self.groups = [events.site_group(self.site.pk)]
        self.number = _number(params, "p") or 1
        self.shown: set[str] = set()

    def initial(self) -> list[str]:
        rows = fragments.station_rows(self.site.stations.all(), self.number)
        self.shown = {station.pk for station in rows}
        return [self._counters(), self.render("stations_body", rows=rows, site=self.site)]

    def update(self, batch: list[dict]) -> list[str]:
        touched = {event["station_id"] for event in batch} & self.shown
        stations = fragments.with_connectors(
            list(self.site.stations.filter(pk__in=touched).order_by("pk"))) if touched else []
        return [self._counters(), "".join(
            self.render("station_row", station=station, site=self.site) for station in stations)]

    def _counters(self) -> str:
        return self.render("counters", counts=fragments.site_counts(self.site))


class StationPage(LivePage):
    # Which fragments each kind of event can change.
    TOUCHES = {
        "station.connected": {"identity", "connectors"},
        "station.disconnected": {"identity", "connectors"},
        "connector.status": {"identity", "connectors"},
        "transaction.start": {"connectors", "sessions", "recent"},
        "transaction.update": {"sessions", "recent"},
        "transaction.end": {"connectors", "sessions", "recent"},
        "call.outcome": {"calls"},
        events.FRAMES_LOGGED: {"log"},
        "station.refused": set(),  # an alert of the overview
    }
    ignored = frozenset()

    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        station = stations_for(user).get(pk=params.get("station", ""))
        self.station_id = station.pk
        self.may_operate = may_operate_station(user, station)
        self.groups = [events.station_group(self.station_id)]
        # The message log as the page shows it: its filter and page.
        self.log_filter = fragments.LogFilter.from_params(params)
        self.log_page = _number(params, "p") or 1

    def initial(self) -> list[str]:
        return self._render({"identity", "connectors", "sessions", "recent", "calls", "log"})

    def update(self, batch: list[dict]) -> list[str]:
        # Boot, firmware, security and other station notifications change the identity card.
        touched = set().union(*(self.TOUCHES.get(event["event"], {"identity"})
                                for event in batch))
        return self._render(touched)

    def _render(self, touched: set[str]) -> list[str]:
        station = fragments.station_row(self.user, self.station_id)
        if station is None:  # deleted or moved out of the user's reach meanwhile
            return []
        parts = {
            "identity": lambda: self.render("station_identity", station=station),
            "connectors": lambda: self.render("connectors", station=station),
            "sessions": lambda: self.render(
                "current_sessions", station=station,
                sessions=fragments.current_sessions(station)),
            "recent": lambda: self.render("recent_sessions", station=station,
                                          recent=fragments.recent_sessions(station)),
            "calls": lambda: self.render("calls", station=station,
                                         calls=fragments.recent_calls(station)),
            "log": lambda: self.render("message_log", station=station, **fragments.message_log(
                station, self.log_filter, self.log_page, self.user)),
        }
        return ["".join(render() for name, render in parts.items() if name in touched)]


class SessionsPage(LivePage):
    pause = 0.5

    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        # A fleet admin's sessions are spread over sites they may not watch: no live rows.
        self.groups = visible_groups(user)
        self.filter = fragments.SessionFilter.from_params(params)
        self.number = _number(params, "p") or 1
        self.shown: set[int] = set()

    def initial(self) -> list[str]:
        page = fragments.page_of(fragments.sessions(self.user, self.filter), self.number)
        self.shown = {tx.pk for tx in page}
        return [self.render("sessions_body", sessions=page)]

    def update(self, batch: list[dict]) -> list[str]:
        kinds = {event["event"] for event in batch}
        if "transaction.start" in kinds and self.number == 1:
            return self.initial()  # a new session heads the first page
        touched = {event["data"].get("transaction") for event in batch
                   if event["event"].startswith("transaction.")} & self.shown
        if not touched:
            return []
        rows = list(fragments.sessions(self.user, self.filter).filter(pk__in=touched))
        # A session that no longer matches the filter (it ended, under "active") leaves.
        gone = touched - {tx.pk for tx in rows}
        self.shown -= gone
        return ["".join(self.render("session_row", tx=tx) for tx in rows) + "".join(
            f'<tr id="tx-{pk}" hx-swap-oob="delete"></tr>' for pk in sorted(gone))]


class SessionPage(LivePage):
    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        tx = fragments.session(user, _number(params, "tx") or 0)
        if tx is None:
            raise Transaction.DoesNotExist
        self.pk = tx.pk
        self.may_operate = may_operate_station(user, tx.station)
        self.groups = [events.station_group(tx.station_id)]

    def initial(self) -> list[str]:
        tx = fragments.session(self.user, self.pk)
        if tx is None:
            return []
        context = fragments.session_detail(tx)
        return ["".join(self.render(name, **context)
                        for name in ("session_summary", "session_chart", "session_messages"))]

    def update(self, batch: list[dict]) -> list[str]:
        if any(event["data"].get("transaction") == self.pk for event in batch):
            return self.initial()
        return []


class PendingPage(LivePage):
    pause = 0.5
    WATCHED = {"station.connected", "station.disconnected", "station.booted"}
    PENDING_COUNT_EVENTS = WATCHED | {"station.registration"}

    def __init__(self, user: AbstractBaseUser, params: dict[str, str]) -> None:
        super().__init__(user)
        self.groups = visible_groups(user)

    def initial(self) -> list[str]:
        return [self.render("pending_body", stations=fragments.page_of(
            fragments.pending_stations(self.user), 1),
            site_choices=access.sites_for(self.user).only("pk", "name"))]

    def update(self, batch: list[dict]) -> list[str]:
        decided = {event["station_id"] for event in batch
                   if event["event"] == "station.registration"}
        stations = list(stations_for(self.user).filter(pk__in=decided)
                        .select_related("site")) if decided else []
        pending = Station.Registration.PENDING
        if (any(event["event"] in self.WATCHED for event in batch)
                or any(station.registration == pending for station in stations)):
            return self.initial()
        # A decision shows in the row where the station waited, as it does for whoever took
        # it; the row leaves with the page's next read.
        return ["".join(self.render("pending_decided_row", station=station)
                        for station in stations)] if stations else []


PAGES: dict[str, type[LivePage]] = {
    "overview": OverviewPage,
    "sites": SitesPage,
    "site": SitePage,
    "station": StationPage,
    "sessions": SessionsPage,
    "session": SessionPage,
    "pending": PendingPage,
}


def open_page(user: AbstractBaseUser, params: dict[str, str]) -> LivePage | None:
    """The live page asked for, or None if it does not exist or the user may not see it."""
    kind = PAGES.get(params.get("page", ""))
    if kind is None:
        return None
    try:
        return kind(user, params)
    except ObjectDoesNotExist:
        return None


class DashboardConsumer(AsyncWebsocketConsumer):
    page: LivePage | None = None
    flusher: asyncio.Task | None = None
    closing = False  # the user's access changed: the socket is closing

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()  # before accepting: the handshake is refused with a 403
            return
        query = parse_qs(self.scope["query_string"].decode(), keep_blank_values=True)
        self.page = await database_sync_to_async(open_page)(
            user, {name: values[-1] for name, values in query.items()})
        if self.page is None:
            await self.close()
            return
        self.pending: list[dict] = []
        self.groups = set(self.page.groups)
        self.user_group = events.user_group(user.pk)
        # Join before the first read: an event in between costs a repeat, never a miss.
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        if self.groups:
            await self.channel_layer.group_add(events.FEED, self.channel_name)
        await self.accept()
        await self._send(await database_sync_to_async(self.page.initial)())

    async def disconnect(self, code: int) -> None:
        if self.flusher is not None:
            self.flusher.cancel()
        if self.page is not None:
            await self.channel_layer.group_discard(self.user_group, self.channel_name)
            if self.groups:
                await self.channel_layer.group_discard(events.FEED, self.channel_name)

    async def dashboard_access(self, message: dict) -> None:
        """What the user may see changed (stations.events.user_group): nothing more is sent."""
        self.closing = True
        self.pending = []
        if self.flusher is not None:
            self.flusher.cancel()
        await self.close(code=ACCESS_CHANGED)

    async def domain_events(self, message: dict) -> None:
        if self.closing:
            return
        mine = [event for event in message["events"] if event["event"] not in self.page.ignored
                and not self.groups.isdisjoint(events.groups_for(event))]
        if not mine:
            return
        self.pending += mine
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            await asyncio.sleep(self.page.pause)
            batch, self.pending = self.pending, []
            try:
                messages = await database_sync_to_async(self.page.changed)(batch)
            except Exception:  # one failed read must not end the page's live updates
                log.exception("dashboard update failed for %s", self.page.__class__.__name__)
                continue
            await self._send(messages)

    async def _send(self, messages: list[str]) -> None:
        for html in messages:
            if html.strip():
                await self.send(text_data=html)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port filled in; None if unreadable."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def same_origin(scope: dict) -> bool:
    """Whether the socket is opened by a page of this dashboard: its Origin has the scheme,
    host and port the request was made to (the scheme as a trusted TLS proxy says), or is one
    of CSRF_TRUSTED_ORIGINS, and its host is one of ALLOWED_HOSTS."""
    origin = _origin(proxies.header(scope, b"origin"))
    if origin is None or not validate_host(origin[1], settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "wss" or (
        proxies.from_trusted_proxy(scope)
        and proxies.header(scope, b"x-forwarded-proto") == "https")
    host = proxies.header(scope, b"host")
    requested = _origin(f"{'https' if secure else 'http'}://{host}") if host else None
    if origin == requested:
        return True
    return origin in {_origin(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}


class SameOriginValidator:
    """Browsers send cookies with a WebSocket handshake from any page, so a page of another
    origin (another site, or another port or scheme of this host) could open the socket as the
    user: cross-site WebSocket hijacking. Only the dashboard's own pages may."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive, send) -> None:
        if not same_origin(scope):
            await WebsocketDenier()(scope, receive, send)
            return
        await self.application(scope, receive, send)


# The session cookie says who the user is.
dashboard_socket = SameOriginValidator(AuthMiddlewareStack(DashboardConsumer.as_asgi()))
