"""The tree passes the linter configured in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff():
    # The venv's ruff (a test dependency) next to the running interpreter, else PATH.
    local = Path(sys.executable).parent / "ruff"
    return str(local) if local.exists() else shutil.which("ruff")


def test_ruff_finds_nothing():
    ruff = _ruff()
    assert ruff, "ruff is a test dependency (pip install -e '.[test]')"
    out = subprocess.run([ruff, "check", "--output-format", "concise", "--no-cache", str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
