"""docs/conformance.md, written from the conformance tests: which OCTT CSMS cases of each OCPP
version the suite plays (and by which test), and which it does not yet.

    python -m tests.conformance.page     # rewrite the page after adding or changing a case's test

tests/conformance/test_page.py fails when the page differs from what the tests say."""

from importlib import import_module
from pathlib import Path

from tests.conformance.catalogue import CASES

PAGE = Path("docs/conformance.md")
TEST_MODULES = ("tests.conformance.test_ocpp16", "tests.conformance.test_ocpp201")

INTRODUCTION = """\
# OCPP conformance: the OCA test tool's CSMS cases

The Open Charge Alliance certifies a CSMS with its test tool (OCTT): the tool plays a charging
station and an operator, and each test case checks what the CSMS sends and answers. The project
plays these cases in its own suite, `tests/conformance/`, on real sockets: a charger connected to
uvicorn serving the project, and the operator admin at the REST API, as the tool drives a CSMS.
Each test asserts the frames the CSMS must send and the state it must record (sessions, connector
states, calls and their outcomes). They run in `make test`, on PostgreSQL + Redis and on the
embedded defaults.

This page is written from the tests (`python -m tests.conformance.page`); a test fails when it is
out of date. A case "not yet covered" belongs to a functional block the project does not build
yet (reservations, smart charging, certificates, display messages, monitoring, TLS) or has no
test of its own here yet.
"""


def markdown() -> str:
    # The test modules import the models: Django must be set up first (see __main__ below).
    from tests.conformance import octt

    for module in TEST_MODULES:
        import_module(module)
    lines = [INTRODUCTION]
    for version, cases in CASES.items():
        covered = octt.COVERED[version]
        lines += [f"## OCPP {version}: {len(covered)} of {len(cases)} cases covered", "",
                  "| case | title | played by |", "|---|---|---|"]
        for case_id, title in cases.items():
            tests = ", ".join(f"`{test}`" for test in sorted(set(covered.get(case_id, []))))
            lines.append(f"| {case_id} | {title} | {tests or 'not yet covered'} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    django.setup()
    PAGE.write_text(markdown(), encoding="utf-8")
