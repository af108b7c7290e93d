"""Billing data that leaves the system is audited as an export, like cards and the audit log:
an invoice's PDF, XML or CSV, a month's invoices, a revenue statement, a bulk zip; on the pages
and through the API. What is refused or only shown on a page is not."""

from datetime import date

import pytest

from accounts.models import AuditEntry
from billing import invoices
from billing.models import Invoice
from tests.support.billing_cast import fleet_sessions

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture
def invoice(personas, cast) -> Invoice:
    fleet_sessions(personas)
    [issued] = invoices.generate(*NOVEMBER, issue=True)
    return issued


def exports() -> list[tuple[str, str, str, dict]]:
    return list(AuditEntry.objects.filter(action=AuditEntry.Action.EXPORT).order_by("id")
                .values_list("actor_name", "target", "summary", "details"))


def test_invoice_files_and_the_month_csv_downloaded_from_the_pages(client, personas, invoice):
    client.force_login(personas.finance)
    for kind in ("pdf", "xml", "csv"):
        assert client.get(f"/billing/invoices/{invoice.pk}.{kind}").status_code == 200
    issued = f"{invoice.issue_date:%Y-%m}"
    assert client.get(f"/billing/invoices/export.csv?month={issued}").status_code == 200
    target = f"invoice:{invoice.pk}"
    assert exports() == [
        ("finance", target, "downloaded invoice INV-000001 as PDF", {"format": "pdf"}),
        ("finance", target, "downloaded invoice INV-000001 as XML", {"format": "xml"}),
        ("finance", target, "downloaded invoice INV-000001 as CSV", {"format": "csv"}),
        ("finance", "invoices", f"exported 1 invoices issued in {issued} as CSV",
         {"month": issued, "count": 1}),
    ]


def test_invoice_files_downloaded_through_the_api(api, personas, invoice):
    client = api(personas.fleet)  # the customer's own invoice
    for kind in ("pdf", "xml", "csv"):
        response = client.get(f"/api/v1/billing/invoices/{invoice.pk}/{kind}/")
        assert response.status_code == 200, response.content
    assert [(actor, target, details["format"]) for actor, target, _, details in exports()] == [
        ("fleet", f"invoice:{invoice.pk}", kind) for kind in ("pdf", "xml", "csv")]


def test_what_is_refused_or_only_shown_is_not_an_export(client, api, personas, invoice):
    draft = Invoice.objects.create(issuer=invoice.issuer, customer=invoice.customer,
                                   period_start=NOVEMBER[0], period_end=NOVEMBER[1])
    client.force_login(personas.finance)
    # A draft has no e-invoice: the page says so, the API answers 400.
    assert client.get(f"/billing/invoices/{draft.pk}.xml").status_code == 302
    assert api(personas.finance).get(
        f"/api/v1/billing/invoices/{draft.pk}/xml/").status_code == 400
    assert client.get(f"/billing/invoices/{invoice.pk}.doc").status_code == 404
    assert client.get("/billing/revenue/?month=2026-11").status_code == 200  # the page
    client.force_login(personas.manager)  # not their invoice
    assert client.get(f"/billing/invoices/{invoice.pk}.pdf").status_code == 404
    assert exports() == []


def test_revenue_csv_is_audited_with_its_period_and_sites(client, personas, invoice):
    client.force_login(personas.manager)
    assert client.get("/billing/revenue/?month=2026-11&format=csv").status_code == 200
    assert exports() == [
        ("manager", "revenue", "exported the revenue of 2026-11 (1 rows) as CSV",
         {"period": ["2026-11-01", "2026-11-30"], "sites": [personas.site_a.pk]})]


def test_bulk_export_downloads_are_audited(client, api, personas, invoice, settings,
                                           tmp_path, django_capture_on_commit_callbacks,
                                           eager):
    settings.MEDIA_ROOT = tmp_path
    finance = api(personas.finance)
    with django_capture_on_commit_callbacks(execute=True):
        job = finance.post("/api/v1/billing/exports/", {"month": "2026-11"},
                           format="json").data
    assert exports() == []  # asked for, nothing has left yet
    assert finance.get(f"/api/v1/billing/exports/{job['id']}/download/").status_code == 200
    client.force_login(personas.operator)
    assert client.get(f"/billing/exports/{job['id']}/download/").status_code == 200
    entry = ("downloaded the billing export of 2026-11-01..2026-11-30",
             {"period": ["2026-11-01", "2026-11-30"]})
    assert exports() == [("finance", f"export:{job['id']}", *entry),
                         ("operator", f"export:{job['id']}", *entry)]
