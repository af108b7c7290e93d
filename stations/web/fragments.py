"""What the dashboard shows, read for one user: the queries and fragments shared by the pages
(stations/web/views.py) and the live socket (stations/web/consumers.py).

Every queryset starts from accounts.access. A fragment is a partial template whose root element
carries an id; a page includes it and the socket sends it again, re-read, whenever an event says
it changed, so a page and its live update cannot drift apart.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page, Paginator
from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import access
from accounts.models import Membership, Organization, Site
from stations.access import card_searchable, stations_for, transactions_for
from stations.models import (
    Call,
    Connector,
    MessageLog,
    RefusedConnection,
    Station,
    StationEvent,
    StatusChange,
    Transaction,
)
from stations.services import message_log as message_log_service
from stations.web import charts

PAGE_SIZE = 50
RECENT = 10
POWER = "Power.Active.Import"
Status = Connector.Status
ACTIVE = Transaction.State.ACTIVE


def render(name: str, context: dict) -> str:
    return render_to_string(f"dashboard/fragments/{name}.html", context)


def page_of(queryset: QuerySet, number: str | int | None, size: int = PAGE_SIZE) -> Page:
    """One page; a page number out of range shows the last page rather than an error."""
    return Paginator(queryset, size).get_page(number)


def zone(where: Site | str | None) -> ZoneInfo:
    """The time zone to show a time in: the site's, else the installation's default."""
    name = where.time_zone if isinstance(where, Site) else where
    try:
        return ZoneInfo(name) if name else timezone.get_default_timezone()
    except (ZoneInfoNotFoundError, ValueError):  # a mistyped zone must not break the page
        return timezone.get_default_timezone()


def user_zone(user: AbstractBaseUser) -> ZoneInfo:
    """For pages spanning sites: the sites' zone if they share one, else the default."""
    zones = list(access.sites_for(user).order_by().values_list("time_zone", flat=True)
                 .distinct()[:2])
    return zone(zones[0] if len(zones) == 1 else None)


def session_energy_wh(tx: Transaction) -> Decimal | None:
    """Energy of a session: fixed at its end, the register's progress while it runs."""
    if tx.energy_wh is not None:
        return tx.energy_wh
    if tx.meter_last_wh is not None and tx.meter_start_wh is not None:
        return tx.meter_last_wh - tx.meter_start_wh
    return None


# --- counters (overview and site) -----------------------------------------------------------

def counts(stations: QuerySet[Station], transactions: QuerySet[Transaction],
           tz: ZoneInfo) -> dict:
    """Connector states, stations online, active sessions and today's energy: three queries."""
    online = Q(evse__station__connected=True)
    by_status = Connector.objects.filter(evse__station__in=stations).aggregate(
        available=Count("pk", filter=online & Q(status=Status.AVAILABLE)),
        charging=Count("pk", filter=online & Q(status=Status.OCCUPIED)),
        faulted=Count("pk", filter=online & Q(status=Status.FAULTED)),
        offline=Count("pk", filter=~online),
        total=Count("pk"),
    )
    station_counts = stations.aggregate(
        stations=Count("pk"), online=Count("pk", filter=Q(connected=True))
    )
    midnight = timezone.localtime(timezone.now(), tz).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    # A sum of many sessions' meter columns (18 digits each) fits however absurd one of them.
    energy = DecimalField(max_digits=30, decimal_places=3)
    # Sessions that ended today count whole, running ones with what they delivered so far: a
    # bound good enough for a glance without reading every meter sample of the day.
    sessions = transactions.aggregate(
        active=Count("pk", filter=Q(state=ACTIVE)),
        energy_today=Sum(Case(
            When(state=Transaction.State.COMPLETED, stopped_at__gte=midnight,
                 then=F("energy_wh")),
            When(state=ACTIVE, then=F("meter_last_wh") - F("meter_start_wh")),
            output_field=energy,
        )),
    )
    return {**by_status, **station_counts, **sessions, "zone": tz}


