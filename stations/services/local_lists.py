"""Local authorization lists: which ID tokens a station should hold for offline use, what the
charger acknowledged holding, and the updates that bring the two together.

Version-neutral. The 1.6 / 2.0.1 shapes of SendLocalList, GetLocalListVersion and ClearCache,
and the names of the charger's size limits, live in the gateway's local_list block (it says the
commands below in each version's words); here an entry is a token value with its status, expiry
and group.

How a list gets to a charger:
- a card change (or a station connecting, or a person's button) calls schedule(), whose signal
  has stations.tasks.push_local_list run after commit (in Celery; eagerly in the embedded setup);
- sync() compares what the station should hold with what it acknowledged and sends the
  difference with commands.call_enqueue (never blocking): a full update when the charger's
  list is unknown or out of step, differential updates otherwise, split into as many messages
  as the charger's reported per-message maximum requires. A list larger than the charger's
  reported maximum is not sent at all: the station shows "too large" and why. Nothing is ever
  silently truncated;
- when the charger answers, record_outcome() (on stations.signals.call_completed, inside the
  transaction storing the answer) applies an accepted update to the acknowledged entries and
  decides whether the station is in sync; the list version a charger reports is
  version_reported()'s.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.dispatch import receiver
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import audit, card_use
from accounts.models import AuditEntry, IdToken
from accounts.signals import id_tokens_changed
from stations import signals
from stations.models import (
    Call,
    DeviceVariable,
    LocalListEntry,
    LocalListPush,
    LocalListState,
    Station,
)
from stations.services import commands

log = logging.getLogger(__name__)

Sync = LocalListState.Sync
# An entry as the domain sees it: {"status", "expires_at" (ISO text or None), "group", "type"};
# None in an update removes the token from the charger's list.
Entry = dict
# How long a limits query may stay unanswered before it is asked again.
LIMITS_RETRY = timedelta(minutes=10)
# Updates sent in a row without one being accepted before automatic updates pause (until the
# station reconnects or a person pushes): a charger that refuses every list is not flooded.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class LocalListSend(commands.Command):
    """One update of the charger's list: `entries` maps a token value to its Entry, or to None
    to remove it."""

    description: ClassVar[str] = "a local list update"
    version: int
    full: bool
    entries: dict[str, Entry | None]


@dataclass(frozen=True, slots=True)
class LocalListVersionQuery(commands.Command):
    description: ClassVar[str] = "a question for the local list's version"


@dataclass(frozen=True, slots=True)
class CacheClear(commands.Command):
    description: ClassVar[str] = "clearing the authorization cache"


@dataclass(frozen=True, slots=True)
class LocalListLimitsQuery(commands.Command):
    """Ask the charger how large a list it holds, and how many entries a message may carry."""

    description: ClassVar[str] = "a question for the local list's limits"


@dataclass(frozen=True, slots=True)
class Limits:
    """The charger's reported maxima; None: not reported (no limit we know of)."""

    entries: int | None = None
    per_message: int | None = None


# --- what a station should hold ----------------------------------------------------------

def managed_stations() -> QuerySet[Station]:
    """Stations whose local list we keep: turned on for it, accepted, and connected at least
    once (so their OCPP version, and with it the words of the update, is known)."""
    return Station.objects.filter(
        registration=Station.Registration.ACCEPTED, local_list__enabled=True,
    ).exclude(ocpp_version="")


def wanted(station: Station) -> dict[str, Entry]:
    """The entries the station should hold: every token that charges at its site
    (accounts.card_use: no other organization's card is handed to the station), with the
    status a charger must apply to it."""
    tokens = IdToken.objects.filter(card_use.usable_at(station.site_id)).order_by("value")
    # A token longer than the station's version can present (1.6: 20 characters) can never be
    # shown to it: it has no place on its list.
    longest = commands.protocol_of(station).id_token_max_length
    now = timezone.now()
    return {token.value: entry_of(token, now) for token in tokens if len(token.value) <= longest}


def entry_of(token: IdToken, now: datetime | None = None) -> Entry:
    return {
        "status": token.effective_status(now),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "group": token.group_token(),
        "type": token.token_type,
    }


