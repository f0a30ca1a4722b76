"""Board definitions, PLL settings, nextpnr log parsing and flashing errors."""

import subprocess
from dataclasses import replace

import pytest
from click.testing import CliRunner

from neurofabric.boards import BOARDS, flash, get_board
from neurofabric.boards.base import parse_nextpnr_log, parse_yosys_flip_flops
from neurofabric.boards.pll import ecp5_pll_params, ice40_pll_params
from neurofabric.host.cli import cli
from neurofabric.host.errors import BuildError


def test_every_board_has_a_platform_with_a_uart():
    for board in BOARDS.values():
        platform = board.platform()
        assert platform.lookup("uart", 0) is not None, board.name
        assert platform.default_clk_frequency == board.osc_hz, board.name
        # the divider of the UART is exact or within 2 %
        divider = round(board.clk_hz / board.baud)
        assert abs(board.clk_hz / divider - board.baud) / board.baud < 0.02, board.name


def test_every_default_core_is_a_valid_configuration_and_smaller_cores_get_lanes_that_divide_them():
    from neurofabric.boards.base import _config_for
    for board in BOARDS.values():
        config = _config_for(board)
        assert (config.n, config.lanes, config.neurons_per_cycle, config.pot_banks) == (
            board.neurons, board.lanes, board.neurons_per_cycle, board.pot_banks)
    big = get_board("ulx3s-85f")
    assert (big.lanes, big.neurons_per_cycle, big.pot_banks) == (64, 1, 1)
    banked = get_board("ulx3s-12f")
    assert (banked.lanes, banked.pot_banks) == (16, 4)
    # a smaller core keeps the banks its word columns allow: 128 neurons in 16 lanes are 8
    # columns, 32 two, 16 one (no banks), 48 three (not a power of two: no banks)
    assert [banked.with_sizes(neurons=k).pot_banks for k in (128, 32, 16, 48)] == [4, 2, 1, 1]
    assert _config_for(banked.with_sizes(neurons=32, inputs=8)).pot_banks == 2
    assert big.with_sizes(neurons=16).lanes == 16
    assert big.with_sizes(neurons=24).lanes == 8 and big.with_sizes(neurons=3).lanes == 1
    assert replace(big, neurons_per_cycle=2).with_sizes(neurons=3).neurons_per_cycle == 1  # two need two lanes
    assert big.with_sizes(neurons=16, lanes=4).lanes == 4          # asked for: kept
    assert _config_for(big.with_sizes(neurons=48, inputs=8)).lanes == 16


def test_board_targets():
    assert get_board("icebreaker").neurons >= 256 and get_board("icebreaker").inputs >= 256
    assert get_board("ulx3s-85f").neurons >= 512 and get_board("ulx3s-85f").clk_hz >= 50_000_000
    with pytest.raises(BuildError, match="unknown board 'nope'; known boards: icebreaker"):
        get_board("nope")


@pytest.mark.parametrize("f_in, f_want", [(12e6, 24e6), (12e6, 36e6), (12e6, 48e6), (12e6, 16.5e6)])
def test_ice40_pll_within_datasheet_limits(f_in, f_want):
    p = ice40_pll_params(f_in, f_want)
    f_pfd = f_in / (p.divr + 1)
    f_vco = f_pfd * (p.divf + 1)
    assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_vco <= 1066e6 and 1 <= p.divq <= 6
    assert p.f_out == f_vco / 2 ** p.divq and abs(p.f_out - f_want) / f_want < 0.02


@pytest.mark.parametrize("f_want", [50e6, 62.5e6, 75e6, 100e6])
def test_ecp5_pll_within_datasheet_limits(f_want):
    p = ecp5_pll_params(25e6, f_want)
    assert p.f_out == 25e6 / p.clki_div * p.clkfb_div and 400e6 <= p.f_out * p.clkop_div <= 800e6
    assert abs(p.f_out - f_want) / f_want < 0.01


def test_parse_nextpnr_log_takes_the_final_reports():
    log = """Info: Device utilisation:
Info: 	         ICESTORM_LC:   120/ 5280     2%
Info: Max frequency for clock 'cd_sync.clk': 40.00 MHz (PASS at 12.00 MHz)
Info: Device utilisation:
Info: 	         ICESTORM_LC:   150/ 5280     2%
Info: 	        ICESTORM_RAM:     4/   30    13%
Info: Max frequency for clock 'cd_sync.clk': 31.50 MHz (PASS at 12.00 MHz)
"""
    clocks, util = parse_nextpnr_log(log)
    assert clocks == {"cd_sync.clk": {"fmax_hz": 31.5e6, "target_hz": 12e6, "pass": True}}
    assert util == {"ICESTORM_LC": (150, 5280), "ICESTORM_RAM": (4, 30)}


def test_parse_yosys_flip_flops_counts_the_last_statistics():
    log = """=== neurofabric ===
       19   SB_DFF
       38   SB_DFFE
=== design hierarchy ===
       20   SB_DFF
      866   SB_DFFESR
        4   SB_SPRAM256KA
     3932   SB_LUT4
"""
    assert parse_yosys_flip_flops(log) == 886
    assert parse_yosys_flip_flops("no statistics") is None


