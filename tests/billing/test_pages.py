"""The billing pages as people use them: finance defines a tariff and invoices, a property
manager reads their sites' revenue, a fleet admin their invoices; nobody sees another's."""

import csv
import io
import re
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from pypdf import PdfReader

from billing import invoices
from billing.models import Invoice, SessionCost, Tariff
from tests.support.billing_cast import at, charge, fleet_sessions

NOVEMBER = "2026-11"


@pytest.fixture
def november(personas, cast):
    fleet_sessions(personas)
    charge(personas.station_b, personas.token, start=at("2026-11-12T08:00"),
           readings=[(0, 0), (60, 10000)], stop=60)  # no tariff at site B


def test_finance_defines_a_tariff_with_a_night_window_and_assigns_it(client, personas, cast):
    issuer, _ = cast
    client.force_login(personas.finance)
    response = client.post("/billing/tariffs/", {
        "tariff-name": "Night saver", "tariff-issuer": issuer.pk, "tariff-currency": "EUR",
        "version-valid_from": "2026-01-01T00:00", "version-price_kwh": "0.45",
        "version-price_minute": "0", "version-session_fee": "0.50",
        "version-idle_price_minute": "0.10", "version-idle_grace_minutes": "30",
        "version-min_price": "", "version-max_price": "", "version-vat_rate": "19",
        "version-note": "", "window-TOTAL_FORMS": "2", "window-INITIAL_FORMS": "0",
        "window-0-label": "night", "window-0-weekdays": ["0", "1", "2", "3", "4", "5", "6"],
        "window-0-start": "22:00", "window-0-end": "06:00", "window-0-price_kwh": "0.30",
        "window-0-price_minute": "0",
    })
    assert response.status_code == 302, response.content.decode()[-3000:]
    tariff = Tariff.objects.get(name="Night saver")
    assert response.status_code == 302 and response.url == f"/billing/tariffs/{tariff.pk}/"
    version = tariff.versions.get()
    assert (version.price_kwh, version.session_fee, version.windows.get().label) == (
        D("0.45"), D("0.50"), "night")
    response = client.post(f"/billing/tariffs/{tariff.pk}/assign/",
                           {"station": personas.station_b.pk})
    assert response.status_code == 302
    page = client.get(f"/billing/tariffs/{tariff.pk}/").content.decode()
    assert "station STATION-B" in page and "22:00\u201306:00" in page
    # Changing prices makes a version; a past start is refused with a readable message.
    response = client.post(f"/billing/tariffs/{tariff.pk}/", {
        "version-valid_from": "2026-02-01T00:00", "version-price_kwh": "0.50",
        "version-price_minute": "0", "version-session_fee": "0", "version-idle_price_minute": "0",
        "version-idle_grace_minutes": "0", "version-vat_rate": "19",
        "window-TOTAL_FORMS": "0", "window-INITIAL_FORMS": "0"}, follow=True)
    assert "cannot start in the past" in response.content.decode()
    assert tariff.versions.count() == 1


def test_only_finance_and_operators_edit(client, personas, cast, november):
    for who in (personas.manager, personas.fleet):
        client.force_login(who)
        assert client.post("/billing/invoices/", {"month": NOVEMBER}).status_code == 403
        assert client.post("/billing/tariffs/", {}).status_code == 403
        assert client.get("/billing/exports/").status_code == 403
    assert not Invoice.objects.exists()


def test_finance_generates_issues_and_downloads_the_month(client, personas, cast, november):
    client.force_login(personas.finance)
    response = client.post("/billing/invoices/", {"month": NOVEMBER}, follow=True)
    assert "1 invoice(s) generated for 2026-11" in response.content.decode()
    invoice = Invoice.objects.get()
    assert invoice.status == "draft" and invoice.gross_total == D("11.90")
    # Issuing asks first, saying what and how much; nothing happens until confirmed.
    asked = client.post(f"/billing/invoices/{invoice.pk}/issue/").content.decode()
    assert "Issue this invoice?" in asked and "11.90 EUR" in asked
    invoice.refresh_from_db()
    assert invoice.status == "draft"
    client.post(f"/billing/invoices/{invoice.pk}/issue/", {"confirmed": "yes"})
    invoice.refresh_from_db()
    assert invoice.number == "INV-000001"

    page = client.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    assert "INV-000001" in page and "11.90 EUR" in page
    pdf = client.get(f"/billing/invoices/{invoice.pk}.pdf")
    assert pdf["Content-Type"] == "application/pdf"
    assert "INV-000001.pdf" in pdf["Content-Disposition"]
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert "Invoice INV-000001" in text and "11.90 EUR" in text
    xml = client.get(f"/billing/invoices/{invoice.pk}.xml")
    assert b"<ram:GrandTotalAmount>11.90</ram:GrandTotalAmount>" in xml.content
    rows = list(csv.DictReader(io.StringIO(client.get(
        f"/billing/invoices/export.csv?month={invoice.issue_date:%Y-%m}").content.decode(
            "utf-8-sig"))))
    assert [r["row_type"] for r in rows] == ["line", "line", "vat", "total"]
    assert rows[-1]["gross_amount"] == "11.90"
    # Issued means frozen: a second issue is refused readably.
    response = client.post(f"/billing/invoices/{invoice.pk}/issue/", {"confirmed": "yes"},
                           follow=True)
    assert "not a draft" in response.content.decode()


