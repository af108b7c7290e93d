"""Finance exports: the invoice CSV (one layout, documented in docs/billing.md, Exports), revenue
statements per site, and the bulk zip of a period built in the background with progress.

What a person downloads (an invoice's PDF, XML or CSV, a month's invoices, a revenue statement,
a bulk zip) is audited as an export, like card and audit-log exports: who took which data, when.
"""

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
from csms import csvfiles

CSV_COLUMNS = [
    "row_type", "invoice_number", "document_type", "status", "issue_date", "due_date",
    "period_start", "period_end", "service_start", "service_end", "corrects_invoice", "issuer",
    "seller_vat_id", "customer", "customer_vat_id", "buyer_reference", "currency", "line",
    "session_id", "station", "site", "card", "started_at", "stopped_at", "energy_kwh",
    "duration_min", "idle_min", "vat_rate", "net_amount", "vat_amount", "gross_amount",
]


def _local_iso(moment: datetime | None, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds") if moment else ""


def _minutes(seconds: int) -> Decimal:
    return (Decimal(seconds) / 60).quantize(Decimal("0.1"))


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def invoice_rows(invoice: Invoice) -> Iterable[dict]:
    """One row per session line, one per VAT rate, one for the total (docs/billing.md: Exports).
    Amounts and quantities stay numbers, for the CSV writer to lay out."""
    lines = list(invoice.lines.all())
    service = einvoice.service_period(lines) or (None, None)
    seller, buyer = invoice.seller or {}, invoice.buyer or {}
    head = {
        "invoice_number": invoice.number or f"draft-{invoice.pk}",
        "document_type": invoice.kind, "status": invoice.status,
        "issue_date": _iso(invoice.issue_date),
        # A credit note is paid by nobody: its due date is written nowhere (PDF, XML, CSV).
        "due_date": _iso(invoice.due_date) if invoice.kind == Invoice.Kind.INVOICE else "",
        "period_start": _iso(invoice.period_start), "period_end": _iso(invoice.period_end),
        "service_start": _iso(service[0]), "service_end": _iso(service[1]),
        "corrects_invoice": invoice.corrects.number if invoice.corrects_id else "",
        "issuer": seller.get("legal_name") or invoice.issuer.legal_name,
        "seller_vat_id": seller.get("vat_id", invoice.issuer.vat_id),
        "customer": buyer.get("legal_name") or invoice.customer.name,
        "customer_vat_id": buyer.get("vat_id", ""),
        "buyer_reference": invoice.buyer_reference, "currency": invoice.currency,
    }
    for line in lines:
        line_start, line_end = line.service_period
        yield head | {
            "row_type": "line", "line": line.position,
            "service_start": line_start.isoformat(), "service_end": line_end.isoformat(),
            "session_id": line.transaction_id or "", "station": line.station_id,
            "site": line.site_name, "card": line.card,
            "started_at": _local_iso(line.started_at, line.time_zone),
            "stopped_at": _local_iso(line.stopped_at, line.time_zone),
            "energy_kwh": line.energy_kwh, "duration_min": _minutes(line.duration_seconds),
            "idle_min": _minutes(line.idle_seconds), "vat_rate": line.vat_rate,
            "net_amount": line.net_amount,
        }
    for group in vat_groups(invoice):
        yield head | {"row_type": "vat", "vat_rate": group.rate, "net_amount": group.base,
                      "vat_amount": group.amount, "gross_amount": group.base + group.amount}
    yield head | {"row_type": "total", "net_amount": invoice.net_total,
                  "vat_amount": invoice.vat_total, "gross_amount": invoice.gross_total}


def invoices_csv(invoices: Iterable[Invoice], layout: csvfiles.Layout = csvfiles.COMMA
                 ) -> bytes:
    rows = (row for invoice in invoices for row in invoice_rows(invoice))
    return csvfiles.csv_file(CSV_COLUMNS, ([row.get(column) for column in CSV_COLUMNS]
                                           for row in rows), layout)


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


def revenue_csv(rows: list[RevenueRow], start: date, end: date,
                layout: csvfiles.Layout = csvfiles.COMMA) -> bytes:
    return csvfiles.csv_file(REVENUE_COLUMNS, (
        [row.site.name, row.customer, start.isoformat(), end.isoformat(), row.sessions,
         (row.energy_wh / 1000).quantize(Decimal("0.001")), row.net, row.vat, row.gross]
        for row in rows), layout)


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
    "pdf": ("application/pdf", lambda invoice, _layout: pdf.render(invoice)),
    "xml": ("application/xml", lambda invoice, _layout: einvoice.build(invoice)),
    "csv": (csvfiles.CONTENT_TYPE, lambda invoice, layout: invoices_csv([invoice], layout)),
}


