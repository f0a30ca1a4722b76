"""The command line: `run`, `convert`, `info`, `plot`, `diff`, `devices`, `demo`, and its error handling."""

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
    (["--record", "w"], 2, "unknown probe 'w'; allowed: v, i, inputs"),
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
    assert lines[3] == f"  host input spikes: {int(stim.sum())} ({stim.mean():.4f} per input per step)"
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
                                          "  30 steps of m = 5 inputs",
                                          f"  host spikes: {int(stim.sum())} ({stim.mean():.4f} per input per step)",
                                          "  generator rates: none (all 0: the generator makes no input)",
                                          "  seed: 1 (none given)"]


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
    # Weight banks: as many as the word columns allow (256 neurons in 64 lanes: 4 columns).
    result = invoke("build", "--board", "ulx3s-45f", "--pot-banks", 8, "-o", tmp_path / "b")
    assert result.exit_code == 6 and "--pot-banks 8: a core of 256 neurons in 64 lanes allows 4" in result.stderr
    seen = []
    monkeypatch.setattr(neurofabric.boards, "build_bitstream", lambda board, *a, **kw: seen.append(board) or 1 / 0)
    invoke("build", "--board", "ulx3s-45f", "--pot-banks", 2, "-o", tmp_path / "c")
    assert [b.pot_banks for b in seen] == [2]
    # Spike counters: the board's default unless asked for.
    invoke("build", "--board", "ulx3s-12f", "--spike-counters", "-o", tmp_path / "d")
    invoke("build", "--board", "ulx3s-12f", "-o", tmp_path / "e")
    assert [b.spike_counters for b in seen[1:]] == [True, False]


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


# -- core model 2: generator rates, seeds, trials, inputs, convert ------------------------------

def golden_device(net):
    dev = nf.GoldenDevice()
    dev.load(net)
    return dev


def test_run_of_generator_rates_records_the_inputs_the_golden_model_makes(files):
    net, stim, tmp = files
    rates = np.array([0, 8000, 30000, 65535, 1200])
    nf.save_stimulus(None, tmp / "gen.npz", rates=rates, seed=99, steps=40)
    result = invoke("run", tmp / "net.npz", "--input", tmp / "gen.npz", "-o", tmp / "rec.npz",
                    "--record", "inputs,v")
    assert result.exit_code == 0, result.output
    expect = golden_device(net).run(None, steps=40, record=("v", "inputs"), rates=rates, seed=99)
    with np.load(tmp / "rec.npz") as rec:
        assert {"spikes", "weights", "v", "inputs", "input_spikes"} <= set(rec.files) and "i" not in rec.files
        assert rec["inputs"].shape == (40, 5) and not rec["input_spikes"].any()
        assert not rec["inputs"][:, 0].any() and rec["inputs"][:, 3].all()
        for key in ("spikes", "v", "inputs", "weights"):
            assert np.array_equal(rec[key], getattr(expect, key)), key
    assert result.output.startswith(f"40 steps on golden: {int(expect.spikes.sum())} spikes ")
    assert f", {int(expect.inputs.sum())} input spikes, " in result.output


def test_every_run_of_a_seeded_stimulus_starts_from_the_reset_state(files):
    net, stim, tmp = files
    nf.save_stimulus(stim, tmp / "both.npz", rates=np.full(5, 3000), seed=4)
    for name in ("a.npz", "b.npz"):
        result = invoke("run", tmp / "net.npz", "--input", tmp / "both.npz", "-o", tmp / name, "--record", "inputs")
        assert result.exit_code == 0, result.output
    with np.load(tmp / "a.npz") as a, np.load(tmp / "b.npz") as b:
        assert np.array_equal(a["inputs"], b["inputs"]) and np.array_equal(a["spikes"], b["spikes"])
        assert (a["inputs"] >= a["input_spikes"]).all() and a["inputs"].sum() > a["input_spikes"].sum()


def test_run_of_trials_writes_a_trials_axis_equal_to_run_trials(files):
    net, stim, tmp = files
    rng = np.random.default_rng(5)
    spikes = rng.random((3, 20, 5)) < 0.2
    rates = rng.integers(0, 9000, (3, 5))
    nf.save_stimulus(spikes, tmp / "trials.npz", rates=rates, seed=[7, 8, 9])
    result = invoke("run", tmp / "net.npz", "--input", tmp / "trials.npz", "-o", tmp / "rec.npz",
                    "--record", "v,i,inputs", "--steps", 25)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 trials of 25 steps on golden: ")
    expect = golden_device(net).run_trials(spikes, 25, ("v", "i", "inputs"), rates=rates, seed=[7, 8, 9])
    with np.load(tmp / "rec.npz") as rec:
        assert rec["spikes"].shape == (3, 25, 8) and rec["inputs"].shape == (3, 25, 5)
        assert rec["weights"].shape == (13, 8)
        for key in ("spikes", "v", "i", "inputs", "input_spikes", "weights"):
            assert np.array_equal(rec[key], getattr(expect, key)), key
    assert nf.load_recording(tmp / "rec.npz").trials == 3


