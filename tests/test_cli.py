"""The command line: `run`, `info`, `devices`, `demo`, and its error handling."""

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import cli
from neurofabric.host.errors import DeviceError


@pytest.fixture
def files(tmp_path):
    net = nf.random_network(8, 5, seed=11, learn=1)
    nf.save_network(net, tmp_path / "net.npz")
    stim = np.random.default_rng(2).random((30, 5)) < 0.3
    nf.save_stimulus(stim, tmp_path / "stim.npz")
    return net, stim, tmp_path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_run_writes_a_spec_recording_equal_to_the_golden_model(files):
    net, stim, tmp = files
    result = invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "--device", "golden",
                    "-o", tmp / "rec.npz", "--record", "v,i")
    assert result.exit_code == 0, result.output
    expect = nf.GoldenModel(net).run(stim, record=("v", "i"))
    with np.load(tmp / "rec.npz") as rec:
        assert rec["spikes"].shape == (30, 8) and set(np.unique(rec["spikes"])) <= {0, 1}
        for key in ("spikes", "weights", "v", "i"):
            assert np.array_equal(rec[key], getattr(expect, key)), key
        assert rec["weights"].shape == (13, 8)


def test_run_without_record_has_no_probes_and_steps_pad(files):
    net, stim, tmp = files
    result = invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "-o", tmp / "rec.npz",
                    "--steps", 50)
    assert result.exit_code == 0, result.output
    with np.load(tmp / "rec.npz") as rec:
        assert "v" not in rec.files and "i" not in rec.files
        assert rec["spikes"].shape == (50, 8)
        assert rec["input_spikes"][30:].sum() == 0


def test_run_snapshots(files):
    net, stim, tmp = files
    result = invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "-o", tmp / "rec.npz",
                    "--snapshot-every", 10)
    assert result.exit_code == 0, result.output
    with np.load(tmp / "rec.npz") as rec:
        assert rec["weight_snapshots"].shape == (3, 13, 8)
        assert np.array_equal(rec["weight_snapshots"][-1], rec["weights"])


def test_each_run_starts_from_reset(files):
    net, stim, tmp = files
    for name in ("a.npz", "b.npz"):
        assert invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "-o", tmp / name).exit_code == 0
    with np.load(tmp / "a.npz") as a, np.load(tmp / "b.npz") as b:
        assert np.array_equal(a["spikes"], b["spikes"])


@pytest.mark.parametrize("extra, exit_code, message", [
    (["--record", "w"], 2, "unknown probe 'w'"),
    (["--device", "fpga9"], 4, "unknown device 'fpga9'; known devices: golden"),
    (["--steps", "-1"], 2, "-1"),
])
def test_bad_options(files, extra, exit_code, message):
    net, stim, tmp = files
    result = invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "-o", tmp / "r.npz", *extra)
    assert result.exit_code == exit_code and message in result.output


def test_stimulus_of_the_wrong_width_is_refused(files):
    net, stim, tmp = files
    nf.save_stimulus(np.zeros((4, 3), np.uint8), tmp / "narrow.npz")
    result = invoke("run", tmp / "net.npz", "--input", tmp / "narrow.npz", "-o", tmp / "r.npz")
    assert result.exit_code == 3
    assert result.stderr.strip() == (f"error: {tmp / 'narrow.npz'}: stimulus spikes: shape (4, 3) "
                                     "does not match (steps, m=5)")


