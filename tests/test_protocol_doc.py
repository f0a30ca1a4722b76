"""docs/protocol.md and host/protocol.py agree: the command table and the
status-code table of the document list exactly the `Command` and `Status`
enums, names and codes."""

import re
from pathlib import Path

from neurofabric.contract.protocol import REPLY_FLAG, Command, Status

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def section(title):
    """The text of the `## title` section (up to the next `## ` heading)."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/protocol.md has no section '## {title}'"
    return match.group(1)


def table_rows(text, header):
    """The rows of the first Markdown table in `text` whose header starts with
    the cells `header`: a list of cell lists."""
    lines = text.splitlines()
    for at, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and cells[:len(header)] == list(header):
            assert re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*\|?", lines[at + 1].strip()), \
                f"table {header} has no separator line"
            rows = []
            for row in lines[at + 2:]:
                if not row.strip().startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError(f"no table with header {header} in the section")


def name_code_pairs(rows):
    """`{NAME: code}` from rows whose first cell is `NAME` in backquotes and
    second a hex code; every row must have that form."""
    out = {}
    for row in rows:
        name = re.fullmatch(r"`([A-Z_]+)`", row[0])
        code = re.fullmatch(r"0x([0-9A-Fa-f]{2})", row[1])
        assert name and code, f"row {row} is not `NAME` | 0xHH"
        assert name.group(1) not in out, f"{name.group(1)} listed twice"
        out[name.group(1)] = int(code.group(1), 16)
    return out


def test_the_command_table_is_the_command_enum():
    rows = table_rows(section("Commands"), ("command", "code"))
    documented = name_code_pairs(rows)
    assert documented == {c.name: int(c) for c in Command}
    # Every code is a request code: bit 7 is the reply flag, never part of a command.
    assert all(code & REPLY_FLAG == 0 for code in documented.values())


def test_the_status_table_is_the_status_enum():
    rows = table_rows(section("Replies and status codes"), ("status", "code"))
    assert name_code_pairs(rows) == {s.name: int(s) for s in Status}


def test_every_documented_row_has_a_description():
    for title, header in (("Commands", ("command", "code")), ("Replies and status codes", ("status", "code"))):
        for row in table_rows(section(title), header):
            assert len(row) >= 3 and all(cell for cell in row[2:]), f"{title}: row {row} lacks a description"