def test_fleet_admin_sees_their_issued_invoices_only(client, personas, cast, november):
    draft, = invoices.generate(date_of("2026-11-01"), date_of("2026-11-30"))
    client.force_login(personas.fleet)
    assert client.get(f"/billing/invoices/{draft.pk}/").status_code == 404  # a draft: not yet
    invoices.issue(draft)
    assert client.get(f"/billing/invoices/{draft.pk}/").status_code == 200
    assert client.get(f"/billing/invoices/{draft.pk}.pdf").status_code == 200
    client.force_login(personas.manager)
    assert client.get(f"/billing/invoices/{draft.pk}/").status_code == 404
    assert client.get(f"/billing/invoices/{draft.pk}.pdf").status_code == 404


def date_of(text: str):
    return datetime.fromisoformat(text).date()


def test_property_manager_reads_their_sites_revenue_only(client, personas, cast, november):
    client.force_login(personas.manager)
    page = client.get(f"/billing/revenue/?month={NOVEMBER}").content.decode()
    assert "Site A" in page and "10.00 EUR" in page and "Site B" not in page
    data = client.get(f"/billing/revenue/?month={NOVEMBER}&format=csv").content.decode(
        "utf-8-sig")
    assert "Site A,Fleet,2026-11-01,2026-11-30,2,25.000,10.00,1.90,11.90" in data
    client.force_login(personas.outsider)
    page = client.get(f"/billing/revenue/?month={NOVEMBER}").content.decode()
    assert "Site A" not in page


def test_session_page_shows_the_running_cost(client, personas, cast):
    tx = charge(personas.station_a, personas.fleet_token,
                start=timezone.now() - timedelta(minutes=20),
                readings=[(0, 0), (10, 2500)])
    client.force_login(personas.manager)
    page = client.get(f"/sessions/{tx.pk}/").content.decode()
    assert 'data-testid="running-cost"' in page and "1.19 EUR" in page  # 2.5 kWh x 0.40 + VAT
    assert f'hx-get="/billing/sessions/{tx.pk}/cost/"' in page
    fragment = client.get(f"/billing/sessions/{tx.pk}/cost/").content.decode()
    assert "1.19 EUR" in fragment
    client.force_login(personas.outsider)
    assert client.get(f"/billing/sessions/{tx.pk}/cost/").status_code == 404


def test_review_queue_accept_and_exclude(client, personas, cast):
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 5000), (30, 9000), (45, 2000), (60, 9500)], stop=60)
    client.force_login(personas.finance)
    page = client.get("/billing/sessions/?state=review").content.decode()
    assert "backwards" in page
    response = client.post(f"/billing/sessions/{tx.pk}/",
                           {"action": "exclude", "note": "meter replaced"}, follow=True)
    assert "will not be billed" in response.content.decode()
    assert SessionCost.objects.get(transaction=tx).state == "excluded"
    client.force_login(personas.manager)
    assert client.post(f"/billing/sessions/{tx.pk}/", {"action": "accept"}).status_code == 403


def test_lists_take_a_fixed_number_of_queries(client, personas, cast, november,
                                             django_assert_max_num_queries):
    invoices.generate(date_of("2026-11-01"), date_of("2026-11-30"), issue=True)
    client.force_login(personas.finance)
    for url in ("/billing/", "/billing/sessions/", "/billing/invoices/", "/billing/tariffs/",
                f"/billing/revenue/?month={NOVEMBER}"):
        with django_assert_max_num_queries(14):
            assert client.get(url).status_code == 200, url


def test_bulk_export_of_a_month(client, personas, cast, november, settings, tmp_path,
                                django_capture_on_commit_callbacks, eager):
    settings.MEDIA_ROOT = tmp_path
    invoice, = invoices.generate(date_of("2026-11-01"), date_of("2026-11-30"), issue=True)
    issued = f"{invoice.issue_date:%Y-%m}"  # the zip holds what was issued in the month
    client.force_login(personas.finance)
    with django_capture_on_commit_callbacks(execute=True):  # the job starts after commit
        response = client.post("/billing/exports/", {"month": issued}, follow=True)
    assert f"Export of {issued} started" in response.content.decode()
    page = client.get("/billing/exports/").content.decode()
    assert "Download zip" in page and "3 of 3" in page  # eager Celery: done already
    download = re.search(r'href="(/billing/exports/\d+/download/)"', page).group(1)
    archive = client.get(download)
    names = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    assert sorted(names) == ["invoices.csv", "invoices/INV-000001.pdf",
                             "invoices/INV-000001.xml", "revenue_by_site.csv"]


