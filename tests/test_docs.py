"""The Python examples of the README and the docs run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks():
    for path in DOCS:
        for index, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            yield pytest.param(block, id=f"{path.name}-{index}")


@pytest.mark.parametrize("code", list(python_blocks()))
def test_python_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```\w*\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first == ["./dev.sh demo", "./dev.sh test"]
    assert "./dev.sh test" in (ROOT / ".ci" / "run").read_text()


def test_docs_name_every_cli_command():
    from neurofabric.host.cli import cli
    guide = (ROOT / "docs" / "guide.md").read_text()
    for name in cli.commands:
        assert f"neurofabric {name}" in guide, name


def test_the_limits_in_the_guide_are_the_constants():
    from neurofabric.host import files, golden, nir_io
    text = (ROOT / "docs" / "guide.md").read_text()
    section = re.search(r"^### Limits and safe writes\n(.*?)(?=^#|\Z)", text, re.S | re.M).group(1)
    stated = {name: int(value.replace(",", ""))
              for name, value in re.findall(r"`([A-Z_]+)`\s+\(([\d,]+)\)", section)}
    constants = {"MAX_MEMBERS": files.MAX_MEMBERS, "MAX_FILE_VALUES": files.MAX_FILE_VALUES,
                 "MAX_FILE_BYTES": files.MAX_FILE_BYTES, "MAX_NIR_OBJECTS": nir_io.MAX_NIR_OBJECTS,
                 "SNAPSHOT_BUDGET_BYTES": golden.SNAPSHOT_BUDGET_BYTES,
                 "SNAPSHOT_WARN_BYTES": golden.SNAPSHOT_WARN_BYTES}
    assert stated == constants
