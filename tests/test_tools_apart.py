"""The simulator and the benchmark (tools/) live beside the server, not in it: no module of the
server's packages imports them, so the server never loads, ships or depends on them. Tools and
tests may import the server; the other way round is what this test refuses."""

from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = ("csms", "stations", "accounts", "billing")


def test_no_module_of_the_server_imports_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # grimp finds the packages through sys.path
    # Every import statement counts, those inside functions and under TYPE_CHECKING included.
    graph = grimp.build_graph(*SERVER_PACKAGES, "tools", cache_dir=None)
    server_modules = {m for m in graph.modules if m.split(".")[0] in SERVER_PACKAGES}
    assert {"csms.asgi", "stations.models", "tools.simulator.station"} <= graph.modules
    imports_of_tools = sorted(
        (importer, imported)
        for importer in server_modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.split(".")[0] == "tools"
    )
    assert imports_of_tools == []
