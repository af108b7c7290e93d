"""CSV files for people: streamed line by line, and safe to open in a spreadsheet."""

import csv
import io
from collections.abc import Iterable, Iterator

# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def csv_lines(header: list[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The header and rows as CSV text, one line at a time: ten thousand rows need no more
    memory than one."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in ([*header],), ([cell(value) for value in r] for r in rows):
        for line in row:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(line)
            yield buffer.getvalue()


def uncell(text: str) -> str:
    """A cell read back from a file we exported: without the quote cell() put before it."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA) else text
