"""Background work of the accounts app (Celery; eager in the embedded setup)."""

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver

from accounts import cards
from accounts.models import CardImport
from accounts.signals import card_import_queued


@shared_task
def import_cards(import_id: int) -> str:
    return cards.import_run(import_id)


@receiver(card_import_queued, sender=CardImport, dispatch_uid="tasks.import_cards")
def card_import_run(sender, job: CardImport, **kwargs) -> None:
    """After commit: the import's rows are read in the background, not in the request."""
    transaction.on_commit(lambda: import_cards.delay(job.pk))
