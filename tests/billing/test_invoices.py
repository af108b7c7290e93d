"""Invoices from priced sessions: generation, VAT per rate, numbering, immutability, credit
notes, and the three exports (CSV, PDF, EN 16931 XML) agreeing with each other and the sessions."""

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from facturx import get_xml_from_pdf
from lxml import etree
from pypdf import PdfReader

from billing import einvoice, exports, invoices, pdf
from billing.models import Invoice, InvoiceLine, SessionCost
from tests.support.billing_cast import at, charge, make_tariff

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
RAM = {"ram": einvoice.RAM, "rsm": einvoice.RSM}


@pytest.fixture
def month(personas, cast):
    """Three fleet sessions in November at site A (0.40 €/kWh, 19 %) and one at a station
    priced at 7 % VAT; the operator's own card charges too (another customer)."""
    issuer, _ = cast
    make_tariff(issuer, name="Reduced", station=personas.station_b, price_kwh=D("0.37"),
                vat_rate=D("7"))
    sessions = [
        charge(personas.station_a, personas.fleet_token, start=at("2026-11-03T08:00"),
               readings=[(0, 0), (60, 25000)], stop=60),        # 10.00
        charge(personas.station_a, personas.fleet_token, start=at("2026-11-10T18:00"),
               readings=[(0, 1000), (45, 14875)], stop=45),     # 13.875 kWh → 5.55
        charge(personas.station_b, personas.fleet_token, start=at("2026-11-20T07:00"),
               readings=[(0, 0), (30, 9000)], stop=30),         # 9 x 0.37 = 3.33 @ 7 %
        charge(personas.station_a, personas.token, start=at("2026-11-21T07:00"),
               readings=[(0, 0), (30, 5000)], stop=30),         # operator card: 2.00
    ]
    return issuer, sessions


def test_vat_on_mixed_rates(personas, month):
    fleet_invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    # 19 %: (10.00 + 5.55) = 15.55 → 2.9545 → 2.95; 7 %: 3.33 → 0.2331 → 0.23.
    groups = invoices.vat_groups(fleet_invoice)
    assert [(g.rate, g.base, g.amount) for g in groups] == [
        (D("7.00"), D("3.33"), D("0.23")), (D("19.00"), D("15.55"), D("2.95"))]
    assert (fleet_invoice.net_total, fleet_invoice.vat_total, fleet_invoice.gross_total) == (
        D("18.88"), D("3.18"), D("22.06"))
    assert fleet_invoice.lines.count() == 3 and fleet_invoice.status == Invoice.Status.DRAFT


def test_generation_is_per_customer_and_idempotent(personas, month):
    made = invoices.generate(*NOVEMBER)
    assert sorted(i.customer.name for i in made) == ["Fleet", "Operator"]
    assert invoices.generate(*NOVEMBER) == []  # nothing left to bill
    assert SessionCost.objects.filter(invoice__isnull=True, state="final").count() == 0


def test_issue_numbers_and_freezes(personas, month):
    made = invoices.generate(*NOVEMBER, issue=True)
    assert [i.number for i in made] == ["INV-000001", "INV-000002"]
    first, = (i for i in made if i.customer == personas.fleet_org)
    assert first.seller["vat_id"] == "DE123456789" and first.buyer["legal_name"] == "Fleet AG"
    first.net_total = D("1.00")
    with pytest.raises(ValidationError, match="cannot be changed"):
        first.save()
    with pytest.raises(ValidationError):
        Invoice.objects.filter(pk=first.pk).update(net_total=D("1.00"))
    with pytest.raises(ValidationError):
        first.refresh_from_db()
        first.delete()
    line = first.lines.first()
    line.net_amount = D("0.01")
    with pytest.raises(ValidationError):
        line.save()
    with pytest.raises(ValidationError):
        InvoiceLine.objects.filter(invoice=first).delete()
    invoices.mark_paid(first)
    first.refresh_from_db()
    assert first.status == Invoice.Status.PAID
    first.status = Invoice.Status.DRAFT
    with pytest.raises(ValidationError, match="cannot go from paid to draft"):
        first.save()


def test_credit_note_voids_and_rebills(personas, month):
    original, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(original, rebill=True, reason="Wrong customer address")
    original.refresh_from_db()
    assert original.status == Invoice.Status.VOID
    assert (note.kind, note.number, note.corrects_id) == ("credit_note", "INV-000002",
                                                          original.pk)
    assert (note.net_total, note.vat_total, note.gross_total) == (D("-18.88"), D("-3.18"),
                                                                  D("-22.06"))
    again, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    assert again.number == "INV-000003" and again.gross_total == D("22.06")
    with pytest.raises(invoices.InvoiceError):
        invoices.credit(original, rebill=False)


def test_a_draft_can_be_discarded_and_its_sessions_billed_again(personas, month):
    draft, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    invoices.discard(draft)
    again, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    assert again.lines.count() == 3 and again.sequence is None


