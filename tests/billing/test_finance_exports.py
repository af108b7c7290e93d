"""Exports for accounting: documents chosen by the date they were issued (the service period is
a column), CSV that Excel opens as it is (UTF-8 with BOM, charset said, a semicolon/decimal-comma
layout), the columns accountants ask for, and no cell a spreadsheet would run as a formula."""

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal as D
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from billing import exports, invoices
from billing.models import CustomerAccount, ExportJob
from csms import csvfiles
from tests.support.billing_cast import at, charge, fleet_sessions

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def _rows(data: bytes, delimiter: str = ",") -> list[dict]:
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only after a BOM
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def _month(day: date) -> tuple[date, date]:
    return invoices.month(day.year, day.month)


def test_a_credit_note_is_exported_in_the_month_it_was_issued(client, personas, cast,
                                                               settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    fleet_sessions(personas)
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(invoice, rebill=False)
    issued = _month(note.issue_date)
    assert issued != NOVEMBER  # issued after the month it bills

    client.force_login(personas.finance)
    response = client.get(f"/billing/invoices/export.csv?month={note.issue_date:%Y-%m}")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = _rows(response.content)
    assert {r["invoice_number"] for r in rows} == {invoice.number, note.number}
    totals = [r for r in rows if r["row_type"] == "total"]
    assert [(r["document_type"], r["service_start"], r["service_end"]) for r in totals] == [
        ("invoice", "2026-11-03", "2026-11-10"), ("credit_note", "2026-11-03", "2026-11-10")]
    by_service_month = client.get("/billing/invoices/export.csv?month=2026-11").content
    assert [r["invoice_number"] for r in _rows(by_service_month)] == []

    job = ExportJob.objects.create(period_start=issued[0], period_end=issued[1])
    exports.build_zip(job)
    job.refresh_from_db()
    names = zipfile.ZipFile(job.file.open("rb")).namelist()
    assert f"invoices/{note.file_stem}.pdf" in names and f"invoices/{invoice.file_stem}.xml" in (
        names)
    november = ExportJob.objects.create(period_start=NOVEMBER[0], period_end=NOVEMBER[1])
    exports.build_zip(november)
    november.refresh_from_db()
    assert not [n for n in zipfile.ZipFile(november.file.open("rb")).namelist()
                if n.startswith("invoices/")]


def test_the_columns_accountants_ask_for(personas, cast):
    fleet_sessions(personas)
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(invoice, rebill=False)
    rows = _rows(exports.invoices_csv([invoice, note]))
    first, = [r for r in rows if r["row_type"] == "line" and r["invoice_number"] == note.number
              and r["line"] == "1"]
    assert (first["due_date"], first["seller_vat_id"], first["buyer_reference"],
            first["corrects_invoice"]) == ("", "DE123456789", "FLEET-42", invoice.number)
    assert (first["session_id"], first["energy_kwh"], first["service_start"],
            first["service_end"], first["net_amount"]) == (
        str(invoice.lines.get(position=1).transaction_id), "-12.500", "2026-11-03",
        "2026-11-03", "-5.00")
    original = next(r for r in rows if r["invoice_number"] == invoice.number)
    assert original["due_date"] == invoice.due_date.isoformat()
    assert original["corrects_invoice"] == ""


def test_the_semicolon_layout_writes_decimal_commas(client, personas, cast):
    charge(personas.station_a, personas.fleet_token, start=at("2026-11-10T18:00"),
           readings=[(0, 1000), (45, 14875)], stop=45)  # 13.875 kWh → 5.55
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    client.force_login(personas.finance)
    data = client.get(f"/billing/invoices/{invoice.pk}.csv?separator=semicolon").content
    rows = _rows(data, delimiter=";")
    line = rows[0]
    assert (line["energy_kwh"], line["net_amount"], line["vat_rate"]) == (
        "13,875", "5,55", "19,00")
    assert rows[-1]["gross_amount"] == "6,60"
    assert data.decode("utf-8-sig").startswith("row_type;invoice_number;")


def test_formula_cells_are_escaped_and_amounts_stay_numbers(personas, cast):
    fleet_sessions(personas)
    CustomerAccount.objects.filter(organization=personas.fleet_org).update(
        legal_name='=HYPERLINK("http://evil.example","x")', buyer_reference="@SUM(A1)")
    invoice, = invoices.generate(*NOVEMBER, customer=personas.fleet_org, issue=True)
    note = invoices.credit(invoice, rebill=False)
    rows = _rows(exports.invoices_csv([note]))
    assert rows[0]["customer"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert rows[0]["buyer_reference"] == "'@SUM(A1)"
    assert rows[-1]["gross_amount"] == "-11.90"  # a negative number, not text


@example("'=1+1")
@example("-")
@given(st.one_of(st.text(), st.decimals(allow_nan=False, allow_infinity=False,
                                        places=3), st.integers()))
def test_no_cell_starts_a_formula_and_text_reads_back(value):
    body = "".join(csvfiles.csv_lines(["x"], [[value]], csvfiles.SEMICOLON))
    cell, = list(csv.reader(io.StringIO(body, newline=""), delimiter=";"))[1]
    if isinstance(value, str):
        assert not cell.startswith(csvfiles.FORMULA_STARTS)
        assert csvfiles.uncell(cell) == value
    else:
        assert D(cell.replace(",", ".")) == D(value)


def test_every_csv_of_the_project_is_written_by_one_helper():
    root = Path(__file__).resolve().parents[2]
    writers = [str(path.relative_to(root)) for folder in ("accounts", "stations", "billing", "csms")
               for path in (root / folder).glob("**/*.py")
               if "csv.writer(" in path.read_text() or "csv.DictWriter(" in path.read_text()]
    assert writers == ["csms/csvfiles.py"]