def test_trials_refuse_weight_snapshots_before_running(files, monkeypatch):
    net, stim, tmp = files
    import neurofabric.host.cli as cli_module
    monkeypatch.setattr(cli_module, "open_device", lambda name: pytest.fail("a device was opened"))
    nf.save_stimulus(None, tmp / "trials.npz", rates=np.full(5, 100), seed=[1, 2], steps=10)
    result = invoke("run", tmp / "net.npz", "--input", tmp / "trials.npz", "-o", tmp / "r.npz", "--snapshot-every", 5)
    assert result.exit_code == 2 and "is a batch of 2 trials, which keeps no weight snapshots" in result.stderr


def test_a_long_run_of_trials_shows_progress_by_trial(files, monkeypatch):
    net, stim, tmp = files
    import neurofabric.host.cli as cli_module
    from neurofabric.host.progress import Progress
    monkeypatch.setattr(cli_module, "Progress", lambda what, enabled=True: Progress(
        what, enabled=enabled, interval_s=0, always=True))
    nf.save_stimulus(None, tmp / "trials.npz", rates=np.full(5, 100), seed=[1, 2, 3], steps=10)
    result = invoke("run", tmp / "net.npz", "--input", tmp / "trials.npz", "-o", tmp / "r.npz")
    assert result.exit_code == 0, result.output
    assert "trials: 1/3 (33 %)" in result.stderr and "trials: 3/3 (100 %)" in result.stderr
    quiet = invoke("-q", "run", tmp / "net.npz", "--input", tmp / "trials.npz", "-o", tmp / "q.npz")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_core_model_1_network_is_refused_by_run_naming_convert(files):
    net, stim, tmp = files
    arrays = net.to_arrays()
    for shift, factor in (("k_mem", "decay_mem"), ("k_syn", "decay_syn"), ("k_pre", "decay_pre"),
                          ("k_post", "decay_post")):
        arrays[shift] = np.full(np.shape(arrays.pop(factor)), 3)
    np.savez(tmp / "old.npz", **arrays)
    result = invoke("run", tmp / "old.npz", "--input", tmp / "stim.npz", "-o", tmp / "r.npz")
    assert result.exit_code == 3 and result.stderr.count("\n") == 1
    assert "it is a core model 1 network" in result.stderr and "neurofabric convert OLD.npz -o NEW.npz" in result.stderr
    assert not (tmp / "r.npz").exists()
    converted = invoke("convert", tmp / "old.npz", "-o", tmp / "new.npz")
    assert converted.exit_code == 0, converted.output
    lines = converted.output.splitlines()
    assert lines[:4] == ["decay_mem <- k_mem: k 3 -> d 512 (8)", "decay_syn <- k_syn: k 3 -> d 512 (8)",
                         "decay_pre <- k_pre: k 3 -> d 512", "decay_post <- k_post: k 3 -> d 512"]
    assert lines[4].startswith("the results are close to, not identical with, core model 1's")
    assert lines[4].endswith(f"wrote {tmp / 'new.npz'}: 8 neurons, 5 inputs, core model 2")
    back = nf.load_network(tmp / "new.npz")
    assert back.decay_mem.tolist() == [512] * 8 and np.array_equal(back.weights, net.weights)
    assert invoke("run", tmp / "new.npz", "--input", tmp / "stim.npz", "-o", tmp / "r.npz").exit_code == 0


@pytest.mark.parametrize("source, output, message", [
    ("net.npz", "x.npz", "core_model = 2: not a core model 1 network, nothing to convert"),
    ("stim.npz", "x.npz", "not a core model 1 network: missing fields"),
    ("none.npz", "x.npz", "does not exist"),
    ("net.npz", "net.npz", "is the same file as the input"),
    ("net.npz", "missing/x.npz", "folder"),
])
def test_convert_refuses_in_one_line_and_writes_nothing(files, source, output, message):
    net, stim, tmp = files
    result = invoke("convert", tmp / source, "-o", tmp / output)
    assert result.exit_code == 3 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp / "x.npz").exists()