def _csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_pdf_and_xml_agree_with_each_other_and_the_sessions(personas, month):
    _, sessions = month
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)

    rows = _csv_rows(exports.invoices_csv([invoice]))
    assert list(rows[0]) == exports.CSV_COLUMNS
    lines = [r for r in rows if r["row_type"] == "line"]
    total, = [r for r in rows if r["row_type"] == "total"]
    assert sum(D(r["net_amount"]) for r in lines) == D(total["net_amount"]) == D("18.88")
    assert sum(D(r["vat_amount"]) for r in rows if r["row_type"] == "vat") == D("3.18")
    assert D(total["gross_amount"]) == D("22.06")
    fleet_sessions = [tx for tx in sessions if tx.id_token == personas.fleet_token]
    assert sum(SessionCost.objects.get(transaction=tx).net for tx in fleet_sessions) == D(
        "18.88")
    assert [r["session_id"] for r in lines] == [str(tx.pk) for tx in fleet_sessions]
    assert lines[0]["started_at"] == "2026-11-03T09:00:00+01:00"  # Berlin wall clock
    assert lines[1]["energy_kwh"] == "13.875"

    document = pdf.render(invoice)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)
    for expected in ("Invoice INV-000001", "Operator GmbH", "Fleet AG", "DE987654321",
                     "FLEET-42", "2026-11-03 to 2026-11-20", "STATION-A", "TOKEN-FLEET",
                     "13.875", "VAT 19 % on 15.55 EUR", "2.95 EUR", "VAT 7 % on 3.33 EUR",
                     "0.23 EUR", "18.88 EUR", "22.06 EUR", "2026-11-03 09:00"):
        assert expected in text, expected

    # The PDF is a Factur-X: its attachment is the same e-invoice, valid against the XSD.
    filename, xml = get_xml_from_pdf(document, check_xsd=True)
    assert filename == "factur-x.xml"
    assert xml == einvoice.build(invoice)
    tree = etree.fromstring(xml)
    summary = tree.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", RAM)
    assert summary.findtext("ram:LineTotalAmount", namespaces=RAM) == "18.88"
    assert summary.findtext("ram:TaxTotalAmount", namespaces=RAM) == "3.18"
    assert summary.findtext("ram:GrandTotalAmount", namespaces=RAM) == "22.06"
    assert tree.findtext(".//rsm:ExchangedDocument/ram:ID", namespaces=RAM) == "INV-000001"
    line_totals = [D(e.text) for e in tree.iterfind(".//ram:LineTotalAmount", RAM)][:-1]
    assert sum(line_totals) == D("18.88")
    reader = PdfReader(io.BytesIO(document))
    assert "/OutputIntents" in reader.trailer["/Root"]
    assert b"pdfaid:part>3<" in reader.trailer["/Root"]["/Metadata"].get_object().get_data()


def test_the_credit_note_e_invoice_is_type_381_with_its_reference(personas, month):
    original, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(original, rebill=False)
    xml = einvoice.build(note)
    einvoice.check(xml)
    tree = etree.fromstring(xml)
    assert tree.findtext(".//rsm:ExchangedDocument/ram:TypeCode", namespaces=RAM) == "381"
    assert tree.findtext(".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID",
                         namespaces=RAM) == original.number
    assert tree.findtext(".//ram:GrandTotalAmount", namespaces=RAM) == "22.06"
    text = PdfReader(io.BytesIO(pdf.render(note))).pages[0].extract_text()
    assert "Credit note INV-000002" in text and "-22.06 EUR" in text
    assert SessionCost.objects.filter(state="excluded").count() == 3


def test_a_draft_pdf_says_it_is_a_draft_and_has_no_e_invoice(personas, month):
    draft, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    text = PdfReader(io.BytesIO(pdf.render(draft))).pages[0].extract_text()
    assert "DRAFT" in text
    with pytest.raises(einvoice.EInvoiceError):
        einvoice.build(draft)


def test_an_invalid_e_invoice_is_refused_by_the_schema(personas, month):
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    tree = etree.fromstring(einvoice.build(invoice))
    document = tree.find(".//rsm:ExchangedDocument", RAM)
    document.remove(document.find("ram:ID", RAM))  # BT-1, the invoice number, is mandatory
    with pytest.raises(Exception, match="not valid"):
        einvoice.check(etree.tostring(tree))


def test_revenue_per_site(personas, month):
    rows = exports.revenue(personas.site_a.__class__.objects.all(), *NOVEMBER)
    summary = {(r.site.name, r.customer): (r.sessions, r.energy_wh, r.net) for r in rows}
    assert summary == {
        ("Site A", "Fleet"): (2, D("38875"), D("15.55")),
        ("Site A", "Operator"): (1, D("5000"), D("2.00")),
        ("Site B", "Fleet"): (1, D("9000"), D("3.33")),
    }
    data = exports.revenue_csv(rows, *NOVEMBER).decode("utf-8-sig")
    assert data.splitlines()[0] == ",".join(exports.REVENUE_COLUMNS)
    assert "Site A,Fleet,2026-11-01,2026-11-30,2,38.875,15.55,2.95,18.50" in data