def fake_openfpgaloader(returncode, output):
    def run(cmd, **kwargs):
        run.cmd = cmd
        return subprocess.CompletedProcess(cmd, returncode, stdout="", stderr=output)
    return run


def test_flash_builds_the_openfpgaloader_command(tmp_path):
    bit = tmp_path / "neurofabric.bin"
    bit.write_bytes(b"\0")
    runner = fake_openfpgaloader(0, "done")
    flash(get_board("icebreaker"), bit, runner=runner)
    assert runner.cmd[1:] == ["-b", "ice40_generic", str(bit)]
    flash(get_board("ulx3s-85f"), bit, to_flash=True, runner=runner)
    assert runner.cmd[1:] == ["-b", "ulx3s", "-f", str(bit)]


@pytest.mark.parametrize("output, message", [
    ("Error: Failed to claim cable\n", "no .* found on USB"),
    ("unable to open ftdi device: -3 (device not found)\n", "no .* found on USB"),
    ("libusb_open() failed with LIBUSB_ERROR_ACCESS\n", "udev rule"),
])
def test_flash_failures_say_what_to_do(tmp_path, output, message):
    bit = tmp_path / "neurofabric.bin"
    bit.write_bytes(b"\0")
    with pytest.raises(BuildError, match=message):
        flash(get_board("icebreaker"), bit, runner=fake_openfpgaloader(1, output))


def test_flash_missing_bitstream(tmp_path):
    with pytest.raises(BuildError, match="does not exist: build it with neurofabric build --board icebreaker"):
        flash(get_board("icebreaker"), tmp_path / "none.bin", runner=fake_openfpgaloader(0, ""))


def test_cli_boards_lists_every_board():
    result = CliRunner().invoke(cli, ["boards"])
    assert result.exit_code == 0
    for name in BOARDS:
        assert name in result.output


def test_cli_build_xilinx_needs_prepare_only():
    result = CliRunner().invoke(cli, ["build", "--board", "cmod-a7"])
    assert result.exit_code == 6 and "need Vivado" in result.stderr and "--prepare-only" in result.stderr


REPORT_KEYS = {"board", "neurons", "inputs", "lanes", "clk_hz", "fmax_hz", "resources", "baud", "bitstream",
               "build_s"}


@pytest.mark.bitstream
@pytest.mark.parametrize("board, sizes, bitstream, clk_hz, pll, memory", [
    # The ULX3S's own 50 MHz core clock through the ECP5 PLL (this core's fmax: about 61 MHz),
    # with the spike counters.
    ("ulx3s-12f", ["--neurons", "16", "--inputs", "16", "--lanes", "4", "--spike-counters"], "neurofabric.bit",
     50_000_000, 1, "block_ram"),
    # The iCEBreaker's own 12 MHz without a PLL, weights in two SB_SPRAM256KA, the whole link.
    ("icebreaker", ["--neurons", "16", "--inputs", "16", "--lanes", "2"], "neurofabric.bin", 12_000_000, 0, "spram"),
])
def test_build_small_cores_with_the_open_tools(tmp_path, board, sizes, bitstream, clk_hz, pll, memory):
    import json
    out = tmp_path / board
    result = CliRunner().invoke(cli, ["-q", "build", "--board", board, "-o", str(out), *sizes])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["board"] == board and report["neurons"] == 16 and report["inputs"] == 16
    assert report["clk_hz"] == clk_hz and report["resources"]["pll"]["used"] == pll
    assert report["fmax_hz"] >= report["clk_hz"] and report["timing_met"]
    assert (out / bitstream).stat().st_size > 10_000 and report["bitstream"] == str(out / bitstream)
    resources = report["resources"]
    for kind in ("logic_cells", "flip_flops", "block_ram"):
        assert 0 < resources[kind]["used"] <= resources[kind]["available"], kind
    assert resources[memory]["used"] > 0
    assert report["spike_counters"] == (board == "ulx3s-12f")


def test_cmod_a7_prepare_only_writes_the_vivado_folder(tmp_path):
    out = tmp_path / "cmod"
    result = CliRunner().invoke(cli, ["-q", "build", "--board", "cmod-a7", "--prepare-only", "-o", str(out),
                                      "--neurons", "16", "--inputs", "16"])
    assert result.exit_code == 0, result.output
    assert (out / "build_neurofabric.sh").exists() and (out / "neurofabric.xdc").exists()
    verilog = (out / "neurofabric.v").read_text()
    import re
    for part in ("top.core", "top.link", "top.receiver", "top.sender"):  # the whole top level is in it
        assert re.search(rf"^module \\neurofabric\.{re.escape(part)}[ (]", verilog, re.M), part


@pytest.mark.bitstream
def test_timing_not_met_is_a_build_error(tmp_path):
    import json
    out = tmp_path / "fast"
    result = CliRunner().invoke(cli, ["-q", "build", "--board", "ulx3s-12f", "-o", str(out), "--neurons", "16",
                                      "--inputs", "16", "--clk-hz", "150000000"])
    assert result.exit_code == 6 and "timing not met on ulx3s-12f" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["timing_met"] is False and report["fmax_hz"] < 150e6
