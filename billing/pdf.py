"""Invoice PDFs: rendered from templates/billing/invoice_pdf.html with xhtml2pdf (ReportLab, no
system libraries), fonts embedded (ReportLab's Bitstream Vera), an sRGB output intent, and —
for issued invoices — the EN 16931 CII XML attached by factur-x as a PDF/A-3 Factur-X file.
"""

import io
from functools import cache
from pathlib import Path

import reportlab
from django.template.loader import render_to_string
from facturx import generate_from_binary
from PIL import ImageCms
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from xhtml2pdf import pisa

from billing import einvoice
from billing.invoices import vat_groups
from billing.models import Invoice

FONTS = Path(reportlab.__file__).parent / "fonts"


class PdfError(RuntimeError):
    """The template could not be rendered as a PDF."""


def render(invoice: Invoice) -> bytes:
    """The invoice as a PDF a person reads; issued invoices carry their e-invoice inside."""
    html = render_to_string("billing/invoice_pdf.html", {
        "invoice": invoice, "lines": invoice.lines.all(), "vat_groups": vat_groups(invoice),
        "seller": invoice.seller or invoice.issuer.details(),
        "buyer": invoice.buyer or _buyer_now(invoice),
        "fonts": {name: (FONTS / f"{name}.ttf").as_uri() for name in ("Vera", "VeraBd")},
    })
    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out, encoding="utf-8")
    if status.err:
        raise PdfError(f"PDF rendering failed ({status.err} errors)")
    pdf = _with_output_intent(out.getvalue())
    if invoice.status == Invoice.Status.DRAFT:
        return pdf
    title = f"{'Credit note' if invoice.kind == Invoice.Kind.CREDIT_NOTE else 'Invoice'} " \
            f"{invoice.number}"
    return generate_from_binary(
        pdf, einvoice.build(invoice), flavor="factur-x", level="en16931", check_xsd=False,
        lang="en-GB",
        pdf_metadata={"author": invoice.seller.get("legal_name", ""), "title": title,
                      "subject": f"{title} of {invoice.issue_date:%Y-%m-%d}",
                      "keywords": "Factur-X, invoice, EV charging"},
    )


def _buyer_now(invoice: Invoice) -> dict:
    account = getattr(invoice.customer, "billing_account", None)
    return account.details() if account else {"legal_name": invoice.customer.name}


@cache
def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _with_output_intent(pdf: bytes) -> bytes:
    """PDF/A wants the colour space the document means: sRGB, as an output intent."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    profile = DecodedStreamObject()
    profile.set_data(_srgb())
    profile.update({NameObject("/N"): NumberObject(3)})
    intent = DictionaryObject({
        NameObject("/Type"): NameObject("/OutputIntent"),
        NameObject("/S"): NameObject("/GTS_PDFA1"),
        NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
        NameObject("/Info"): TextStringObject("sRGB IEC61966-2.1"),
        NameObject("/DestOutputProfile"): writer._add_object(profile),
    })
    writer._root_object[NameObject("/OutputIntents")] = ArrayObject(
        [writer._add_object(intent)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