def held(station: Station) -> dict[str, Entry]:
    """What the charger acknowledged holding."""
    return {
        row.value: {"status": row.status,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None,
                    "group": row.group, "type": row.token_type}
        for row in LocalListEntry.objects.filter(station=station)
    }


def difference(want: dict[str, Entry], have: dict[str, Entry]) -> dict[str, Entry | None]:
    """The differential update turning `have` into `want` (None removes a token)."""
    changes: dict[str, Entry | None] = {
        value: entry for value, entry in want.items() if have.get(value) != entry
    }
    changes.update(dict.fromkeys(have.keys() - want.keys()))
    return dict(sorted(changes.items()))


def limits(station: Station) -> Limits:
    """The maxima the charger reported (its configuration or device model, as stored)."""
    names = commands.protocol_of(station).local_list_limits
    found: dict[str, int | None] = {}
    for limit, (component, variable, attribute) in names.items():
        value = DeviceVariable.objects.filter(
            station=station, component=component, variable=variable, attribute_type=attribute,
        ).values_list("value", flat=True).first()
        found[limit] = int(value) if value and value.strip().isdigit() else None
    return Limits(**found)


def _lock(station_id: str) -> None:
    """Every writer of a station's list state locks the station's row first: one order for all,
    so two of them (a sync in a worker, a charger's answer in a server process) never deadlock
    on each other's LocalListState and Station rows."""
    Station.objects.select_for_update().filter(pk=station_id).values_list("pk").first()


def state_of(station: Station) -> LocalListState:
    state, _ = LocalListState.objects.get_or_create(station=station)
    return state


def _set(state: LocalListState, sync: str, note: str = "", **fields) -> None:
    fields.update(sync=sync, note=note[:300], changed_at=timezone.now())
    LocalListState.objects.filter(pk=state.pk).update(**fields)
    for name, value in fields.items():
        setattr(state, name, value)


# --- sending ----------------------------------------------------------------------------

def _pushes_open(station: Station) -> bool:
    """An update (or the question of the charger's limits) is on its way."""
    query, _ = commands.protocol_of(station).build(LocalListLimitsQuery())
    return LocalListPush.objects.filter(station=station, call__status__in=Call.OPEN).exists() or (
        Call.objects.filter(station=station, action=query, status__in=Call.OPEN,
                            requested_by=None).exists())


def _needs_limits(station: Station, state: LocalListState) -> bool:
    if limits(station) != Limits():
        return False
    return state.limits_read_at is None or timezone.now() - state.limits_read_at > LIMITS_RETRY


def sync(station: Station, *, full: bool = False, user: AbstractBaseUser | None = None) -> str:
    """Bring the station's list up to date; returns what happened, for a person or a log.

    Never waits for the charger. Callers run it inside a transaction (the task does)."""
    _lock(station.pk)
    station = Station.objects.get(pk=station.pk)
    state = state_of(station)
    if not state.enabled:
        return "the local list is off for this station: turn it on to send it"
    want = wanted(station)
    if _pushes_open(station):
        _set(state, Sync.SENDING, "an update is on its way; the rest follows when it is answered",
             wanted=len(want))
        return "waiting for the update on its way"
    if not station.connected:
        if full or state.sync != Sync.IN_SYNC or difference(want, held(station)):
            _set(state, Sync.OUT_OF_SYNC,
                 "the station is offline; the update is sent when it is back", wanted=len(want))
        return "station offline"
    if user is None and state.sync == Sync.NOT_SUPPORTED:
        return "the charger does not support local lists"
    if user is None and state.attempts >= MAX_ATTEMPTS:
        _set(state, Sync.FAILED, f"{state.attempts} updates in a row were not accepted; "
             "automatic updates resume when the station reconnects", wanted=len(want))
        return "gave up for now"
    protocol = commands.protocol_of(station)
    if _needs_limits(station, state):
        commands.send_later(station, LocalListLimitsQuery())
        _set(state, Sync.SENDING, "asking the charger how many entries its list holds",
             wanted=len(want), limits_read_at=timezone.now())
        return "asking for the charger's limits"
    maxima = limits(station)
    if maxima.entries is not None and len(want) > maxima.entries:
        _set(state, Sync.TOO_LARGE, f"{len(want)} cards belong on this station's list; the "
             f"charger holds at most {maxima.entries}. Nothing was sent: limit cards to fewer "
             "sites or block unused ones.", wanted=len(want))
        return "too large"
    have = held(station)
    full = full or state.version == 0 or (
        state.version_reported is not None and state.version_reported != state.version)
    changes = dict(sorted(want.items())) if full else difference(want, have)
    if not changes and not full:
        _set(state, Sync.IN_SYNC, wanted=len(want), attempts=0)
        return "in sync"
    size = maxima.per_message or len(changes) or 1
    items = list(changes.items())
    chunks = [dict(items[i:i + size]) for i in range(0, len(items), size)] or [{}]
    version = max(state.version, state.version_sent)
    for number, chunk in enumerate(chunks):
        version += 1
        is_full = full and number == 0
        action, payload = protocol.build(LocalListSend(version, is_full, chunk))
        call = commands.call_enqueue(station, action, payload, user=user)
        LocalListPush.objects.create(call=call, station=station, version=version, full=is_full,
                                     entries=chunk, last=number == len(chunks) - 1)
    kind = "full" if full else "differential"
    _set(state, Sync.SENDING,
         f"sending a {kind} update of {len(changes)} entries in {len(chunks)} message(s)",
         wanted=len(want), version_sent=version, attempts=state.attempts + 1)
    if user is not None:
        audit.record(user, AuditEntry.Action.LOCAL_LIST,
                     f"{kind} local list update to {station.pk}: {len(changes)} entries",
                     target=f"station:{station.pk}",
                     details={"version": version, "messages": len(chunks)})
    return f"sent a {kind} update"


