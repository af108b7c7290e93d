"""Background work of the stations app (Celery; eager in the embedded setup)."""

from celery import shared_task

from stations import commands


@shared_task
def expire_stale_calls() -> int:
    """Calls whose outcome can no longer arrive end as timed out (run every minute by beat)."""
    return commands.expire_stale_calls()
