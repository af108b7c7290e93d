"""Background work of the accounts app (Celery; eager in the embedded setup)."""

from celery import shared_task

from accounts import cards


@shared_task
def import_cards(import_id: int) -> str:
    return cards.import_run(import_id)
