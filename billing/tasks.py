"""Background work of billing (Celery; eager in the embedded setup)."""

from celery import shared_task
from django.utils import timezone

from billing import invoices, services


@shared_task
def settle_costs() -> int:
    """Idle fees of cars that stayed plugged in, sessions left unpriced (every minute)."""
    return services.settle()


@shared_task
def monthly_invoices() -> int:
    """Last month's invoices, as drafts for finance to check and issue (on the 1st)."""
    start, end = invoices.previous_month(timezone.now().date())
    return len(invoices.generate(start, end))