def overview_counts(user: AbstractBaseUser) -> dict:
    return counts(stations_for(user), transactions_for(user), user_zone(user))


def site_counts(site: Site) -> dict:
    return counts(Station.objects.filter(site=site),
                  Transaction.objects.filter(station__site=site), zone(site))


# --- alerts ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Alert:
    at: datetime
    kind: str  # fault, refused, security
    station_id: str
    text: str
    # The station's site, or for a refusal the zone of the user's sites: where to read `at`.
    where: Site | str | None
    # A refused id is often no station of ours (a typo, a scan): nothing to link to.
    known: bool = True


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What an operator admin has set up of an empty installation, step by step."""

    organization: bool
    site: bool
    member: bool  # someone other than an operator admin has a role


def first_run(user: AbstractBaseUser) -> FirstRun | None:
    """The steps of a first run, shown to operator admins until a site has a station; None
    once it has, or for anyone else."""
    if not access.may_administer(user) or Station.objects.filter(site__isnull=False).exists():
        return None
    return FirstRun(organization=Organization.objects.exists(), site=Site.objects.exists(),
                    member=Membership.objects.exclude(
                        role=Membership.Role.OPERATOR_ADMIN).exists())


def alerts(user: AbstractBaseUser, limit: int = RECENT) -> list[Alert]:
    """Latest faults, refused connections and security events, newest first."""
    stations = stations_for(user)
    found = [
        Alert(change.timestamp, "fault", change.station_id,
              f"{_where(change)} faulted" + (f": {change.error_code}"
                                             if change.error_code else ""),
              change.station.site)
        for change in StatusChange.objects.filter(status=Status.FAULTED, station__in=stations)
        .select_related("station__site", "connector__evse")[:limit]
    ]
    found += [
        Alert(event.timestamp, "security", event.station_id, event.name, event.station.site)
        for event in StationEvent.objects.filter(kind=StationEvent.Kind.SECURITY,
                                                 station__in=stations)
        .select_related("station__site")[:limit]
    ]
    refused = RefusedConnection.objects.all()
    if not access.sees_everything(user):
        refused = refused.filter(station_id__in=stations.values("pk"))
    refused = list(refused[:limit])
    where = user_zone(user).key if refused else None
    found += [
        Alert(r.created_at, "refused", r.station_id,
              f"connection refused ({r.reason})" + (f" from {r.remote_addr}"
                                                    if r.remote_addr else ""),
              where, known=False)
        for r in refused
    ]
    return sorted(found, key=lambda alert: alert.at, reverse=True)[:limit]


def _where(change: StatusChange) -> str:
    if change.connector is None:
        return "station"
    return f"connector {change.connector.evse.number}/{change.connector.number}"


# --- sites ----------------------------------------------------------------------------------

def _count(queryset: QuerySet, site_field: str) -> Coalesce:
    """Rows of `queryset` per site, as a subquery: a join per count would multiply the rows."""
    counted = (queryset.filter(**{site_field: OuterRef("pk")}).order_by()
               .values(site_field).annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def sites(user: AbstractBaseUser) -> QuerySet[Site]:
    online = Q(evse__station__connected=True)
    return access.sites_for(user).annotate(
        n_stations=_count(Station.objects.all(), "site"),
        n_online=_count(Station.objects.filter(connected=True), "site"),
        n_available=_count(Connector.objects.filter(online, status=Status.AVAILABLE),
                           "evse__station__site"),
        n_charging=_count(Connector.objects.filter(online, status=Status.OCCUPIED),
                          "evse__station__site"),
        n_faulted=_count(Connector.objects.filter(online, status=Status.FAULTED),
                         "evse__station__site"),
        n_active=_count(Transaction.objects.filter(state=ACTIVE), "station__site"),
    )


# --- stations -------------------------------------------------------------------------------

def with_connectors(stations: list[Station]) -> list[Station]:
    """Attach each station's connectors and running sessions: two queries for any number."""
    by_id = {station.pk: station for station in stations}
    for station in stations:
        station.connector_list = []
        station.active_sessions = []
    sessions_by_connector = {}
    for tx in Transaction.objects.filter(station__in=by_id, state=ACTIVE).order_by("started_at"):
        by_id[tx.station_id].active_sessions.append(tx)
        sessions_by_connector[tx.connector_id] = tx
    for connector in (Connector.objects.filter(evse__station__in=by_id).select_related("evse")
                      .order_by("evse__number", "number")):
        connector.session = sessions_by_connector.get(connector.pk)
        by_id[connector.evse.station_id].connector_list.append(connector)
    return stations


