"""Domain events, published to the channel layer only after the data is committed.

Each event belongs to groups: everything, its station's, its site's. A listener (the
dashboard's live socket) takes only the events of the groups its user may see (`groups_for`).
On the wire there is one group, FEED, and one message per batch of events (the events of many
chargers' messages, stored together: csms/gateway/writer.py): a channel-layer send per group
per event cost more than storing the event's message, and the fan-out is the same either way.
The channel layer is lossy (a full channel drops group messages), so an event says what changed
and a listener re-reads the database: nothing is ever known only from an event.
"""

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.dispatch import receiver

from accounts.signals import access_changed

log = logging.getLogger(__name__)

EVERYTHING = "dash.all"
# A station's message log has new frames. Only the station's page listens: every frame of
# every charger is logged, so it is announced once per station per stored batch, and with no
# site (which would wake the pages of the station's site for nothing).
FRAMES_LOGGED = "station.frames"
# The one channel-layer group events travel on (a list of events per message).
FEED = "dash.feed"

# Inside the charger gateway events are collected and sent by the consumer after it answered
# the charger, instead of each costing a blocking hop from the database thread.
_collector: ContextVar[list[dict] | None] = ContextVar("event_collector", default=None)


def _key(text: str) -> str:
    # Group names allow only [a-zA-Z0-9-_.]; station ids may hold * : + | @ =.
    return hashlib.blake2s(text.encode(), digest_size=10).hexdigest()


def station_group(station_id: str) -> str:
    return f"dash.station.{_key(station_id)}"


def site_group(site_id: int) -> str:
    return f"dash.site.{site_id}"


def user_group(user_id: int) -> str:
    """The group of one person's open pages, told when what they may see changes."""
    return f"dash.user.{user_id}"


@receiver(access_changed, dispatch_uid="events.access_changed")
def _access_changed(sender: type, user_id: int, **kwargs: object) -> None:
    """The person's live pages close once the change is committed; the page, reloaded, shows
    what they may see now. Lost (the channel layer is lossy), a page goes on until it closes."""

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(user_group(user_id),
                                                          {"type": "dashboard.access"})
        except Exception:
            log.warning("access change of user %s not delivered", user_id, exc_info=True)

    transaction.on_commit(send)


def charger_group(station_id: str) -> str:
    """The group the consumer holding a station's socket listens on for commands."""
    return f"charger.{_key(station_id)}"


def to_charger(station_id: str, message: dict) -> None:
    """Hand the consumer holding a station's socket, in whichever process, a message once the
    current transaction commits. The channel layer may lose it: callers must not depend on it."""
    group = charger_group(station_id)

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception:  # lost, as the channel layer may lose it: the person gets no error
            log.warning("%s for %s not delivered", message["type"], station_id, exc_info=True)

    transaction.on_commit(send)


def publish(kind: str, station_id: str, site_id: int | None = None, **data: Any) -> None:
    """Announce that something about a station changed, once the current transaction commits."""
    message = {"event": kind, "station_id": station_id,
               "site_id": site_id, "data": data}
    collector = _collector.get()
    if collector is not None:
        transaction.on_commit(lambda: collector.append(message))
    else:
        transaction.on_commit(lambda: send([message]))


def groups_for(message: dict) -> list[str]:
    groups = [EVERYTHING, station_group(message["station_id"])]
    if message["site_id"] is not None:
        groups.append(site_group(message["site_id"]))
    return groups


async def asend(messages: list[dict]) -> None:
    if not messages:
        return
    try:
        await get_channel_layer().group_send(FEED, {"type": "domain.events",
                                                    "events": messages})
    except Exception:  # a lost event is tolerable by design; a lost reply is not
        log.warning("%d events not delivered (%s, ...)", len(messages), messages[0]["event"],
                    exc_info=True)


def send(messages: list[dict]) -> None:
    async_to_sync(asend)(messages)


@contextmanager
def collected() -> Iterator[list[dict]]:
    """Collect the events published inside the block instead of sending them."""
    messages: list[dict] = []
    token = _collector.set(messages)
    try:
        yield messages
    finally:
        _collector.reset(token)
