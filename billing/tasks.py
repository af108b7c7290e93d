"""Background work of billing (Celery; eager in the embedded setup)."""

from celery import shared_task
from django.utils import timezone

from billing import exports, invoices, services
from billing.models import ExportJob


@shared_task
def settle_costs() -> int:
    """Idle fees of cars that stayed plugged in, sessions left unpriced (every minute)."""
    return services.settle()


@shared_task
def monthly_invoices() -> int:
    """Last month's invoices, as drafts for finance to check and issue (on the 1st)."""
    start, end = invoices.previous_month(timezone.now().date())
    return len(invoices.generate(start, end))


@shared_task
def build_export(job_id: int) -> None:
    """A bulk export's zip; a failure is recorded on the job for the person who asked."""
    job = ExportJob.objects.get(pk=job_id)
    try:
        exports.build_zip(job)
    except Exception as error:
        ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.FAILED,
                                                   error=str(error)[:300],
                                                   finished_at=timezone.now())
        raise
