"""Background work of the stations app (Celery; eager in the embedded setup, where nothing here
may wait or loop)."""

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from stations import signals
from stations.models import LocalListState
from stations.services import commands, local_lists, presence, retention, transactions

# Offline stations are tried again after 1, 2, 4, ... minutes, at most hourly, for about a day;
# a reconnect sends the update at once anyway (local_lists.station_connected).
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
MAX_RETRIES = 30


@shared_task
def expire_stale_calls() -> int:
    """Calls whose outcome can no longer arrive end as timed out (run every minute by beat)."""
    return commands.expire_stale_calls()


@shared_task
def sweep_liveness() -> dict:
    """What server processes also do on their own (csms/gateway/liveness.py), for when none is
    running: stations of dead processes go offline, abandoned transactions are closed."""
    stale_after = 3 * settings.OCPP["PRESENCE_INTERVAL"]
    return {"offline": len(presence.stations_sweep(stale_after)),
            "closed": len(transactions.transactions_close_abandoned())}


@shared_task
def prune_message_log() -> int:
    """Frames older than OCPP_MESSAGE_LOG_DAYS leave the message log (hourly, in batches)."""
    days = settings.OCPP["MESSAGE_LOG_DAYS"]
    return retention.message_log_prune(days) if days > 0 else 0


@shared_task(bind=True, max_retries=MAX_RETRIES)
def push_local_list(self, station_id: str, full: bool = False) -> str:
    station = local_lists.managed_stations().filter(pk=station_id).first()
    if station is None:
        return "not managed"
    with transaction.atomic():
        outcome = local_lists.sync(station, full=full)
    # Eager tasks run inside the request or the charger's handler: a retry there would run at
    # once, again and again. Embedded, the reconnect hook is what sends it later.
    if outcome == "station offline" and not self.request.is_eager:
        countdown = min(RETRY_BASE_SECONDS * 2 ** self.request.retries, RETRY_MAX_SECONDS)
        raise self.retry(countdown=countdown)
    return outcome


@shared_task
def resync_local_lists() -> int:
    """Every few minutes (beat): stations left out of step — an update lost on the way, a retry
    given up — are synced again; returns how many were asked."""
    ids = local_lists.stale_station_ids()
    for station_id in ids:
        push_local_list.delay(station_id)
    return len(ids)


@receiver(signals.local_lists_stale, sender=LocalListState, dispatch_uid="tasks.local_lists")
def local_lists_push(sender, station_ids: list[str] | None, countdown: float | None,
                     **kwargs) -> None:
    """After commit, push the lists of these stations (None: every managed station)."""

    def enqueue() -> None:
        ids = station_ids if station_ids is not None else list(
            local_lists.managed_stations().values_list("pk", flat=True))
        for station_id in ids:
            push_local_list.apply_async((station_id,), countdown=countdown)

    transaction.on_commit(enqueue)
