"""What background jobs with progress have in common (a card import, a billing export): a
Celery task does the work after the request that asked for it, and a page polls how it stands.
"""

from django.db import models


class BackgroundJob(models.Model):
    """How a job stands, how far it got (of `total`), why it failed and when it ended. Each
    job names its own state field and progress counter, which its API already shows."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    total = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def share(self, done: int) -> int:
        """`done` of `total` in whole percent (0 while the total is not known)."""
        return int(100 * done / self.total) if self.total else 0
