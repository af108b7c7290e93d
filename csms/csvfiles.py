"""CSV files for people, one writer for every CSV the project makes: safe to open in a
spreadsheet, streamed line by line, in the layout a person's spreadsheet reads.

Safe: a text cell starting with = + - @ (or a tab or carriage return) is a formula to a
spreadsheet (CSV injection, OWASP); it is written with a leading apostrophe, which spreadsheets
show as text, and uncell() takes it off again when we read our own files back. Numbers
(Decimal, int, float) are written as numbers, so -22.06 stays a number.

Layouts: `COMMA` (comma, decimal point: the default, what programs read) and `SEMICOLON`
(semicolon, decimal comma: what a spreadsheet in a German or French locale opens as columns).
Files for download start with a UTF-8 byte order mark, so Excel reads them as UTF-8.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
CONTENT_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    delimiter: str
    decimal_point: str


COMMA = Layout("comma", ",", ".")
SEMICOLON = Layout("semicolon", ";", ",")
LAYOUTS = {layout.name: layout for layout in (COMMA, SEMICOLON)}


def layout_named(name: str | None) -> Layout:
    """The layout a request asks for by name (`?separator=semicolon`); the default otherwise."""
    return LAYOUTS.get(name or "", COMMA)


def cell(value: object, layout: Layout = COMMA) -> str:
    """One value as the text of its cell."""
    if value is None:
        return ""
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return str(value).replace(".", layout.decimal_point)
    text = str(value)
    return "'" + text if _formula_like(text) else text


def uncell(text: str) -> str:
    """A text cell read back from a file we exported: without the apostrophe cell() added."""
    return text[1:] if text.startswith("'") and _formula_like(text) else text


def _formula_like(text: str) -> bool:
    # Apostrophes before a formula are escaped too, so that reading back is exact: '=1 → ''=1.
    return text.lstrip("'").startswith(FORMULA_STARTS)


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]],
              layout: Layout = COMMA) -> Iterator[str]:
    """The header and rows as CSV text (CRLF line ends), one line at a time: ten thousand rows
    need no more memory than one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator="\r\n")
    for line in ([*header],), ([cell(value, layout) for value in row] for row in rows):
        for values in line:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            yield buffer.getvalue()


def csv_file(header: Iterable[str], rows: Iterable[Iterable[object]],
             layout: Layout = COMMA) -> bytes:
    """A whole CSV file for download: UTF-8 with a byte order mark."""
    return (BOM + "".join(csv_lines(header, rows, layout))).encode("utf-8")
