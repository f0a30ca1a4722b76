"""docs/protocol.md and docs/core.md agree with neurofabric.contract: the command
and status-code tables list exactly the `Command` and `Status` enums, and the
command, status, register, word and memory-map tables are the ones generated
from the contract."""

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


# -- the tables generated from the contract ------------------------------------------
#
# docs/protocol.md and docs/core.md show the register map, the word layouts and the
# command and status tables as generated here from neurofabric.contract, so the docs
# cannot drift from the one description. A failure prints the table to paste.

from neurofabric.contract.device import (  # noqa: E402
    MEMORY_TABLES, NEURON_PARAMS_WORD, NEURON_STATE_WORD, REGISTERS, CoreShape, memory_table,
)
from neurofabric.contract.model import NEURON_FIELDS, STATE_FIELDS, field_bits  # noqa: E402
from neurofabric.contract.protocol import (  # noqa: E402
    COMMAND_PAYLOADS, STATUS_MEANINGS, TABLE_NAMES, table_depth, word_bits,
)

CORE_DOC = DOC.parent / "core.md"

#: How the docs write the widths and sizes of the core's shape.
SYMBOLS = {"state_bits": "S", "weight_bits": "W", "trace_bits": "T", "n": "n", "m": "m", "lanes": "lanes"}


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def linear_text(terms):
    """`{symbol: coefficient, "": constant}` as the docs write it: "3S + 19", "S", "0"."""
    parts = [f"{'' if k == 1 else k}{symbol}" for symbol, k in terms.items() if symbol and k]
    if terms.get("", 0) or not parts:
        parts.append(str(terms.get("", 0)))
    return " + ".join(parts)


def field_width(spec):
    """A field spec's width as `{symbol: 1}` or `{"": bits}`, and whether it is signed."""
    if spec[0] in ("s", "u"):
        return {SYMBOLS[spec[1]]: 1}, spec[0] == "s"
    bits, is_signed = field_bits(spec, None)
    return {"": bits}, is_signed


def word_rows(names, specs):
    rows, offset = [], {}
    for name in names:
        width, is_signed = field_width(specs[name])
        rows.append((f"`{name}`", linear_text(width), linear_text(offset), "yes" if is_signed else "no"))
        for symbol, k in width.items():
            offset[symbol] = offset.get(symbol, 0) + k
    return rows, offset


def word_width_text(names, specs):
    return linear_text(word_rows(names, specs)[1])


def word_tables():
    out = []
    for table, names, specs in (("neuron_params", NEURON_PARAMS_WORD, NEURON_FIELDS),
                                ("neuron_state", NEURON_STATE_WORD, STATE_FIELDS)):
        rows, total = word_rows(names, specs)
        out.append(f"`{table}` ({linear_text(total)} bits):\n\n"
                   + markdown_table(("field", "bits", "from bit", "signed"), rows))
    return "\n".join(out)


def register_width_text(register):
    kind, arg = register.width
    if kind == "count":
        return f"`{arg}.bit_length()`, clamped to {arg}"
    if kind == "bits":
        return str(arg)
    width, is_signed = field_width(register.width)
    return linear_text(width) + (", signed" if is_signed else "")


def register_value_text(register):
    if register.read_only:
        value = register.value
        if value is None:
            return "driven by the core"
        return SYMBOLS.get(value, value) if isinstance(value, str) else str(value)
    reset = register.reset
    if reset in ("min", "max"):
        kind, arg = register.width
        if kind == "s":
            symbol = SYMBOLS[arg]
            return f"-2^({symbol}-1)" if reset == "min" else f"2^({symbol}-1) - 1"
        return str(register.value_range(CoreShape(1, 1, 16, 8, 8, 1))[reset == "max"])
    return SYMBOLS.get(reset, reset) if isinstance(reset, str) else str(reset)


def register_table():
    rows = [(address, f"`{r.name}`", register_width_text(r), "read only" if r.read_only else "read-write",
             register_value_text(r), r.doc) for address, r in enumerate(REGISTERS)]
    return markdown_table(("address", "register", "bits", "access", "value (after reset)", "meaning"), rows)


def command_table():
    rows = [(f"`{c.name}`", f"0x{int(c):02X}", *COMMAND_PAYLOADS[c]) for c in COMMAND_PAYLOADS]
    return markdown_table(("command", "code", "request payload", "reply payload (after the status byte)"), rows)


def status_table():
    rows = [(f"`{s.name}`", f"0x{int(s):02X}", STATUS_MEANINGS[s]) for s in STATUS_MEANINGS]
    return markdown_table(("status", "code", "meaning"), rows)


def memory_map_table():
    words = {"neuron_params": NEURON_PARAMS_WORD, "neuron_state": NEURON_STATE_WORD}
    rows = []
    for table in MEMORY_TABLES:
        data = table.doc
        if table.name in words:
            data += ": " + ", ".join(words[table.name])
        rows.append((f"`{table.space}`", f"`{table.name}`", table.address, data))
    return markdown_table(("space", "table", "address", "data"), rows)


def assert_doc_has(path, generated, what):
    assert generated in path.read_text(), f"{path.name} lacks the {what} generated from the contract:\n\n{generated}"


def test_protocol_doc_shows_the_generated_tables():
    assert_doc_has(DOC, command_table(), "command table")
    assert_doc_has(DOC, status_table(), "status table")
    assert_doc_has(DOC, register_table(), "register table")
    assert_doc_has(DOC, word_tables(), "neuron word tables")


def test_core_doc_shows_the_generated_memory_map():
    assert_doc_has(CORE_DOC, memory_map_table(), "memory map")
    # The memories table gives the neuron words' widths as the description makes them.
    for memory, names, specs in (("neuron parameters", NEURON_PARAMS_WORD, NEURON_FIELDS),
                                 ("neuron state", NEURON_STATE_WORD, STATE_FIELDS)):
        assert f"| {memory} | `n` x `{word_width_text(names, specs)}` |" in CORE_DOC.read_text(), memory


def evaluate(text, shape):
    """A width or depth as docs/protocol.md's table of tables writes it ("3S + 19",
    "(m + n) x n / lanes", "23 registers") on a core of `shape`."""
    expr = text.replace("registers", "").replace(" x ", " * ").replace("/", "//")
    expr = re.sub(r"(\d)([A-Za-z(])", r"\1*\2", expr)
    names = {"S": shape.state_bits, "W": shape.weight_bits, "T": shape.trace_bits, "n": shape.n, "m": shape.m,
             "lanes": shape.lanes}
    return eval(expr, {"__builtins__": {}}, names)


def test_the_table_of_tables_is_the_memory_map():
    rows = table_rows(section("Memory requests"), ("commands (family)", "table", "name"))
    described = {}
    for family, table, name, bits, depth, space in rows:
        described[(re.fullmatch(r"`\*_([A-Z]+)`", family).group(1), int(table))] = (name.strip("`"), bits, depth,
                                                                                     space.strip("`"))
    assert described.keys() == {(f.name, t) for f, t in TABLE_NAMES}
    for shape in (CoreShape(8, 8, 16, 8, 8, 2), CoreShape(64, 20, 12, 6, 5, 4), CoreShape(256, 256, 32, 16, 16, 8)):
        for (family, table), name in TABLE_NAMES.items():
            doc_name, bits, depth, space = described[(family.name, table)]
            assert doc_name == name and space == memory_table(name).space
            assert evaluate(bits, shape) == word_bits(family, table, shape), (name, bits)
            assert evaluate(depth, shape) == table_depth(family, table, shape), (name, depth)