def test_finance_invoices_one_customer_and_confirms_what_cannot_be_undone(client, personas,
                                                                           cast, november):
    """Generating for one customer leaves the others' sessions alone; issuing at once, crediting
    and discarding each ask first; every step is in the audit log with who did it."""
    from accounts.models import AuditEntry

    charge(personas.station_a, personas.token, start=at("2026-11-13T08:00"),
           readings=[(0, 0), (60, 5000)], stop=60)  # the operator's own card: 2.00 + VAT
    client.force_login(personas.finance)
    asked = client.post("/billing/invoices/", {"month": NOVEMBER, "issue": "on",
                                               "customer": personas.fleet_org.pk})
    page = asked.content.decode()
    assert "Issue these invoices at once?" in page and "10.00 EUR" in page
    assert "Operator" not in re.sub(r"Operator GmbH", "", page.split("<table>")[1])
    assert not Invoice.objects.exists()
    response = client.post("/billing/invoices/", {"month": NOVEMBER, "issue": "on",
                                                  "customer": personas.fleet_org.pk,
                                                  "confirmed": "yes"}, follow=True)
    assert "1 invoice(s) generated to Fleet for 2026-11" in response.content.decode()
    invoice = Invoice.objects.get()
    assert (invoice.customer, invoice.number) == (personas.fleet_org, "INV-000001")
    assert SessionCost.objects.filter(invoice=None, customer=personas.operator_org,
                                      state="final").count() == 1

    asked = client.post(f"/billing/invoices/{invoice.pk}/credit/", {"reason": "wrong address",
                                                                    "rebill": "on"})
    assert "billed again" in asked.content.decode()
    assert not Invoice.objects.filter(kind="credit_note").exists()
    client.post(f"/billing/invoices/{invoice.pk}/credit/", {"reason": "wrong address",
                                                            "rebill": "on", "confirmed": "yes"})
    invoice.refresh_from_db()
    assert invoice.status == "void"

    client.post("/billing/invoices/", {"month": NOVEMBER, "customer": personas.fleet_org.pk})
    draft = Invoice.objects.get(status="draft")
    assert "Discard this draft?" in client.post(
        f"/billing/invoices/{draft.pk}/discard/").content.decode()
    assert Invoice.objects.filter(pk=draft.pk).exists()
    client.post(f"/billing/invoices/{draft.pk}/discard/", {"confirmed": "yes"})
    assert not Invoice.objects.filter(pk=draft.pk).exists()

    logged = list(AuditEntry.objects.filter(actor=personas.finance).order_by("at", "id")
                  .values_list("action", flat=True))
    assert logged == ["invoice.generated", "invoice.issued", "invoice.credited",
                      "invoice.generated", "invoice.discarded"]
    credited = AuditEntry.objects.get(action="invoice.credited")
    assert credited.target == f"invoice:{invoice.pk}" and "INV-000002" in credited.summary


def test_finance_corrects_a_rolled_over_meter_on_the_session_page(client, personas, cast):
    tx = charge(personas.station_a, personas.fleet_token, start=at("2026-11-02T10:00"),
                readings=[(0, 99_990_000), (30, 99_999_000), (60, 1_500)], stop=60)
    client.force_login(personas.finance)
    page = client.get(f"/billing/sessions/{tx.pk}/").content.decode()
    assert 'data-testid="correct-energy"' in page and "backwards" in page
    # Accept says why it cannot, instead of leaving the session as it was without a word.
    response = client.post(f"/billing/sessions/{tx.pk}/", {"action": "accept"}, follow=True)
    assert "enter the corrected energy" in response.content.decode()
    assert SessionCost.objects.get(transaction=tx).state == "review"
    response = client.post(f"/billing/sessions/{tx.pk}/", {
        "action": "correct", "kwh": "11.5", "reason": "meter rollover"}, follow=True)
    assert "Priced with the corrected energy: final, 5.47 EUR" in response.content.decode()
    cost = SessionCost.objects.get(transaction=tx)
    assert (cost.state, cost.net, cost.corrected_energy_wh, cost.reviewed_by) == (
        "final", D("4.60"), D("11500"), personas.finance)
    # Somebody without billing rights cannot decide.
    client.force_login(personas.manager)  # reads site A's costs, decides nothing
    assert client.post(f"/billing/sessions/{tx.pk}/", {"action": "correct", "kwh": "1",
                                                       "reason": "x"}).status_code == 403
