"""Billing in a real browser (Debian's chromium, Playwright) against a real daphne, with a
simulated 1.6 charger charging: the running cost shows on the session page, the final cost
after the stop, and finance invoices the session and downloads its PDF."""

import io
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from pypdf import PdfReader

from billing.models import SessionCost
from stations.models import Transaction
from tests.support.billing_cast import billing_cast
from tests.support.browser import Dashboard, orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_sees_the_cost_and_invoices_the_session(dashboard: Dashboard, personas,
                                                        tmp_path: Path):
    orm(billing_cast, personas)  # site A: 0.40 EUR/kWh + 19 % VAT, invoiced by the operator
    charger = dashboard.charger("STATION-A")
    charger.do(charger.charger.start_session(1, "TOKEN-FLEET"))
    charger.do(charger.charger.send_meter_values(1))
    tx = orm(lambda: Transaction.objects.get(station_id="STATION-A"))

    page = dashboard.page()
    dashboard.log_in(page, "finance")
    page.goto(f"{dashboard.server}/sessions/{tx.pk}/")
    expect(page.get_by_test_id("running-cost")).to_contain_text("EUR")

    charger.do(charger.charger.stop_session(1))
    cost = orm(lambda: SessionCost.objects.get(transaction=tx))
    assert cost.state == "final"
    page.goto(f"{dashboard.server}/billing/sessions/{tx.pk}/")
    expect(page.get_by_test_id("final-cost")).to_have_text(f"{cost.gross:,.2f} EUR")

    page.goto(f"{dashboard.server}/billing/invoices/")
    page.locator("#id_month").select_option(timezone.now().strftime("%Y-%m"))
    page.get_by_label("Issue at once").check()
    page.get_by_role("button", name="Generate invoices").click()
    expect(page.get_by_role("heading", name="Issue these invoices at once?")).to_be_visible()
    page.get_by_role("button", name="Generate and issue").click()
    expect(page.get_by_text("1 invoice(s) generated")).to_be_visible()
    page.get_by_role("link", name="INV-000001").click()
    expect(page.get_by_role("heading", name="Invoice INV-000001")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    saved = tmp_path / "invoice.pdf"
    download.value.save_as(saved)
    text = PdfReader(io.BytesIO(saved.read_bytes())).pages[0].extract_text()
    assert "Invoice INV-000001" in text and f"{cost.gross:,.2f} EUR" in text