def set_enabled(user: AbstractBaseUser, station: Station, enabled: bool) -> None:
    """Keep (or stop keeping) a local list on this station; turned on, it is sent at once."""
    with transaction.atomic():
        _lock(station.pk)
        state, _ = LocalListState.objects.get_or_create(
            station=station, defaults={"enabled": False})
        if state.enabled == enabled:
            return
        LocalListState.objects.filter(pk=state.pk).update(enabled=enabled, attempts=0,
                                                          changed_at=timezone.now())
        audit.record(user, AuditEntry.Action.LOCAL_LIST,
                     f"{'turned on' if enabled else 'turned off'} the local list of {station.pk}",
                     target=f"station:{station.pk}")
        if enabled:
            schedule([station.pk])


def schedule(station_ids: list[str] | None = None, *, countdown: float | None = None) -> None:
    """After commit, sync these stations (None: every managed station) in the background
    (stations.tasks receives the signal: the background work is above this module)."""
    signals.local_lists_stale.send(LocalListState, station_ids=station_ids, countdown=countdown)


@receiver(id_tokens_changed, dispatch_uid="local_lists.id_tokens_changed")
def id_tokens_change(sender, **kwargs) -> None:
    """Some card changed: every station's list may have to follow."""
    schedule(None)


def stale_station_ids() -> list[str]:
    """Connected stations whose list is not in step and has no update on its way (a call
    whose answer was lost ends as timed out without telling anyone)."""
    waiting = LocalListState.objects.filter(
        enabled=True, sync__in=[Sync.OUT_OF_SYNC, Sync.SENDING], station__connected=True,
    ).values_list("station_id", flat=True)
    return [station_id for station_id in waiting
            if not _pushes_open(Station.objects.get(pk=station_id))]


def get_version(station: Station, user: AbstractBaseUser | None = None) -> Call:
    """Ask the charger which list version it holds; the answer lands in LocalListState."""
    return _send(station, LocalListVersionQuery(), user)


def clear_cache(station: Station, user: AbstractBaseUser | None = None) -> Call:
    """Empty the charger's authorization cache (the local list stays)."""
    return _send(station, CacheClear(), user)


def _send(station: Station, command: commands.Command, user: AbstractBaseUser | None) -> Call:
    station = Station.objects.get(pk=station.pk)  # connected now, not when it was read
    return commands.send_later(station, command, user=user)


# --- answers --------------------------------------------------------------------------------

