"""Background work of the stations app (Celery; eager in the embedded setup)."""

from celery import shared_task
from django.conf import settings

from stations import commands, services


@shared_task
def expire_stale_calls() -> int:
    """Calls whose outcome can no longer arrive end as timed out (run every minute by beat)."""
    return commands.expire_stale_calls()


@shared_task
def sweep_liveness() -> dict:
    """What server processes also do on their own (csms/gateway/liveness.py), for when none is
    running: stations of dead processes go offline, abandoned transactions are closed."""
    stale_after = 3 * settings.OCPP["PRESENCE_INTERVAL"]
    return {"offline": len(services.stations_sweep(stale_after)),
            "closed": len(services.transactions_close_abandoned())}


@shared_task
def prune_message_log() -> int:
    """Frames older than OCPP_MESSAGE_LOG_DAYS leave the message log (hourly, in batches)."""
    days = settings.OCPP["MESSAGE_LOG_DAYS"]
    return services.message_log_prune(days) if days > 0 else 0
