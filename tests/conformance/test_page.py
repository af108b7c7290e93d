from tests.conformance import page
from tests.support import ROOT


def test_the_conformance_page_is_written_from_the_tests():
    written = (ROOT / page.PAGE).read_text(encoding="utf-8")
    assert written == page.markdown(), "run: python -m tests.conformance.page"
