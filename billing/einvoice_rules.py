"""The EN 16931 business rules beyond the schema: CEN/TC 434's Schematron for CII, in the
compiled XSLT form its validation artefacts publish (billing/en16931/, EUPL 1.2, version in its
README), run by Saxon-HE (saxonche), as an official validator does.

The XSD says an e-invoice is well formed; only these rules say it is an EN 16931 invoice (the
VAT breakdown adds up, a standard-rated line has a seller VAT id, no negative prices, …). A rule
flagged `fatal` makes the document non-compliant; `warning` rules are reported, not enforced.
"""

import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree
from saxonche import PySaxonProcessor, PyXsltExecutable

RULES_XSLT = Path(__file__).parent / "en16931" / "EN16931-CII-validation.xslt"
SVRL = {"svrl": "http://purl.oclc.org/dsdl/svrl"}

# SaxonC runs in one embedded isolate per process: one processor, used one call at a time.
_saxon = threading.Lock()


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule the document breaks, as the Schematron report (SVRL) names it."""

    rule: str
    fatal: bool
    text: str
    location: str

    def __str__(self) -> str:
        return self.text if self.text.startswith(f"[{self.rule}]") else \
            f"[{self.rule}] {self.text}"


@cache
def _compiled() -> tuple[PySaxonProcessor, PyXsltExecutable]:
    processor = PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(RULES_XSLT))
    return processor, executable


def failures(xml: bytes) -> list[RuleFailure]:
    """Every rule the CII document breaks, fatal ones and warnings, in the report's order."""
    with _saxon:
        processor, executable = _compiled()
        document = processor.parse_xml(xml_text=xml.decode("utf-8"))
        report = executable.transform_to_string(xdm_node=document)
    svrl = etree.fromstring(report.encode("utf-8"))
    return [RuleFailure(rule=failed.get("id", "?"), fatal=failed.get("flag") == "fatal",
                        text=" ".join(failed.findtext("svrl:text", "", SVRL).split()),
                        location=failed.get("location", ""))
            for failed in svrl.iterfind(".//svrl:failed-assert", SVRL)]