def test_bad_network_is_one_line_and_exit_3_from_the_real_command(files):
    net, stim, tmp = files
    (tmp / "bad.npz").write_bytes(b"not a zip")
    proc = subprocess.run([sys.executable, "-m", "neurofabric", "run", str(tmp / "bad.npz"),
                           "--input", str(tmp / "stim.npz"), "-o", str(tmp / "r.npz")],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "is not a readable NumPy .npz archive" in proc.stderr
    assert not (tmp / "r.npz").exists()


def test_info_summarises(files):
    net, stim, tmp = files
    result = invoke("info", tmp / "net.npz")
    assert result.exit_code == 0
    assert "neurons n = 8, inputs m = 5, widths S = 16, W = 8, T = 8" in result.output
    assert f"{int((net.weights != 0).sum())} non-zero of 104" in result.output
    assert "learning on" in result.output
    assert f"weights {13 * 8 * 8} bits" in result.output


def test_info_on_missing_file(tmp_path):
    result = invoke("info", tmp_path / "none.npz")
    assert result.exit_code == 3 and "does not exist" in result.stderr


def test_devices_lists_golden():
    result = invoke("devices")
    assert result.exit_code == 0 and result.output.startswith("golden")


@pytest.mark.rtl
def test_demo_runs_and_learns_on_the_simulated_board(tmp_path):
    result = invoke("-q", "demo", "-o", tmp_path)  # the default device: the simulated board
    assert result.exit_code == 0, result.output
    assert "learning on rtl was bit-exact with the golden model (every spike and every weight snapshot): yes" \
        in result.output
    import json
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["after"]["hit_rate"] > summary["before"]["hit_rate"]
    assert summary["mean_weight_pattern_inputs"] > summary["mean_weight_other_inputs"]
    for picture in ("raster_before.png", "raster_after.png", "weights.png", "weight_evolution.png"):
        assert (tmp_path / picture).stat().st_size > 10_000, picture


def test_progress_is_quiet_when_not_a_terminal_and_prints_when_asked():
    import io

    from neurofabric.host.progress import Progress
    pipe = io.StringIO()
    quiet = Progress("run", stream=pipe, interval_s=0)
    quiet.start -= 5
    quiet(5, 10)
    assert pipe.getvalue() == ""
    loud = Progress("run", stream=pipe, interval_s=0, always=True)
    loud.start -= 5
    loud(5, 10)
    assert pipe.getvalue().startswith("run: 5/10 (50 %)")


def test_info_describes_a_recording(files):
    net, stim, tmp = files
    rec = nf.GoldenModel(net).run(stim, record=("v", "i"), snapshot_every=10)
    nf.save_recording(rec, tmp / "rec.npz")
    result = invoke("info", tmp / "rec.npz")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    counts = rec.spikes.sum(axis=0)
    assert lines[0] == f"recording {tmp / 'rec.npz'}"
    assert lines[1] == "  30 steps of n = 8 neurons, m = 5 inputs"
    assert lines[2].startswith(f"  spikes: {int(counts.sum())} ({rec.spikes.mean():.4f} per neuron per step); "
                               f"most from neuron {int(np.argmax(counts))}")
    assert f"{int((counts == 0).sum())} of 8 neurons silent" in lines[2]
    assert lines[3] == f"  input spikes: {int(stim.sum())} ({stim.mean():.4f} per input per step)"
    assert lines[4] == f"  probes: v {rec.v.min()}..{rec.v.max()}, i {rec.i.min()}..{rec.i.max()}"
    assert lines[5].startswith("  weight snapshots: 3, after steps 10..30; ")
    assert lines[6].startswith(f"  weights after the run: {rec.weights.min()}..{rec.weights.max()}")


def test_info_says_what_a_recording_lacks_and_describes_a_stimulus(files):
    net, stim, tmp = files
    nf.save_recording(nf.GoldenModel(net).run(stim), tmp / "plain.npz")
    result = invoke("info", tmp / "plain.npz")
    assert result.exit_code == 0, result.output
    assert "  probes: none (run with --record v,i)" in result.output
    assert "  weight snapshots: none (run with --snapshot-every K)" in result.output
    result = invoke("info", tmp / "stim.npz")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"stimulus {tmp / 'stim.npz'}",
                                          f"  30 steps of m = 5 inputs: {int(stim.sum())} spikes "
                                          f"({stim.mean():.4f} per input per step)"]


