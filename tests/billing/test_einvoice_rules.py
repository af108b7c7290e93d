"""EN 16931 beyond the schema: every document is run through CEN/TC 434's Schematron (the
compiled CII XSLT, by Saxon-HE) when it is issued, and a document breaking a fatal rule is not
issued: the person is told which rule and what to fill in."""

import hashlib
from datetime import date
from decimal import Decimal as D

import pytest
from lxml import etree

from billing import einvoice, einvoice_rules, invoices
from billing.models import Invoice, Issuer
from tests.support.billing_cast import at, charge, make_tariff

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
RAM = {"ram": einvoice.RAM, "rsm": einvoice.RSM}


def _rules(xml: bytes) -> list[str]:
    return [failure.rule for failure in einvoice_rules.failures(xml) if failure.fatal]


@pytest.fixture
def sessions(personas, cast):
    """Fleet sessions at 19 % and 7 % and a 0 kWh session (priced 0.00: station A's tariff,
    the site's prices, bills sessions that delivered no energy)."""
    issuer, _ = cast
    make_tariff(issuer, name="Empty sessions billed", station=personas.station_a,
                bills_empty_sessions=True)
    make_tariff(issuer, name="Reduced", station=personas.station_b, price_kwh=D("0.37"),
                vat_rate=D("7"))
    charge(personas.station_a, personas.fleet_token, start=at("2026-11-03T08:00"),
           readings=[(0, 0), (60, 25000)], stop=60)
    charge(personas.station_b, personas.fleet_token, start=at("2026-11-20T07:00"),
           readings=[(0, 0), (30, 9000)], stop=30)
    charge(personas.station_a, personas.fleet_token, start=at("2026-11-25T08:00"),
           readings=[(0, 0), (60, 0)], stop=60)
    return issuer


def test_the_vendored_rules_are_the_published_artefact():
    data = einvoice_rules.RULES_XSLT.read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "b98ac4b99611b4fa332820e130f551805201a602d4f33173016f975ea904f192")
    stylesheet = etree.fromstring(data)  # complete: well-formed to its last element
    asserts = stylesheet.findall(".//{http://purl.oclc.org/dsdl/svrl}failed-assert")
    assert len(asserts) == 806
    assert b"Schematron version 1.3.16" in data


def test_the_rules_find_what_the_schema_cannot(personas, sessions):
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    xml = einvoice.build(invoice)
    einvoice.check(xml)
    assert _rules(xml) == []
    tree = etree.fromstring(xml)
    tree.find(".//ram:GrandTotalAmount", RAM).text = "1.00"
    tampered = etree.tostring(tree)
    einvoice.check(tampered)  # the schema has nothing against a wrong total
    assert {"BR-CO-15", "BR-CO-16"} <= set(_rules(tampered))


def test_invoices_and_credit_notes_with_several_rates_and_a_zero_line_pass(personas, sessions):
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(invoice, rebill=False)
    xml = einvoice.build(note)
    assert _rules(xml) == []
    prices = [e.text for e in etree.fromstring(xml).iterfind(".//ram:ChargeAmount", RAM)]
    assert prices == ["10.00", "3.33", "0.00"]  # never "-0.00" (BR-27)
    rates = {e.text for e in etree.fromstring(xml).iterfind(
        ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/"
        "ram:RateApplicablePercent", RAM)}
    assert rates == {"7.00", "19.00"}


def test_a_zero_rate_invoice_passes(personas, cast):
    issuer, _ = cast
    make_tariff(issuer, name="Exempt", station=personas.station_b, vat_rate=D("0"))
    charge(personas.station_b, personas.fleet_token, start=at("2026-11-20T07:00"),
           readings=[(0, 0), (30, 9000)], stop=30)
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    xml = einvoice.build(invoice)
    assert _rules(xml) == []
    assert etree.fromstring(xml).findtext(".//ram:CategoryCode", namespaces=RAM) == "Z"


def test_an_issuer_without_vat_id_is_refused_with_the_rules_shown(personas, sessions):
    Issuer.objects.filter(pk=sessions.pk).update(vat_id="")
    draft, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    with pytest.raises(einvoice.EInvoiceRulesError) as refused:
        invoices.issue(draft)
    assert {f.rule for f in refused.value.failures} == {"BR-S-02", "BR-CO-26"}
    assert any("BR-S-02" in m and "tax number" in m for m in refused.value.messages)
    draft.refresh_from_db()
    assert (draft.status, draft.number) == (Invoice.Status.DRAFT, "")
    assert Issuer.objects.get(pk=sessions.pk).next_number == 1  # no number used up


def test_the_refusal_is_shown_on_the_invoice_page(client, personas, sessions):
    Issuer.objects.filter(pk=sessions.pk).update(vat_id="")
    draft, = invoices.generate(*NOVEMBER, customer=personas.fleet_org)
    client.force_login(personas.finance)
    page = client.post(f"/billing/invoices/{draft.pk}/issue/", {"confirmed": "yes"},
                       follow=True).content.decode()
    assert "BR-S-02" in page and "BR-CO-26" in page
    assert Invoice.objects.get(pk=draft.pk).status == Invoice.Status.DRAFT


def test_a_tax_number_and_a_registration_id_stand_in_for_the_vat_id(personas, sessions):
    Issuer.objects.filter(pk=sessions.pk).update(vat_id="", tax_number="22/815/08154",
                                                 registration_id="HRB 12345")
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    tree = etree.fromstring(einvoice.build(invoice))
    seller = tree.find(".//ram:SellerTradeParty", RAM)
    assert seller.findtext("ram:SpecifiedLegalOrganization/ram:ID", namespaces=RAM) == (
        "HRB 12345")
    registration = seller.find("ram:SpecifiedTaxRegistration/ram:ID", RAM)
    assert (registration.text, registration.get("schemeID")) == ("22/815/08154", "FC")
    assert invoice.seller["tax_number"] == "22/815/08154"


def test_the_api_refuses_to_issue_with_the_rules_said(api, personas, sessions):
    Issuer.objects.filter(pk=sessions.pk).update(vat_id="")
    response = api(personas.finance).post("/api/v1/billing/invoices/generate/", {
        "month": "2026-11", "customer": personas.fleet_org.pk, "issue": True}, format="json")
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert "BR-S-02" in detail and not detail.startswith("[")  # sentences, not a list
    assert not Invoice.objects.filter(status=Invoice.Status.ISSUED).exists()
