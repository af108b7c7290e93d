"""What the domain deletes, and when: frames of the message log past their retention."""

from datetime import timedelta

from django.utils import timezone

from stations.models import MessageLog


def message_log_prune(days: int, batch: int = 5000, max_batches: int = 2000) -> int:
    """Delete message-log frames older than `days`, oldest first, one batch per statement.

    Walks the primary key (frames are logged in time order), so each batch is an index range,
    never a scan of the whole log. Returns how many frames were deleted.
    """
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        rows = list(MessageLog.objects.order_by("id").values_list("id", "created_at")[:batch])
        old = [pk for pk, created_at in rows if created_at < cutoff]
        if old:
            MessageLog.objects.filter(pk__in=old).delete()
            deleted += len(old)
        if len(old) < batch:
            break
    return deleted
