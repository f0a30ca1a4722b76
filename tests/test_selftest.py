"""`neurofabric selftest` on the simulated board."""

import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import cli
from neurofabric.host.selftest import CHECKS, selftest
from neurofabric.sim.board import SimulatedBoard, board_config_for

#: Bytes a board takes for frames and refuses: runs of non-zero bytes cut by the frame delimiter.
LINE_NOISE = bytes(np.random.default_rng(7).integers(1, 256, 300, dtype=np.uint8)) + b"\x00" \
    + b"\x13\x37\x42\x00" * 8


@pytest.fixture(scope="module")
def board():
    """A running simulated board of the selftest's size (n = 16, m = 8, default widths)."""
    with SimulatedBoard(board_config_for(nf.random_network(16, 8, seed=0))) as running:
        yield running


def line_writer(path):
    """A second file descriptor on the board's line (opened before the selftest's port locks it)."""
    return os.open(path, os.O_RDWR | os.O_NOCTTY)


@pytest.mark.rtl
def test_selftest_passes_on_the_simulated_board():
    result = CliRunner().invoke(cli, ["selftest", "--device", "rtl", "--steps", "120"])
    assert result.exit_code == 0, result.output
    lines = [l for l in result.output.splitlines() if l.startswith(("PASS", "FAIL"))]
    assert [l.split(":")[0] for l in lines] == ["PASS  handshake", "PASS  echo", "PASS  network", "PASS  weights",
                                               "PASS  link counters"]
    assert "spikes, v, i and the inputs equal to the golden model at every step" in result.output
    generated = int(re.search(r"(\d+) generated input spikes", result.output).group(1))
    assert generated > 120                  # the board's stimulus generator took part
    assert result.output.rstrip().endswith("selftest passed: 5 checks on rtl")


def test_selftest_needs_a_board():
    result = CliRunner().invoke(cli, ["selftest", "--device", "golden"])
    assert result.exit_code == 4 and "selftest checks a board and its link" in result.stderr


def test_selftest_refuses_rtl_direct_which_has_no_link():
    result = CliRunner().invoke(cli, ["selftest", "--device", "rtl-direct"])
    assert result.exit_code == 4
    assert result.stderr == ("error: selftest checks a board and its link, and rtl-direct is the core alone under "
                             "Verilator, with no link: use --device rtl or --device serial:PATH[@BAUD]\n")


@pytest.mark.rtl
def test_a_board_that_saw_line_noise_before_still_passes(board):
    fd = line_writer(board.path)
    try:
        os.write(fd, LINE_NOISE)
    finally:
        os.close(fd)
    result = CliRunner().invoke(cli, ["selftest", "--device", f"serial:{board.path}", "--steps", "60"])
    assert result.exit_code == 0, result.output
    counters = next(l for l in result.output.splitlines() if l.startswith("PASS  link counters"))
    # The lifetime counters are not zero: the old test would have failed here.
    assert "no link errors during the checks; before them the board had counted " in counters
    assert "format_errors" in counters or "crc_errors" in counters
    assert result.output.rstrip().endswith(f"selftest passed: 5 checks on serial:{board.path}")


@pytest.mark.rtl
def test_line_noise_during_the_checks_fails_them(board):
    fd = line_writer(board.path)
    said = []

    def say(line):
        said.append(line)
        if line.startswith("PASS  echo"):   # between two checks: faults the board counts
            os.write(fd, LINE_NOISE)
    try:
        checks = selftest(f"serial:{board.path}", steps=60, say=say)
    finally:
        os.close(fd)
    assert [c.name for c in checks] == list(CHECKS)
    counters = checks[-1]
    assert not counters.passed
    assert counters.detail.startswith("error counters grew during the checks: ")
    assert "format_errors +" in counters.detail or "crc_errors +" in counters.detail
