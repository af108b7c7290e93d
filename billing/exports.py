"""Finance exports: the invoice CSV (one layout, documented in docs/billing.md, Exports), revenue
statements per site, and the bulk zip of a period built in the background with progress.

What a person downloads (an invoice's PDF, XML or CSV, a month's invoices, a revenue statement,
a bulk zip) is audited as an export, like card and audit-log exports: who took which data, when.
"""

import csv
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db.models import Count, QuerySet, Sum
from django.http import FileResponse, HttpResponse
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Site
from billing import einvoice, pdf
from billing.costing import CENT
from billing.models import ExportJob, Invoice, SessionCost
from billing.vat import vat_groups

CSV_COLUMNS = [
    "row_type", "invoice_number", "document_type", "status", "issue_date", "period_start",
    "period_end", "issuer", "customer", "customer_vat_id", "currency", "line", "session_id",
    "station", "site", "card", "started_at", "stopped_at", "energy_kwh", "duration_min",
    "idle_min", "vat_rate", "net_amount", "vat_amount", "gross_amount",
]


def _local_iso(moment: datetime | None, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds") if moment else ""


def _minutes(seconds: int) -> str:
    return f"{Decimal(seconds) / 60:.1f}"


def invoice_rows(invoice: Invoice) -> Iterable[dict]:
    """One row per session line, one per VAT rate, one for the total (docs/billing.md: Exports)."""
    head = {
        "invoice_number": invoice.number or f"draft-{invoice.pk}",
        "document_type": invoice.kind, "status": invoice.status,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else "",
        "period_start": invoice.period_start.isoformat(),
        "period_end": invoice.period_end.isoformat(),
        "issuer": (invoice.seller or {}).get("legal_name") or invoice.issuer.legal_name,
        "customer": (invoice.buyer or {}).get("legal_name") or invoice.customer.name,
        "customer_vat_id": (invoice.buyer or {}).get("vat_id", ""),
        "currency": invoice.currency,
    }
    for line in invoice.lines.all():
        yield head | {
            "row_type": "line", "line": line.position,
            "session_id": line.transaction_id or "", "station": line.station_id,
            "site": line.site_name, "card": line.card,
            "started_at": _local_iso(line.started_at, line.time_zone),
            "stopped_at": _local_iso(line.stopped_at, line.time_zone),
            "energy_kwh": f"{line.energy_kwh}", "duration_min": _minutes(line.duration_seconds),
            "idle_min": _minutes(line.idle_seconds), "vat_rate": f"{line.vat_rate}",
            "net_amount": f"{line.net_amount}",
        }
    for group in vat_groups(invoice):
        yield head | {"row_type": "vat", "vat_rate": f"{group.rate}",
                      "net_amount": f"{group.base}", "vat_amount": f"{group.amount}",
                      "gross_amount": f"{group.base + group.amount}"}
    yield head | {"row_type": "total", "net_amount": f"{invoice.net_total}",
                  "vat_amount": f"{invoice.vat_total}",
                  "gross_amount": f"{invoice.gross_total}"}


def invoices_csv(invoices: Iterable[Invoice]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for invoice in invoices:
        writer.writerows(invoice_rows(invoice))
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class RevenueRow:
    site: Site
    customer: str
    sessions: int
    energy_wh: Decimal
    net: Decimal
    vat: Decimal
    gross: Decimal


def _bounds(site: Site, start: date, end: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(site.time_zone or "UTC")
    return (datetime.combine(start, time(0), tzinfo=zone),
            datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone))


def revenue(sites: QuerySet[Site], start: date, end: date) -> list[RevenueRow]:
    """Per site and customer: priced sessions that ended within the period (site's calendar),
    invoiced or not. One query per site."""
    rows = []
    for site in sites.order_by("name"):
        since, until = _bounds(site, start, end)
        totals = (SessionCost.objects
                  .filter(transaction__station__site=site, state=SessionCost.State.FINAL,
                          transaction__stopped_at__gte=since,
                          transaction__stopped_at__lt=until)
                  .values("customer__name")
                  .annotate(sessions=Count("pk"), energy=Sum("energy_wh"), net=Sum("net"),
                            vat=Sum("vat_amount"), gross=Sum("gross"))
                  .order_by("customer__name"))
        for total in totals:
            # SQLite sums decimals as floats: back to the cent (or Wh) they are exact in.
            rows.append(RevenueRow(
                site, total["customer__name"] or "(no customer)", total["sessions"],
                Decimal(total["energy"] or 0).quantize(Decimal("0.001")),
                *(Decimal(total[k] or 0).quantize(CENT) for k in ("net", "vat", "gross"))))
    return rows


def revenue_totals(rows: list[RevenueRow]) -> dict[str, Decimal | int]:
    return {"sessions": sum(r.sessions for r in rows),
            "energy_wh": sum((r.energy_wh for r in rows), Decimal(0)),
            **{name: sum((getattr(r, name) for r in rows), Decimal("0.00"))
               for name in ("net", "vat", "gross")}}


REVENUE_COLUMNS = ["site", "customer", "period_start", "period_end", "sessions", "energy_kwh",
                   "net_amount", "vat_amount", "gross_amount"]


def revenue_csv(rows: list[RevenueRow], start: date, end: date) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REVENUE_COLUMNS)
    for row in rows:
        writer.writerow([row.site.name, row.customer, start.isoformat(), end.isoformat(),
                         row.sessions, f"{row.energy_wh / 1000:.3f}", row.net, row.vat,
                         row.gross])
    return out.getvalue().encode("utf-8")


# --- downloads ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Download:
    """A file a person takes away; the pages and the API answer with it as an attachment."""

    data: bytes
    filename: str
    content_type: str

    def response(self) -> HttpResponse:
        response = HttpResponse(self.data, content_type=self.content_type)
        response["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        return response


def _exported(user: AbstractBaseUser, summary: str, target: str, **details) -> None:
    audit.record(user, AuditEntry.Action.EXPORT, summary, target=target, details=details)


# An invoice's files: content type and builder per format.
INVOICE_FORMATS = {
    "pdf": ("application/pdf", pdf.render),
    "xml": ("application/xml", einvoice.build),
    "csv": ("text/csv", lambda invoice: invoices_csv([invoice])),
}


def invoice_download(user: AbstractBaseUser, invoice: Invoice, kind: str) -> Download:
    """One invoice as PDF (Factur-X), XML (EN 16931) or CSV, audited. Raises KeyError for
    another format and einvoice.EInvoiceError when the invoice cannot be an e-invoice."""
    content_type, build = INVOICE_FORMATS[kind]
    data = build(invoice)
    name = invoice.number or f"draft {invoice.pk}"
    _exported(user, f"downloaded invoice {name} as {kind.upper()}", f"invoice:{invoice.pk}",
              format=kind)
    return Download(data, f"{invoice.file_stem}.{kind}", content_type)


def invoices_download(user: AbstractBaseUser, invoices: QuerySet[Invoice],
                      start: date) -> Download:
    """The invoices of a month as one CSV, audited."""
    listed = list(invoices)
    _exported(user, f"exported {len(listed)} invoices of {start:%Y-%m} as CSV", "invoices",
              month=f"{start:%Y-%m}", count=len(listed))
    return Download(invoices_csv(listed), f"invoices-{start:%Y-%m}.csv", "text/csv")


def revenue_download(user: AbstractBaseUser, rows: list[RevenueRow], start: date,
                     end: date) -> Download:
    """A revenue statement as CSV, audited."""
    _exported(user, f"exported the revenue of {start:%Y-%m} ({len(rows)} rows) as CSV",
              "revenue", period=[start.isoformat(), end.isoformat()],
              sites=sorted({row.site.pk for row in rows}))
    return Download(revenue_csv(rows, start, end), f"revenue-{start:%Y-%m}.csv", "text/csv")


def export_download(user: AbstractBaseUser, job: ExportJob) -> FileResponse:
    """A finished bulk export's zip, streamed from storage, audited."""
    _exported(user, f"downloaded the billing export of {job.period_start}..{job.period_end}",
              f"export:{job.pk}", period=[job.period_start.isoformat(),
                                          job.period_end.isoformat()])
    return FileResponse(job.file.open("rb"), as_attachment=True,
                        filename=job.file.name.rsplit("/", 1)[-1])


def period_invoices(start: date, end: date) -> QuerySet[Invoice]:
    """Issued documents (invoices and credit notes, whatever their status now) of a period."""
    return (Invoice.objects.exclude(status=Invoice.Status.DRAFT)
            .filter(period_start__gte=start, period_end__lte=end)
            .select_related("issuer", "customer", "corrects").order_by("issuer", "sequence"))


def build_zip(job: ExportJob) -> None:
    """Every issued document of the job's period as PDF (Factur-X) and XML, the CSV of them
    all, and the revenue statement of every site; `done` counts documents as they are added."""
    invoices = list(period_invoices(job.period_start, job.period_end))
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING,
                                               total=len(invoices) + 2, done=0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for done, invoice in enumerate(invoices, start=1):
            archive.writestr(f"invoices/{invoice.file_stem}.pdf", pdf.render(invoice))
            archive.writestr(f"invoices/{invoice.file_stem}.xml", einvoice.build(invoice))
            ExportJob.objects.filter(pk=job.pk).update(done=done)
        archive.writestr("invoices.csv", invoices_csv(invoices))
        ExportJob.objects.filter(pk=job.pk).update(done=len(invoices) + 1)
        rows = revenue(Site.objects.all(), job.period_start, job.period_end)
        archive.writestr("revenue_by_site.csv",
                         revenue_csv(rows, job.period_start, job.period_end))
    name = f"billing-{job.period_start:%Y%m%d}-{job.period_end:%Y%m%d}-{job.pk}.zip"
    job.file.save(name, ContentFile(buffer.getvalue()), save=False)
    ExportJob.objects.filter(pk=job.pk).update(
        file=job.file.name, status=ExportJob.Status.DONE, done=len(invoices) + 2,
        finished_at=timezone.now())