@pytest.mark.parametrize("output, message", [
    ("net.npz", "is the same file as the input"),
    ("stim.npz", "is the same file as the input"),
    ("missing/r.npz", "folder"),
])
def test_run_refuses_its_output_before_it_runs(files, output, message, monkeypatch):
    net, stim, tmp = files
    import neurofabric.host.cli as cli_module
    opened = []
    monkeypatch.setattr(cli_module, "open_device", lambda name: opened.append(name))
    before = (tmp / "net.npz").read_bytes(), (tmp / "stim.npz").read_bytes()
    result = invoke("run", tmp / "net.npz", "--input", tmp / "stim.npz", "-o", tmp / output)
    assert result.exit_code == 3 and message in result.stderr and not opened
    assert ((tmp / "net.npz").read_bytes(), (tmp / "stim.npz").read_bytes()) == before


def test_demo_refuses_a_folder_it_cannot_make_before_it_runs(files, monkeypatch):
    net, stim, tmp = files
    import neurofabric.host.demo
    monkeypatch.setattr(neurofabric.host.demo, "pattern_demo", lambda **kw: pytest.fail("the demo ran"))
    result = invoke("demo", "-o", tmp / "net.npz" / "sub", "--device", "golden")
    assert result.exit_code == 3 and "net.npz' is not a folder" in result.stderr
    (tmp / "out").mkdir()
    os.mkfifo(tmp / "out" / "summary.json")
    result = invoke("demo", "-o", tmp / "out", "--device", "golden")
    assert result.exit_code == 3 and "summary.json' is a FIFO" in result.stderr


def test_build_refuses_sizes_the_link_cannot_serve_before_building(monkeypatch, tmp_path):
    import neurofabric.boards
    monkeypatch.setattr(neurofabric.boards, "build_bitstream", lambda *a, **kw: pytest.fail("the build ran"))
    result = invoke("build", "--board", "icebreaker", "--neurons", 4096, "--inputs", 8, "-o", tmp_path / "b")
    assert result.exit_code == 6 and "the link handles n and m up to 2040" in result.stderr
    result = invoke("build", "--board", "icebreaker", "--baud", 11_000_000, "-o", tmp_path / "b")
    assert result.exit_code == 6 and "baud=11000000" in result.stderr


def test_sim_board_refuses_a_link_that_is_not_its_own_before_building(files, monkeypatch):
    net, stim, tmp = files
    import neurofabric.sim.board
    monkeypatch.setattr(neurofabric.sim.board, "board_program", lambda *a, **kw: pytest.fail("the board was built"))
    result = invoke("sim-board", "--link", tmp / "stim.npz")
    assert result.exit_code == 3 and "exists and is not a symbolic link: refusing to replace it" in result.stderr
    assert (tmp / "stim.npz").is_file()
    result = invoke("sim-board", "--neurons", 4096)
    assert result.exit_code == 2 and "the link handles n and m up to 2040" in result.stderr


def test_progress_of_long_work_shows_on_stderr_unless_quiet(files, monkeypatch):
    import logging

    import neurofabric.sim.board
    from neurofabric.host.progress import PROGRESS_LOGGER

    def announce_then_stop(config, build_root=None):
        logging.getLogger(PROGRESS_LOGGER).info("building the simulated board for n=%d", config.core.n)
        raise DeviceError("stopped after the announcement")
    monkeypatch.setattr(neurofabric.sim.board, "board_program", announce_then_stop)
    net, stim, tmp = files
    args = ["run", tmp / "net.npz", "--input", tmp / "stim.npz", "--device", "rtl", "-o", tmp / "r.npz"]
    loud = invoke(*args)
    assert loud.exit_code == 4
    assert loud.stderr == "building the simulated board for n=8\nerror: stopped after the announcement\n"
    quiet = invoke("-q", *args)
    assert quiet.exit_code == 4 and quiet.stderr == "error: stopped after the announcement\n"