def _apply(push: LocalListPush) -> None:
    station = push.station
    if push.full:
        LocalListEntry.objects.filter(station=station).delete()
    removed = [value for value, entry in push.entries.items() if entry is None]
    LocalListEntry.objects.filter(station=station, value__in=removed).delete()
    kept = {value: entry for value, entry in push.entries.items() if entry is not None}
    LocalListEntry.objects.filter(station=station, value__in=kept).delete()
    LocalListEntry.objects.bulk_create([
        LocalListEntry(station=station, value=value, status=entry["status"],
                       expires_at=parse_datetime(entry["expires_at"]) if entry["expires_at"]
                       else None, group=entry["group"], token_type=entry["type"])
        for value, entry in kept.items()
    ])


class PushAnswer(StrEnum):
    """A charger's answer to a list update, in the domain's words."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    NOT_SUPPORTED = "not_supported"
    VERSION_MISMATCH = "version_mismatch"


def push_answered(call_id: int, answer: PushAnswer) -> None:
    """A charger answered one of our list updates (the gateway's reply reader, inside the
    transaction storing the answer)."""
    push = LocalListPush.objects.filter(call_id=call_id).select_related("station").first()
    if push is None:
        return
    with transaction.atomic():
        _lock(push.station_id)
        state = state_of(push.station)
        if answer == PushAnswer.ACCEPTED:
            _apply(push)
            state.version = push.version
            LocalListState.objects.filter(pk=state.pk).update(version=push.version,
                                                              version_reported=push.version)
            if not push.last:
                return
            if difference(wanted(push.station), held(push.station)):
                _set(state, Sync.OUT_OF_SYNC, "cards changed while the update travelled")
                schedule([push.station_id])
            else:
                _set(state, Sync.IN_SYNC, attempts=0)
        elif answer == PushAnswer.VERSION_MISMATCH:
            # The charger's list is not the one we think: replace it whole.
            _set(state, Sync.OUT_OF_SYNC, "the charger's list version differs; sending it whole",
                 version=0)
            schedule([push.station_id])
        elif answer == PushAnswer.NOT_SUPPORTED:
            _set(state, Sync.NOT_SUPPORTED, "the charger does not support local lists")
        else:
            held_now = LocalListEntry.objects.filter(station=push.station).count()
            _set(state, Sync.FAILED, f"the charger could not store update v{push.version}; it "
                 f"holds {held_now} cards now (its list may be full: it did not report its size)")


def version_reported(station: Station, version: int) -> None:
    """The charger said which list version it holds (its answer to LocalListVersionQuery)."""
    with transaction.atomic():
        _lock(station.pk)
        LocalListState.objects.get_or_create(station=station)
        LocalListState.objects.filter(pk=station.pk).update(
            version_reported=version, version_reported_at=timezone.now())
        if version != state_of(station).version:
            schedule([station.pk])


@receiver(signals.call_completed, dispatch_uid="local_lists.record_outcome")
def record_outcome(sender, call: Call, **kwargs) -> None:
    """One of our limit queries ended (answered or not: the next sync decides what follows), or
    one of our list updates ended without an answer (offline, timed out, CALLERROR): it is
    tried again later. Answers to updates are push_answered()'s."""
    station = call.station
    if not station.ocpp_version:
        return
    limits_query, _ = commands.protocol_of(station).build(LocalListLimitsQuery())
    if call.action == limits_query:
        schedule([station.pk])
        return
    if call.status in (Call.Status.ACCEPTED, Call.Status.REJECTED):
        return
    push = LocalListPush.objects.filter(call=call).select_related("station").first()
    if push is None:
        return
    with transaction.atomic():
        _lock(station.pk)
        _set(state_of(push.station), Sync.OUT_OF_SYNC,
             f"update v{push.version} {call.get_status_display()}"
             + (f": {call.error_code}" if call.error_code else ""))


@receiver(signals.station_connected, dispatch_uid="local_lists.station_connected")
def station_connected(sender, station: Station, **kwargs) -> None:
    """A charger is back: what changed while it was away goes out (after it had time to
    boot; at once in the embedded setup, where tasks run eagerly)."""
    if station.registration != Station.Registration.ACCEPTED:
        return
    state = LocalListState.objects.filter(station=station, enabled=True).first()
    if state is not None and state.sync != Sync.IN_SYNC:
        with transaction.atomic():
            _lock(station.pk)
            LocalListState.objects.filter(station=station).update(attempts=0)
        schedule([station.pk], countdown=10)
