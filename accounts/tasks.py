"""Background work of the accounts app: card imports and local list pushes (Celery; eager in the
embedded setup, where nothing here may wait or loop)."""

from celery import shared_task
from django.db import transaction

from accounts import cards, local_lists

# Offline stations are tried again after 1, 2, 4, ... minutes, at most hourly, for about a day;
# a reconnect sends the update at once anyway (local_lists.station_connected).
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
MAX_RETRIES = 30


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
def import_cards(import_id: int) -> str:
    return cards.import_run(import_id)


@shared_task
def resync_local_lists() -> int:
    """Every few minutes (beat): stations left out of step — an update lost on the way, a retry
    given up — are synced again; returns how many were asked."""
    ids = local_lists.stale_station_ids()
    for station_id in ids:
        push_local_list.delay(station_id)
    return len(ids)