def station_rows(stations: QuerySet[Station], number: str | int | None) -> Page:
    page = page_of(stations.order_by("pk"), number)
    page.object_list = with_connectors(list(page.object_list))
    return page


def station_row(user: AbstractBaseUser, station_id: str) -> Station | None:
    """One station with its site, its local list's state and its connectors: three queries."""
    station = (stations_for(user).select_related("site", "local_list")
               .filter(pk=station_id).first())
    return with_connectors([station])[0] if station else None


def live_power_w(tx: Transaction) -> Decimal | None:
    """The latest power reading: the total if the charger sent one, else its phases summed."""
    latest = list(tx.samples.filter(measurand=POWER).order_by("-timestamp")
                  .values_list("timestamp", "phase", "value")[:4])
    if not latest:
        return None
    at = latest[0][0]
    same_time = [(phase, value) for timestamp, phase, value in latest if timestamp == at]
    totals = [value for phase, value in same_time if not phase]
    return totals[0] if totals else sum(value for _, value in same_time)


def current_sessions(station: Station) -> list[Transaction]:
    sessions = list(station.transactions.filter(state=ACTIVE)
                    .select_related("evse", "connector", "id_token").order_by("started_at"))
    for tx in sessions:
        tx.power_w = live_power_w(tx)
    return sessions


def recent_sessions(station: Station) -> list[Transaction]:
    return list(station.transactions.select_related("evse", "connector", "id_token")[:RECENT])


def recent_calls(station: Station) -> list[Call]:
    """The commands as people asked for them: a request sent in parts is one, its outcome
    merged, with how many parts it took (`part_count`)."""
    return list(station.calls.filter(part_of=None).select_related("requested_by")
                .annotate(part_count=Count("parts"))[:RECENT])


@dataclass(frozen=True, slots=True)
class LogFilter:
    action: str = ""
    direction: str = ""

    @classmethod
    def from_params(cls, params) -> "LogFilter":
        direction = params.get("direction", "")
        return cls(action=params.get("action", "").strip()[:50],
                   direction=direction if direction in MessageLog.Direction.values else "")

    def params(self) -> dict[str, str]:
        return {name: value for name, value in (("action", self.action),
                                                ("direction", self.direction)) if value}


def message_log(station: Station, log_filter: LogFilter, number: str | int | None,
                viewer: AbstractBaseUser) -> dict:
    """A page of the station's message log as the viewer sees it: the numbers of cards they may
    not see are read once for the page (and masked where shown)."""
    messages = station.messages.all()
    if log_filter.action:
        messages = messages.filter(action__iexact=log_filter.action)
    if log_filter.direction:
        messages = messages.filter(direction=log_filter.direction)
    # Actions offered in the filter: those of the latest messages, a bounded read even for a
    # station with millions of frames.
    seen = station.messages.exclude(action="").values_list("action", flat=True)[:500]
    query = urlencode(log_filter.params())
    log = page_of(messages, number)
    return {"log": log, "log_filter": log_filter, "log_query": f"{query}&" if query else "",
            "log_actions": sorted(set(seen)),
            "log_hidden_cards": message_log_service.hidden_cards(viewer, log)}


