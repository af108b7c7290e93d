"""Tax dates: each line carries the days its session ran on (EN 16931 BG-26, the site's
calendar), the document the period its sessions span (BG-14), in the CII XML and the PDF; the
billing month is never passed off as the date of supply."""

import io
from datetime import date

from lxml import etree
from pypdf import PdfReader

from billing import einvoice, invoices, pdf
from tests.support.billing_cast import at, charge

RAM = {"ram": einvoice.RAM, "rsm": einvoice.RSM}


def _days(period: etree._Element) -> tuple[str, str]:
    return tuple(period.findtext(f"ram:{edge}DateTime/udt:DateTimeString",
                                 namespaces=RAM | {"udt": einvoice.UDT})
                 for edge in ("Start", "End"))


def _pdf_text(invoice) -> str:
    return "\n".join(page.extract_text()
                     for page in PdfReader(io.BytesIO(pdf.render(invoice))).pages)


def test_a_late_october_session_on_the_november_invoice_keeps_its_own_dates(personas, cast):
    # 31 October 23:30 Berlin (22:30 UTC) to 1 November 00:30: two days of the site's calendar.
    charge(personas.station_a, personas.fleet_token, start=at("2026-10-31T22:30"),
           readings=[(0, 0), (60, 10000)], stop=60)
    charge(personas.station_a, personas.fleet_token, start=at("2026-11-12T08:00"),
           readings=[(0, 0), (60, 10000)], stop=60)
    invoice, = invoices.generate(date(2026, 11, 1), date(2026, 11, 30),
                                 customer=personas.fleet_org, issue=True)
    tree = etree.fromstring(einvoice.build(invoice))
    line_periods = [_days(p) for p in tree.iterfind(
        ".//ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod", RAM)]
    assert line_periods == [("20261031", "20261101"), ("20261112", "20261112")]
    header, = tree.iterfind(".//ram:ApplicableHeaderTradeSettlement/"
                            "ram:BillingSpecifiedPeriod", RAM)
    assert _days(header) == ("20261031", "20261112")
    # No delivery date at all rather than the last day of the billing month.
    assert tree.find(".//ram:ActualDeliverySupplyChainEvent", RAM) is None
    assert b"20261130" not in einvoice.build(invoice)
    text = _pdf_text(invoice)
    assert "2026-10-31 to 2026-11-12" in text
    assert "2026-10-31 23:30" in text and "to 2026-11-01" in text  # the line's own period


def test_a_december_invoice_issued_on_the_4th_says_what_was_supplied_by_then(personas, cast):
    charge(personas.station_a, personas.fleet_token, start=at("2026-12-01T08:00"),
           readings=[(0, 0), (60, 10000)], stop=60)
    charge(personas.station_a, personas.fleet_token, start=at("2026-12-03T17:00"),
           readings=[(0, 0), (60, 10000)], stop=60)
    invoice, = invoices.generate(date(2026, 12, 1), date(2026, 12, 31),
                                 customer=personas.fleet_org, issue=True)
    xml = einvoice.build(invoice)
    header, = etree.fromstring(xml).iterfind(
        ".//ram:ApplicableHeaderTradeSettlement/ram:BillingSpecifiedPeriod", RAM)
    assert _days(header) == ("20261201", "20261203")
    assert b"20261231" not in xml
    assert "2026-12-01 to 2026-12-03" in _pdf_text(invoice)