def invoice_download(user: AbstractBaseUser, invoice: Invoice, kind: str,
                     layout: csvfiles.Layout = csvfiles.COMMA) -> Download:
    """One invoice as PDF (Factur-X), XML (EN 16931) or CSV (in `layout`), audited. Raises
    KeyError for another format and einvoice.EInvoiceError when the invoice cannot be an
    e-invoice."""
    content_type, build = INVOICE_FORMATS[kind]
    data = build(invoice, layout)
    name = invoice.number or f"draft {invoice.pk}"
    _exported(user, f"downloaded invoice {name} as {kind.upper()}", f"invoice:{invoice.pk}",
              format=kind)
    return Download(data, f"{invoice.file_stem}.{kind}", content_type)


def invoices_download(user: AbstractBaseUser, invoices: QuerySet[Invoice], start: date,
                      end: date, layout: csvfiles.Layout = csvfiles.COMMA) -> Download:
    """The documents issued in a month (of those `invoices`) as one CSV, audited."""
    listed = list(issued_between(invoices, start, end))
    _exported(user, f"exported {len(listed)} invoices issued in {start:%Y-%m} as CSV",
              "invoices", month=f"{start:%Y-%m}", count=len(listed))
    return Download(invoices_csv(listed, layout), f"invoices-{start:%Y-%m}.csv",
                    csvfiles.CONTENT_TYPE)


def revenue_download(user: AbstractBaseUser, rows: list[RevenueRow], start: date,
                     end: date, layout: csvfiles.Layout = csvfiles.COMMA) -> Download:
    """A revenue statement as CSV, audited."""
    _exported(user, f"exported the revenue of {start:%Y-%m} ({len(rows)} rows) as CSV",
              "revenue", period=[start.isoformat(), end.isoformat()],
              sites=sorted({row.site.pk for row in rows}))
    return Download(revenue_csv(rows, start, end, layout), f"revenue-{start:%Y-%m}.csv",
                    csvfiles.CONTENT_TYPE)


def export_download(user: AbstractBaseUser, job: ExportJob) -> FileResponse:
    """A finished bulk export's zip, streamed from storage, audited."""
    _exported(user, f"downloaded the billing export of {job.period_start}..{job.period_end}",
              f"export:{job.pk}", period=[job.period_start.isoformat(),
                                          job.period_end.isoformat()])
    return FileResponse(job.file.open("rb"), as_attachment=True,
                        filename=job.file.name.rsplit("/", 1)[-1])


def issued_between(invoices: QuerySet[Invoice], start: date, end: date) -> QuerySet[Invoice]:
    """The documents (invoices and credit notes, whatever their status now) issued from `start`
    to `end`: accounting books a document by its issue date, whatever period it bills."""
    return (invoices.exclude(status=Invoice.Status.DRAFT)
            .filter(issue_date__gte=start, issue_date__lte=end)
            .select_related("issuer", "customer", "corrects").order_by("issuer", "sequence"))


def build_zip(job: ExportJob) -> None:
    """Every document issued in the job's period as PDF (Factur-X) and XML, the CSV of them
    all, and the revenue statement of every site; `done` counts documents as they are added."""
    invoices = list(issued_between(Invoice.objects.all(), job.period_start, job.period_end))
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
