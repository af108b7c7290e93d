"""Commands to chargers: persisted, routed through the channel layer, answered from the Call row.

The request asking for a command may run in another process than the consumer holding the
charger's socket, so a command never touches a socket: it stores a Call (pending), sends the
call's id to the station's group, and waits for the consumer's word that the call ended. The
channel layer is lossy; a call whose outcome never arrives ends as timed out, never accepted.
"""

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from csms import gateway
from csms.gateway.frames import CALL, FrameError, error_code, known_actions, validate
from stations import events, signals
from stations.models import Call, Station, Transaction


class CommandError(Exception):
    """A command that cannot be sent as asked (a person's mistake, said readably)."""


def call_send(station: Station, action: str, payload: dict, *,
              user: AbstractBaseUser | None = None, timeout: float | None = None) -> Call:
    """Send any action the station's OCPP version defines; returns the Call as it ended."""
    _check(station, action, payload)
    call = Call.objects.create(
        station=station, action=action, payload=payload, message_id=str(uuid.uuid4()),
        requested_by=user if user is not None and user.is_authenticated else None,
    )
    if not station.connected or not station.ocpp_version:
        _finish(call, Call.Status.NOT_CONNECTED)
        return call
    timeout = settings.OCPP["CALL_TIMEOUT"] if timeout is None else timeout
    async_to_sync(_route_and_wait)(station.pk, call.pk, timeout)
    call.refresh_from_db()
    if call.status in Call.OPEN:
        _finish(call, Call.Status.TIMEOUT)
    return call


def call_enqueue(station: Station, action: str, payload: dict, *,
                 user: AbstractBaseUser | None = None) -> Call:
    """Send without waiting for the outcome: for background work (local list pushes, cost
    updates) that must never block, least of all inside a charger's message handler.

    The call is routed after the surrounding transaction commits; if the route is lost it ends
    as timed out by `expire_stale_calls`.
    """
    _check(station, action, payload)
    call = Call.objects.create(
        station=station, action=action, payload=payload, message_id=str(uuid.uuid4()),
        requested_by=user if user is not None and user.is_authenticated else None,
    )
    if not station.connected:
        _finish(call, Call.Status.NOT_CONNECTED)
        return call
    events.to_charger(station.pk, {"type": "ocpp.call", "call": call.pk, "reply_to": None})
    return call


def expire_stale_calls(older_than: float | None = None) -> int:
    """End calls nobody will ever answer (their route or their process was lost)."""
    seconds = 2 * settings.OCPP["CALL_TIMEOUT"] if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = Call.objects.filter(status__in=Call.OPEN, created_at__lt=cutoff)
    return stale.update(status=Call.Status.TIMEOUT, completed_at=timezone.now())


async def _route_and_wait(station_id: str, call_id: int, wait_seconds: float) -> None:
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    try:
        await layer.group_send(events.charger_group(station_id),
                               {"type": "ocpp.call", "call": call_id, "reply_to": reply_to})
        async with asyncio.timeout(wait_seconds):
            while (await layer.receive(reply_to)).get("call") != call_id:
                pass
    except Exception:  # lost on the way, or no answer in time: the Call row decides
        return


def _check(station: Station, action: str, payload: dict) -> None:
    if not station.ocpp_version:
        return  # never connected: it ends as not connected, nothing to validate against
    if action not in known_actions(station.ocpp_version):
        raise CommandError(f"OCPP {station.ocpp_version} has no action {action[:50]!r}")
    try:
        validate(CALL, action, payload, station.ocpp_version)
    except FrameError as error:
        raise CommandError(
            f"{action} is not valid for OCPP {station.ocpp_version}: "
            f"{error_code(error.kind, station.ocpp_version)}: {error.description}"
        ) from None


def _finish(call: Call, status: str) -> None:
    """End an open call; a call that has ended already keeps its outcome."""
    updated = Call.objects.filter(pk=call.pk, status__in=Call.OPEN).update(
        status=status, completed_at=timezone.now()
    )
    call.refresh_from_db()
    if updated:
        signals.call_completed.send(Call, call=call)
        events.publish("call.outcome", call.station_id, call.station.site_id, call=call.pk,
                       status=status)


def _send_built(station: Station, build: str, *args, user=None) -> Call:
    """Build a version-neutral command in the words of the station's OCPP version, and send it."""
    if not station.ocpp_version:
        raise CommandError(f"{station.pk} has never connected: its OCPP version is not known yet")
    try:
        action, payload = getattr(gateway.adapter_for(station.ocpp_version).commands, build)(*args)
    except ValueError as error:  # the version cannot say it (e.g. a 1.6 token over 20 chars)
        raise CommandError(str(error)) from None
    return call_send(station, action, payload, user=user)


def remote_start(station: Station, *, evse: int, id_token: str, user=None) -> Call:
    return _send_built(station, "remote_start", evse, id_token, user=user)


def remote_stop(transaction: Transaction, *, user=None) -> Call:
    return _send_built(transaction.station, "remote_stop", transaction.transaction_id, user=user)


def reset(station: Station, *, hard: bool, user=None) -> Call:
    return _send_built(station, "reset", hard, user=user)


def unlock(station: Station, *, evse: int, connector: int = 1, user=None) -> Call:
    return _send_built(station, "unlock", evse, connector, user=user)


def availability_change(station: Station, *, evse: int, operative: bool, user=None) -> Call:
    """evse 0 is the whole station."""
    return _send_built(station, "availability_change", evse, operative, user=user)


def message_trigger(station: Station, *, message: str, evse: int | None = None,
                    user=None) -> Call:
    """Ask for a message now: BootNotification, Heartbeat, StatusNotification, MeterValues, ..."""
    return _send_built(station, "message_trigger", message, evse, user=user)


# A charger's answer to a message it does not take: it will not take the next one either.
_REFUSED_ACTION = ("NotSupported", "NotImplemented")


def cost_update(transaction: Transaction, total: Decimal) -> Call | None:
    """Tell the charger a session's running cost (taxes included), without waiting.

    None when the station cannot be told: its version has no such message, or it answered an
    earlier one that it does not support it. Safe inside a charger's message handler.
    """
    station = transaction.station
    if not station.ocpp_version:
        return None
    try:
        action, payload = gateway.adapter_for(station.ocpp_version).commands.cost_update(
            transaction.transaction_id, total)
    except ValueError:
        return None
    refused = Call.objects.filter(station=station, action=action, status=Call.Status.ERROR,
                                  error_code__in=_REFUSED_ACTION)
    if refused.exists():
        return None
    return call_enqueue(station, action, payload)