def test_info_describes_generator_stimuli_and_trials(files):
    net, stim, tmp = files
    nf.save_stimulus(None, tmp / "gen.npz", rates=[0, 6553, 6553, 0, 65535], seed=12, steps=100)
    result = invoke("info", tmp / "gen.npz")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"stimulus {tmp / 'gen.npz'}", "  100 steps of m = 5 inputs",
        "  host spikes: none (the generator makes every input)",
        f"  generator rates: 0..65535 of 65536, {(6553 * 2 + 65535) / 5 / 65536:.4f} spikes per input per step "
        "expected, 3 of 5 inputs generated",
        "  seed: 12"]
    nf.save_stimulus(np.zeros((4, 10, 5), np.uint8), tmp / "trials.npz", seed=[3, 4, 5, 6])
    result = invoke("info", tmp / "trials.npz")
    assert result.exit_code == 0, result.output
    assert "  4 trials of 10 steps of m = 5 inputs" in result.output
    assert "  seeds: one per trial, 3, 4, 5, ..." in result.output


def test_info_describes_a_recording_of_trials_with_inputs(files):
    net, stim, tmp = files
    rec = golden_device(net).run_trials(None, 12, ("inputs",), rates=np.full((2, 5), 20000), seed=[1, 2])
    nf.save_recording(rec, tmp / "rec.npz")
    result = invoke("info", tmp / "rec.npz")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "  2 trials of 12 steps of n = 8 neurons, m = 5 inputs"
    per_trial = rec.spikes.reshape(2, -1).sum(axis=1)
    assert lines[3] == (f"  spikes per trial: {per_trial.min()}..{per_trial.max()}, mean {per_trial.mean():.1f}")
    assert f"  inputs U (host and generated): {int(rec.inputs.sum())} ({rec.inputs.mean():.4f} per input per step)" \
        in lines
    assert lines[-1].startswith("  weights after the last trial: ")


def test_info_of_a_network_shows_the_decay_factors(files):
    net, stim, tmp = files
    result = invoke("info", tmp / "net.npz")
    assert "  core model 2: decays lose decay/4096 per step (0: none, 4096: all)" in result.output
    assert f"  decay_mem: {net.decay_mem.min()}..{net.decay_mem.max()}" in result.output
    assert f"decay_pre {net.decay_pre}, decay_post {net.decay_post}" in result.output


def trials_recording(net, tmp):
    rec = golden_device(net).run_trials(None, 30, ("v", "i", "inputs"), rates=np.full((3, 5), 30000),
                                        seed=[1, 2, 3])
    nf.save_recording(rec, tmp / "trials.npz")
    return rec


def test_plot_draws_one_trial_of_a_recording_of_trials(files):
    net, stim, tmp = files
    rec = trials_recording(net, tmp)
    from neurofabric.host import plot
    shown = invoke("plot", tmp / "trials.npz", "--ascii", "--trial", 2, "--width", 30)
    assert shown.exit_code == 0, shown.output
    assert shown.output.rstrip("\n") == plot.ascii_raster(rec.spikes[2], width=30)
    first = invoke("plot", tmp / "trials.npz", "--ascii", "--width", 30)
    assert first.output.rstrip("\n") == plot.ascii_raster(rec.spikes[0], width=30)
    for kind in ("raster", "traces", "weights"):
        args = ["plot", tmp / "trials.npz", "--kind", kind, "-o", tmp / f"{kind}.png"]
        result = invoke(*args, *(["--trial", 1] if kind != "weights" else []))
        assert result.exit_code == 0, result.output
        assert (tmp / f"{kind}.png").stat().st_size > 1000


def test_the_raster_draws_the_recorded_inputs_host_and_generated(files):
    net, stim, tmp = files
    rec = trials_recording(net, tmp)
    from neurofabric.host import plot
    one = plot.select_trial(rec, 1)
    assert one.trials is None and np.array_equal(one.inputs, rec.inputs[1]) and np.array_equal(one.v, rec.v[1])
    fig = plot.raster(one)
    assert fig.axes[0].get_title() == "inputs U, host and generated (5 channels)"
    assert len(fig.axes[0].collections[0].get_offsets()) == int(rec.inputs[1].sum())
    with pytest.raises(nf.NeurofabricError, match="the recording holds 3 trials: draw one at a time"):
        plot.raster(rec)
    with pytest.raises(nf.NeurofabricError, match=r"trial 3 is out of range: the recording has trials 0..2"):
        plot.select_trial(rec, 3)


