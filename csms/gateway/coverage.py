"""The OCPP coverage page (docs/ocpp-coverage.md), written from the message table so that it
cannot say other than what the gateway does (`manage.py ocpp_coverage`; a test compares)."""

from importlib import import_module

from csms.gateway.table import SPOKEN, Direction, Entry, MessageTable, Version

PAGE = "docs/ocpp-coverage.md"


def _cell(entry: Entry | None) -> str:
    if entry is None:
        return "—"
    if entry.version not in SPOKEN:
        return "declared"
    if entry.handler is not None:
        return "handled"
    if entry.builders:
        return "sent"
    return "not yet" if entry.direction == Direction.TO_CHARGER else "NotSupported"


def _summary(entries: list[Entry]) -> str:
    done = sum(entry.supported for entry in entries)
    return f"{done} of {len(entries)}"


def markdown(table: MessageTable) -> str:
    """The page: a summary per version, then each block's actions by version and direction."""
    lines = [
        "# OCPP coverage",
        "",
        "Every action of OCPP 1.6 (with the Security Whitepaper), 2.0.1 and 2.1 as the "
        "`ocpp` library's schemas define them, by functional block, and what the gateway does "
        "with it. Written from the message table by `python manage.py ocpp_coverage`: do not "
        "edit it by hand.",
        "",
        "- **handled**: a charger's message, stored and answered;",
        "- **sent**: a message the CSMS sends for a command of the domain, its answer read;",
        "- **NotSupported**: a charger's message we answer with that CALLERROR;",
        "- **not yet**: a message we do not send of our own accord (the API's raw call can);",
        "- **declared**: in a version not offered on the endpoint yet (2.1);",
        "- **—**: not in that version.",
        "",
        "| version | charger → CSMS handled | CSMS → charger sent |",
        "|---|---|---|",
    ]
    for version in Version:
        by_direction = {direction: [e for (v, _, d), e in table.entries.items()
                                    if v == version and d == direction]
                        for direction in Direction}
        lines.append(f"| {version} | {_summary(by_direction[Direction.FROM_CHARGER])} | "
                     f"{_summary(by_direction[Direction.TO_CHARGER])} |")
    blocks: dict[str, set[tuple[str, Direction]]] = {}
    for (_, action, direction), entry in table.entries.items():
        blocks.setdefault(entry.block, set()).add((action, direction))
    for block in sorted(blocks):
        doc = (import_module(f"csms.gateway.blocks.{block}").__doc__ or "").strip()
        lines += ["", f"## {block.replace('_', ' ')}", "", " ".join(doc.split()), "",
                  "| action | direction | 1.6 | 2.0.1 | 2.1 | not yet: what for |",
                  "|---|---|---|---|---|---|"]
        for action, direction in sorted(blocks[block]):
            entries = [table.entries.get((version, action, direction)) for version in Version]
            notes = sorted({e.note for e in entries if e is not None and not e.supported
                            and e.note and e.version in SPOKEN})
            lines.append(f"| {action} | {direction} | "
                         + " | ".join(_cell(e) for e in entries) + f" | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


def write(table: MessageTable, path: str = PAGE) -> None:
    with open(path, "w", encoding="utf-8") as page:
        page.write(markdown(table))