# --- sessions -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionFilter:
    """The sessions list's filters, read leniently from a query string: a bad value is ignored."""

    site: int | None = None
    station: str = ""
    token: str = ""
    state: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_params(cls, params) -> "SessionFilter":
        site = params.get("site", "")
        state = params.get("state", "")
        return cls(
            site=int(site) if site.isdigit() else None,
            station=params.get("station", "").strip()[:48],
            token=params.get("token", "").strip()[:36],
            state=state if state in Transaction.State.values else "",
            date_from=_date(params.get("from", "")),
            date_to=_date(params.get("to", "")),
        )

    def params(self) -> dict[str, str]:
        """The query string that reproduces this filter, empty values left out."""
        values = {"site": self.site or "", "station": self.station, "token": self.token,
                  "state": self.state, "from": self.date_from or "", "to": self.date_to or ""}
        return {key: str(value) for key, value in values.items() if value}

    def apply(self, transactions: QuerySet[Transaction]) -> QuerySet[Transaction]:
        if self.site is not None:
            transactions = transactions.filter(station__site=self.site)
        if self.station:
            transactions = transactions.filter(station__pk__icontains=self.station)
        if self.token:
            transactions = transactions.filter(id_token_value__icontains=self.token)
        if self.state:
            transactions = transactions.filter(state=self.state)
        # Days are the filtered site's days, or the installation's when no site is chosen.
        tz = zone(Site.objects.filter(pk=self.site).first() if self.site else None)
        if self.date_from:
            transactions = transactions.filter(started_at__gte=_midnight(self.date_from, tz))
        if self.date_to:
            transactions = transactions.filter(
                started_at__lt=_midnight(self.date_to + timedelta(days=1), tz))
        return transactions


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def sessions(user: AbstractBaseUser, session_filter: SessionFilter) -> QuerySet[Transaction]:
    found = session_filter.apply(transactions_for(user))
    if session_filter.token:  # no guessing at numbers one does not see
        found = found.filter(card_searchable(user))
    return found.select_related("station__site", "evse", "connector", "id_token")


def session(user: AbstractBaseUser, pk: int) -> Transaction | None:
    return (transactions_for(user)
            .select_related("station__site", "evse", "connector", "id_token")
            .filter(pk=pk).first())


def session_detail(tx: Transaction) -> dict:
    """Summary, message trail and curve of one session."""
    tx.power_w = live_power_w(tx) if tx.state == ACTIVE else None
    return {
        "tx": tx,
        "tx_messages": list(tx.messages.order_by("timestamp", "sequence")[:200]),
        "chart": charts.session_chart(_curve(tx), zone(tx.station.site)),
    }


def _curve(tx: Transaction) -> charts.Curve:
    """Power (kW) and delivered energy (kWh) over time, from the session's meter samples."""
    rows = (tx.samples.filter(measurand__in=[POWER, "Energy.Active.Import.Register"])
            .order_by("timestamp").values_list("timestamp", "measurand", "phase", "value"))
    power_total: dict[datetime, float] = {}
    power_phases: dict[datetime, float] = {}
    energy: list[tuple[datetime, float]] = []
    start = tx.meter_start_wh
    for timestamp, measurand, phase, value in rows:
        if measurand == POWER:
            target = power_phases if phase else power_total
            target[timestamp] = target.get(timestamp, 0.0) + float(value) / 1000
        elif not phase:
            start = value if start is None else start
            energy.append((timestamp, float(value - start) / 1000))
    # Chargers send either a total or per-phase power; never count both.
    power = power_total or power_phases
    return charts.Curve(power=sorted(power.items()), energy=energy)


# --- onboarding -----------------------------------------------------------------------------

def pending_stations(user: AbstractBaseUser) -> QuerySet[Station]:
    return (stations_for(user).filter(registration=Station.Registration.PENDING)
            .select_related("site").order_by("-created_at"))