@pytest.mark.parametrize("args, message", [
    (["--trial", 3], "3 is out of range: {trials} has trials 0..2"),
    (["--kind", "evolution"], "is a recording of 3 trials, which keeps no weight snapshots"),
    (["--kind", "weights", "--trial", 1], "--kind weights draws the weights after the last trial"),
])
def test_plot_refuses_what_a_recording_of_trials_does_not_hold(files, args, message):
    net, stim, tmp = files
    trials_recording(net, tmp)
    result = invoke("plot", tmp / "trials.npz", "-o", tmp / "p.png", *args)
    assert result.exit_code == 2 and message.format(trials=tmp / "trials.npz") in result.stderr
    assert not (tmp / "p.png").exists()


def test_plot_trial_of_a_recording_of_one_run_is_refused(files):
    net, stim, tmp = files
    nf.save_recording(nf.GoldenModel(net).run(stim), tmp / "rec.npz")
    result = invoke("plot", tmp / "rec.npz", "--ascii", "--trial", 0)
    assert result.exit_code == 2 and "is a recording of one run, not of trials" in result.stderr


class _OneSpikeOff(nf.GoldenDevice):
    """The golden model with one spike of one trial dropped: a device that diverges there."""

    def __init__(self, trial, step):
        super().__init__()
        self.runs, self.trial, self.step = 0, trial, step

    def _run(self, *args, **kwargs):
        rec = super()._run(*args, **kwargs)
        if self.runs == self.trial:
            rec.spikes[self.step] = 1 - rec.spikes[self.step]
        self.runs += 1
        return rec


def test_diff_runs_generator_stimuli_and_trials_and_names_the_trial_that_diverges(files, monkeypatch):
    net, stim, tmp = files
    nf.save_stimulus(None, tmp / "trials.npz", rates=np.full((3, 5), 20000), seed=[5, 6, 7], steps=15)
    agree = invoke("diff", tmp / "net.npz", "--input", tmp / "trials.npz", "--device", "golden", "--device", "golden")
    assert agree.exit_code == 0, agree.output
    assert agree.output == "golden and golden agree: 3 trials of 15 steps, spikes, v, i and weights identical\n"
    import neurofabric.host.cli as cli_module
    opened = iter([nf.GoldenDevice(), _OneSpikeOff(trial=1, step=4)])
    monkeypatch.setattr(cli_module, "open_device", lambda name: next(opened))
    differ = invoke("diff", tmp / "net.npz", "--input", tmp / "trials.npz", "--device", "golden", "--device", "rtl")
    assert differ.exit_code == 1
    assert differ.output.startswith("trial 1: first divergence at step 4: neuron 0 spikes: golden ")


def test_stimulus_on_chip_then_run_makes_the_inputs_on_the_device(files):
    net, stim, tmp = files
    made = invoke("stimulus", "--poisson", "200Hz", "--on-chip", "--dt", "1ms", "--steps", 60, "--inputs", 5,
                  "--seed", 321, "-o", tmp / "gen.npz")
    assert made.exit_code == 0, made.output
    result = invoke("run", tmp / "net.npz", "--input", tmp / "gen.npz", "-o", tmp / "rec.npz", "--record", "inputs")
    assert result.exit_code == 0, result.output
    expect = golden_device(net).run(None, steps=60, rates=np.full(5, 13107), seed=321, record=("inputs",))
    with np.load(tmp / "rec.npz") as rec:
        assert np.array_equal(rec["inputs"], expect.inputs) and np.array_equal(rec["spikes"], expect.spikes)
        assert not rec["input_spikes"].any() and abs(rec["inputs"].mean() - 0.2) < 0.1
    # the same rows of values as trials, host-drawn and generated
    np.save(tmp / "v.npy", np.array([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]]))
    for extra in ([], ["--on-chip"]):
        made = invoke("stimulus", "--poisson", "500Hz", *extra, "--dt", "1ms", "--steps", 20, "--values",
                      tmp / "v.npy", "-o", tmp / "t.npz")
        assert made.exit_code == 0, made.output
        result = invoke("run", tmp / "net.npz", "--input", tmp / "t.npz", "-o", tmp / "trials.npz",
                        "--record", "inputs")
        assert result.exit_code == 0, result.output
        rec = nf.load_recording(tmp / "trials.npz")
        assert rec.trials == 2 and rec.inputs.shape == (2, 20, 5)
        assert rec.inputs[0, :, 0].any() and not rec.inputs[0, :, 1:].any()
        assert rec.inputs[1, :, 4].any() and not rec.inputs[1, :, :4].any()
