"""Invoice PDFs as PDF/A-3B Factur-X files, checked as far as can be without veraPDF (not
installable from the registries this project uses): fonts embedded, metadata that agrees,
output intent, the e-invoice attached as PDF/A-3 wants, no encryption (tests/support/pdfa.py)."""

import io
from datetime import date

from xhtml2pdf import pisa

from billing import invoices, pdf
from tests.support import pdfa
from tests.support.billing_cast import fleet_sessions

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def test_invoice_and_credit_note_pdfs_pass_the_pdfa_checks(personas, cast):
    fleet_sessions(personas)
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(invoice, rebill=False)
    for document in (invoice, note):
        assert pdfa.problems(pdf.render(document)) == [], document.number


def test_the_checks_see_what_a_plain_pdf_lacks():
    out = io.BytesIO()
    pisa.CreatePDF("<p style='font-family: Courier'>Invoice</p>", dest=out)
    found = pdfa.problems(out.getvalue())
    assert any("Courier not embedded" in problem for problem in found)
    assert "no PDF/A output intent with an ICC profile" in found
    assert "no XMP metadata" in found
