"""The layers hold: the import contracts of pyproject.toml ([tool.importlinter]), drawn in
docs/development.md, kept by the code as it is. `make lint` runs them too; here they run with
the rest of the suite, and the report names the import that broke one."""

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_every_import_contract_is_kept():
    result = subprocess.run([Path(sys.executable).parent / "lint-imports", "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
