"""Invoice PDFs: rendered from templates/billing/invoice_pdf.html with xhtml2pdf (ReportLab, no
system libraries), every font embedded (DejaVu Sans, shipped in billing/fonts/), an sRGB output
intent, and — for issued invoices — the EN 16931 CII XML attached by factur-x as a PDF/A-3
Factur-X file whose document info and XMP metadata say the same (PDF/A-3 §6.6.3).
"""

import io
from functools import cache
from pathlib import Path

from django.template.loader import render_to_string
from facturx import generate_from_binary
from lxml import etree
from PIL import ImageCms
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)
from reportlab import rl_config
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus.tables import CellStyle
from xhtml2pdf import pisa

from billing import einvoice
from billing.models import Invoice
from billing.vat import vat_groups

# DejaVu Sans (Bitstream Vera licence, billing/fonts/LICENSE) ships with the code: PDF/A wants
# every font embedded, and xhtml2pdf reads fonts only below the document's own directory.
FONTS = Path(__file__).parent / "fonts"
# ReportLab selects its default font at every page and table cell, drawn with or not:
# Helvetica, which is never embedded. The invoice's own font instead (ReportLab draws only our
# PDFs in this process); the PDF/A test lists every font a page refers to.
pdfmetrics.registerFont(TTFont("DejaVuSans", FONTS / "DejaVuSans.ttf"))
rl_config.canvas_basefontname = CellStyle.fontname = "DejaVuSans"

KEYWORDS = "Factur-X, invoice, EV charging"
# The XMP property each document info entry must equal (ISO 19005-3, 6.6.3).
XMP_FROM_INFO = (("pdf", "Producer", "/Producer"), ("pdf", "Keywords", "/Keywords"),
                 ("xmp", "CreatorTool", "/Creator"))
XMP = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "pdf": "http://ns.adobe.com/pdf/1.3/",
       "xmp": "http://ns.adobe.com/xap/1.0/"}


class PdfError(RuntimeError):
    """The template could not be rendered as a PDF."""


def render(invoice: Invoice) -> bytes:
    """The invoice as a PDF a person reads; issued invoices carry their e-invoice inside."""
    lines = list(invoice.lines.all())
    html = render_to_string("billing/invoice_pdf.html", {
        "invoice": invoice, "lines": lines, "vat_groups": vat_groups(invoice),
        "service_period": einvoice.service_period(lines),
        "seller": invoice.seller or invoice.issuer.details(),
        "buyer": invoice.buyer or _buyer_now(invoice),
        "fonts": {"regular": (FONTS / "DejaVuSans.ttf").as_uri(),
                  "bold": (FONTS / "DejaVuSans-Bold.ttf").as_uri()},
    })
    out = io.BytesIO()
    status = pisa.CreatePDF(html, dest=out, encoding="utf-8", path=str(FONTS / "invoice.html"))
    if status.err:
        raise PdfError(f"PDF rendering failed ({status.err} errors)")
    pdf = _with_output_intent(out.getvalue())
    if invoice.status == Invoice.Status.DRAFT:
        return pdf
    title = f"{'Credit note' if invoice.kind == Invoice.Kind.CREDIT_NOTE else 'Invoice'} " \
            f"{invoice.number}"
    return _agreeing_metadata(generate_from_binary(
        pdf, einvoice.build(invoice), flavor="factur-x", level="en16931", check_xsd=False,
        lang="en-GB",
        pdf_metadata={"author": invoice.seller.get("legal_name", ""), "title": title,
                      "subject": f"{title} of {invoice.issue_date:%Y-%m-%d}",
                      "keywords": KEYWORDS},
    ))


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


def _agreeing_metadata(pdf: bytes) -> bytes:
    """factur-x writes the XMP with its own producer and without the keywords and creator tool
    the document info has; PDF/A wants both to say the same, so the XMP takes the info's. The
    packet is stored unfiltered, as PDF/A wants metadata a reader can find without decoding."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    info = writer._info.get_object()
    reference = writer._root_object.raw_get("/Metadata")
    xmp = etree.fromstring(reference.get_object().get_data())
    descriptions = xmp.find("rdf:RDF", XMP)
    for prefix, name, key in XMP_FROM_INFO:
        element = descriptions.find(f"rdf:Description/{prefix}:{name}", XMP)
        if element is None:
            sibling = descriptions.find(f"rdf:Description/{prefix}:*", XMP)
            parent = sibling.getparent() if sibling is not None else etree.SubElement(
                descriptions, f"{{{XMP['rdf']}}}Description")
            element = etree.SubElement(parent, f"{{{XMP[prefix]}}}{name}")
        element.text = str(info[key])
    metadata = DecodedStreamObject()
    metadata.set_data(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                      + etree.tostring(xmp, encoding="utf-8") + b'\n<?xpacket end="w"?>')
    metadata.update({NameObject("/Type"): NameObject("/Metadata"),
                     NameObject("/Subtype"): NameObject("/XML")})
    writer._replace_object(reference, metadata)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
