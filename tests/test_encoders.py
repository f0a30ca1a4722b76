"""Stimulus encoders, `neurofabric stimulus`, and the group names that recordings carry into plots."""

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host import encoders
from neurofabric.host.cli import cli
from neurofabric.host.files import Stimulus


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# -- encoders -------------------------------------------------------------------------------

def test_poisson_in_hz_spikes_at_rate_times_dt_and_one_seed_gives_one_stimulus():
    rates = np.array([0.0, 20.0, 100.0, 1000.0])
    stim = nf.poisson(rates, steps=20_000, dt=1e-3, seed=4)
    assert stim.shape == (20_000, 4) and stim.dtype == np.uint8 and set(np.unique(stim)) <= {0, 1}
    observed = stim.mean(axis=0)
    assert observed[0] == 0 and observed[3] == 1
    # Within 5 standard deviations of a binomial count.
    for p, got in zip(rates[1:3] * 1e-3, observed[1:3]):
        assert abs(got - p) < 5 * np.sqrt(p * (1 - p) / 20_000)
    assert np.array_equal(stim, nf.poisson(rates, steps=20_000, dt=1e-3, seed=4))
    assert not np.array_equal(stim, nf.poisson(rates, steps=20_000, dt=1e-3, seed=5))


def test_poisson_without_dt_takes_probabilities_and_a_scalar_needs_inputs():
    stim = nf.poisson(0.25, steps=8000, inputs=3, seed=0)
    assert stim.shape == (8000, 3)
    assert np.allclose(stim.mean(axis=0), 0.25, atol=0.03)
    with pytest.raises(nf.NetworkError, match=r"a scalar needs inputs=m"):
        nf.poisson(0.25, steps=10)


def test_trials_of_values_give_one_stimulus_per_row():
    rates = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    stim = nf.poisson(rates, steps=50, seed=1)
    assert stim.shape == (3, 50, 2)
    assert stim[0, :, 0].all() and not stim[0, :, 1].any()
    assert stim[1, :, 1].all() and not stim[1, :, 0].any()


@pytest.mark.parametrize("call, message", [
    (lambda: nf.poisson([1.0, np.nan], 10, dt=1e-3), r"^rates\[1\] = nan is out of range: allowed 0\.\.1000 Hz"),
    (lambda: nf.poisson([-5.0], 10, dt=1e-3), r"^rates\[0\] = -5\.0 is out of range"),
    (lambda: nf.poisson([1001.0], 10, dt=1e-3), r"^rates\[0\] = 1001\.0 is out of range: allowed 0\.\.1000 Hz \(1/dt"),
    (lambda: nf.poisson([1.5], 10), r"^rates\[0\] = 1\.5 is out of range: allowed a probability per step, 0\.\.1"),
    (lambda: nf.poisson([np.inf], 10), r"^rates\[0\] = inf is out of range"),
    (lambda: nf.regular([30.0], 10, dt=0.05), r"^rates\[0\] = 30\.0 is out of range: allowed 0\.\.20 Hz"),
    (lambda: nf.poisson([1.0], 10, dt=0.0), r"^dt = 0\.0 is not a time step"),
    (lambda: nf.poisson([1.0], 10, dt=float("nan")), r"^dt = nan is not a time step"),
    (lambda: nf.poisson([0.5], -1), r"^steps = -1 is out of range: allowed a whole number, 0 or more"),
    (lambda: nf.poisson([0.5], 2.5), r"^steps = 2\.5 is out of range"),
    (lambda: nf.poisson([[0.5]] * 2 + [[0.5, 0.5]], 3), r"^rates: not an array of numbers"),
    (lambda: nf.poisson(np.zeros((2, 2, 2)), 3), r"^rates: shape \(2, 2, 2\) is neither"),
    (lambda: nf.latency([0.5, 1.2], 10), r"^values\[1\] = 1\.2 is out of range: allowed an intensity, 0\.\.1"),
    (lambda: nf.latency([-0.1], 10), r"^values\[0\] = -0\.1 is out of range"),
    (lambda: nf.latency([[0.1, np.nan]], 10), r"^values\[0, 1\] = nan is out of range"),
    (lambda: nf.latency([0.5], 10, window=11), r"^window = 11 is out of range: allowed 1\.\.10"),
    (lambda: nf.latency([0.5], 10, threshold=1.0), r"^threshold = 1\.0 is out of range"),
    (lambda: nf.concatenate_trials(np.zeros((2, 3, 4), np.uint8), gap=-2), r"^gap = -2 is out of range"),
    (lambda: encoders.generator_rates([1.0, 1001.0], dt=1e-3), r"^rates\[1\] = 1001\.0 is out of range: allowed "
                                                               r"0\.\.1000 Hz"),
    (lambda: encoders.generator_rates([np.nan]), r"^rates\[0\] = nan is out of range"),
    (lambda: encoders.trial_seeds(0, 3, 10, 4), r"^seed = 0 is out of range: allowed 1\.\.4294967295"),
    (lambda: encoders.trial_seeds(1, 0, 10, 4), r"^trials = 0 is out of range: allowed a whole number, 1 or more"),
])
def test_bad_values_are_one_line_network_errors(call, message):
    with pytest.raises(nf.NetworkError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_regular_spaces_spikes_evenly_at_the_rate():
    stim = nf.regular([20.0, 1000.0, 0.0], steps=1000, dt=1e-3)
    assert stim.dtype == np.uint8
    assert np.array_equal(np.flatnonzero(stim[:, 0]), np.arange(49, 1000, 50))
    assert stim[:, 1].all() and not stim[:, 2].any()
    # A period that is not a whole number of steps: intervals of 3 and 4, floor(steps * p) spikes.
    p = 0.3
    times = np.flatnonzero(nf.regular(p, steps=1000, inputs=1)[:, 0])
    assert len(times) == 300 and set(np.diff(times)) == {3, 4}
    assert abs(np.diff(times).mean() - 1 / p) < 0.01


def test_latency_fires_once_earlier_for_larger_values_within_the_window():
    values = np.array([1.0, 0.75, 0.5, 0.01, 0.0])
    stim = nf.latency(values, steps=30, window=21)
    assert stim.shape == (30, 5) and stim.dtype == np.uint8
    times = [np.flatnonzero(stim[:, k]).tolist() for k in range(5)]
    assert times == [[0], [5], [10], [20], []]
    assert not stim[21:].any()
    assert nf.latency(values, steps=30, window=21, threshold=0.5)[:, 2:].sum() == 0


def test_concatenate_trials_lays_them_end_to_end_with_gaps_of_silence():
    first = nf.latency(np.eye(3), steps=4)
    timeline = nf.concatenate_trials(first, gap=2)
    assert timeline.shape == (3 * 4 + 2 * 2, 3)
    for r in range(3):
        assert np.array_equal(timeline[r * 6:r * 6 + 4], first[r])
        assert not timeline[r * 6 + 4:r * 6 + 6].any()
    single = nf.regular(0.5, steps=6, inputs=2)
    assert np.array_equal(nf.concatenate_trials(single, gap=9), single)


def test_step_probabilities_are_what_the_encoders_draw_from():
    assert np.allclose(nf.step_probabilities([0, 500, 1000], dt=1e-3), [0, 0.5, 1.0])
    assert np.array_equal(nf.step_probabilities([0.1, 0.9]), [0.1, 0.9])


def test_generator_rates_are_65536_times_the_probability_per_step_rounded_and_clamped():
    rates = encoders.generator_rates([0.0, 20.0, 500.0, 999.99, 1000.0], dt=1e-3)
    assert rates.dtype == np.int64
    assert rates.tolist() == [0, 1311, 32768, 65535, 65535]   # round(65536 * 0.02) = 1311; 1 per step: 65535
    assert encoders.generator_rates(0.25, inputs=3).tolist() == [16384] * 3
    assert encoders.generator_rates([[1e-6, 0.5], [0.75, 1.0]]).tolist() == [[0, 32768], [49152, 65535]]
    assert encoders.MAX_RATE == 65535 and encoders.RATE_ONE == 65536


def test_the_generator_at_those_rates_spikes_at_the_asked_probability():
    from neurofabric.host.generator import generate_inputs
    wanted = np.array([0.0, 0.02, 0.1, 0.5, 1.0])
    rates = encoders.generator_rates(wanted)
    spikes, _ = generate_inputs(1, rates, 20_000)
    observed = spikes.mean(axis=0)
    assert observed[0] == 0
    for p, got in zip(wanted[1:], observed[1:]):
        assert abs(got - p) < 5 * np.sqrt(max(p * (1 - p), 1e-4) / 20_000) + 1 / 65536, (p, got)


def test_trial_seeds_continue_where_the_previous_trial_left_the_generator():
    from neurofabric.host.arith import xorshift32
    seeds = encoders.trial_seeds(77, 4, steps=6, inputs=3)
    assert seeds.dtype == np.int64 and seeds.shape == (4,) and seeds[0] == 77
    g = 77
    for r in range(1, 4):
        for _ in range(6 * 3):          # the generator advances once per input per step
            g = xorshift32(g)
        assert seeds[r] == g, r
    assert encoders.trial_seeds(5, 1, 100, 8).tolist() == [5]
    assert len(set(encoders.trial_seeds(1, 50, 10, 2).tolist())) == 50


def test_an_encoded_stimulus_saves_loads_and_runs():
    net = nf.random_network(6, 5, seed=3)
    stim = nf.poisson(200, steps=100, dt=1e-3, inputs=5, seed=0)
    rec = nf.GoldenModel(net).run(stim)
    assert np.array_equal(rec.input_spikes, stim)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_values_files_in_each_format_read_the_same(tmp_path, suffix):
    values = np.array([[1.0, 0.5, 0.25], [0.0, 0.125, 1.0]])
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, values)
    elif suffix == ".npz":
        np.savez(path, values=values, other=np.zeros(2))
    else:
        path.write_text("# two trials\n1,0.5,0.25\n0,0.125,1\n")
    assert np.array_equal(encoders.load_values(path), values)


@pytest.mark.parametrize("name, content, message", [
    ("v.npy", None, r"object arrays are refused"),
    ("v.csv", "1,2\n3\n", r"rows of different lengths"),
    ("v.csv", "1,a\n", r"not numbers separated by commas"),
    ("v.csv", "\n", r"holds no numbers"),
    ("v.txt", "1\n", r"format '.txt' is not supported; allowed: .npy, .npz, .csv"),
    ("v.npy", "not numpy", r"is not a .npy file"),
])
def test_bad_values_files_are_refused(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_text(content)
    with pytest.raises(nf.NetworkError, match=message):
        encoders.load_values(path)


# -- the command --------------------------------------------------------------------------------

def test_the_stimulus_command_of_the_issue_writes_a_seeded_poisson_file(tmp_path):
    out = tmp_path / "stim.npz"
    result = invoke("stimulus", "--poisson", "20Hz", "--dt", "1ms", "--steps", 1000, "--inputs", 64, "-o", out)
    assert result.exit_code == 0, result.output
    spikes = nf.load_stimulus(out, m=64)
    assert spikes.shape == (1000, 64)
    assert abs(spikes.mean() - 0.02) < 5 * np.sqrt(0.02 * 0.98 / 64_000)
    assert np.array_equal(spikes, nf.poisson(20, 1000, 1e-3, inputs=64, seed=0))
    again = tmp_path / "again.npz"
    assert invoke("stimulus", "--poisson", "0.02kHz", "--dt", "0.001", "--steps", 1000, "--inputs", 64,
                  "-o", again).exit_code == 0
    assert np.array_equal(nf.load_stimulus(again), spikes)
    other = tmp_path / "other.npz"
    assert invoke("stimulus", "--poisson", "20", "--dt", "1ms", "--steps", 1000, "--inputs", 64, "--seed", 1,
                  "-o", other).exit_code == 0
    assert not np.array_equal(nf.load_stimulus(other), spikes)


def test_rows_of_a_values_file_are_a_batch_of_trials(tmp_path):
    values = np.array([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.save(tmp_path / "v.npy", values)
    out = tmp_path / "trials.npz"
    result = invoke("stimulus", "--poisson", "500Hz", "--dt", "0.5ms", "--steps", 40, "--values",
                    tmp_path / "v.npy", "--seed", 9, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 trials of 40 steps, 3 inputs: ")
    with np.load(out) as f:
        assert set(f.files) == {"spikes"} and f["spikes"].shape == (3, 40, 3)
    stim = Stimulus.load(out)
    assert stim.trials == 3 and stim.steps == 40
    assert np.array_equal(stim.spikes, nf.poisson(values * 500, 40, 0.5e-3, seed=9).astype(bool))
    assert not stim.spikes[0, :, 1].any() and stim.spikes[1, :, 1].any() and not stim.spikes[2, :, :2].any()


def test_gap_is_gone_with_trials_in_files(tmp_path):
    result = invoke("stimulus", "--poisson", "5Hz", "--dt", "1ms", "--steps", 10, "--inputs", 2, "--gap", 3,
                    "-o", tmp_path / "s.npz")
    assert result.exit_code == 2 and "No such option '--gap'" in result.stderr


def test_on_chip_poisson_writes_generator_rates_a_seed_and_no_spikes(tmp_path):
    out = tmp_path / "gen.npz"
    result = invoke("stimulus", "--poisson", "20Hz", "--on-chip", "--dt", "1ms", "--steps", 1000, "--inputs", 64,
                    "--seed", 7, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1000 steps, 64 inputs: generator rates 1311..1311 of 65536 (0.0200 spikes "
                                    "per input per step expected), seed 7, no host spikes; wrote ")
    with np.load(out) as f:
        assert set(f.files) == {"rates", "seed", "steps"}
        assert f["rates"].tolist() == [1311] * 64 and int(f["seed"]) == 7 and int(f["steps"]) == 1000
    default = tmp_path / "default.npz"
    assert invoke("stimulus", "--poisson", "20Hz", "--on-chip", "--dt", "1ms", "--steps", 10, "--inputs", 2,
                  "-o", default).exit_code == 0
    assert Stimulus.load(default).seed == 1
    # a rate of one spike per step is clamped to the largest rate
    assert invoke("stimulus", "--poisson", "1kHz", "--on-chip", "--dt", "1ms", "--steps", 10, "--inputs", 2,
                  "-o", tmp_path / "full.npz").exit_code == 0
    assert Stimulus.load(tmp_path / "full.npz").rates.tolist() == [65535, 65535]


def test_on_chip_trials_get_one_rate_row_and_one_seed_each(tmp_path):
    from neurofabric.host.files import Stimulus
    values = np.array([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0]])
    np.save(tmp_path / "v.npy", values)
    out = tmp_path / "gen.npz"
    result = invoke("stimulus", "--poisson", "100Hz", "--on-chip", "--dt", "1ms", "--steps", 30, "--values",
                    tmp_path / "v.npy", "--seed", 5, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 trials of 30 steps, 3 inputs: ")
    stim = Stimulus.load(out)
    assert stim.trials == 2 and stim.spikes is None and stim.steps == 30
    assert stim.rates.tolist() == encoders.generator_rates(values * 100, 1e-3).tolist()
    assert stim.seed.tolist() == encoders.trial_seeds(5, 2, 30, 3).tolist()
    net = nf.random_network(4, 3, seed=2)
    with nf.open_device("golden") as dev:
        dev.load(net)
        rec = stim.run(dev, record=("inputs",))
    assert rec.inputs.shape == (2, 30, 3) and not rec.inputs[0, :, 1].any() and rec.inputs[1, :, 1].sum() > 0


def test_latency_and_regular_from_the_command_line_match_the_api(tmp_path):
    values = np.array([[1.0, 0.5, 0.0, 0.25]])
    (tmp_path / "v.csv").write_text("1,0.5,0,0.25\n")
    assert invoke("stimulus", "--latency", "--steps", 9, "--values", tmp_path / "v.csv",
                  "-o", tmp_path / "l.npz").exit_code == 0
    assert np.array_equal(nf.load_stimulus(tmp_path / "l.npz"), nf.latency(values[0], 9))
    assert invoke("stimulus", "--regular", "50Hz", "--dt", "1ms", "--steps", 200, "--values", tmp_path / "v.csv",
                  "-o", tmp_path / "r.npz").exit_code == 0
    regular = nf.load_stimulus(tmp_path / "r.npz")
    assert regular.sum(axis=0).tolist() == [10, 5, 0, 2]


@pytest.mark.parametrize("args, code, message", [
    (["--poisson", "2kHz", "--dt", "1ms", "--inputs", 4], 3, "error: rates[0] = 2000.0 is out of range"),
    (["--inputs", 4], 2, "choose one encoding"),
    (["--poisson", "5Hz", "--regular", "5Hz", "--dt", "1ms", "--inputs", 4], 2, "got --poisson and --regular"),
    (["--poisson", "5Hz", "--inputs", 4], 2, "give the time step (--dt 1ms)"),
    (["--poisson", "5Hz", "--dt", "1ms"], 2, "give the number of inputs"),
    (["--latency", "--inputs", 4], 2, "give them with --values"),
    (["--poisson", "5Hz", "--dt", "1ms", "--values", "{v}", "--inputs", 5], 2, "but {v} has 3 values per row"),
    (["--poisson", "5Hz", "--dt", "1ms", "--values", "{big}"], 3,
     "error: {big}: values[1] = 3.0 is out of range: allowed an intensity, 0..1"),
    (["--regular", "5Hz", "--dt", "1ms", "--inputs", 1 << 20, "--steps", 1 << 20], 2, "more than a stimulus"),
    (["--regular", "5Hz", "--on-chip", "--dt", "1ms", "--inputs", 4], 2,
     "the stimulus generator draws Poisson inputs only: --on-chip goes with --poisson, not --regular"),
    (["--latency", "--on-chip", "--values", "{v}"], 2, "--on-chip goes with --poisson, not --latency"),
    (["--poisson", "5Hz", "--on-chip", "--dt", "1ms", "--inputs", 4, "--seed", 0], 2,
     "0 is not a generator seed: allowed 1..4294967295"),
    (["--poisson", "5Hz", "--on-chip", "--inputs", 4], 2, "give the time step (--dt 1ms)"),
    (["--poisson", "2kHz", "--on-chip", "--dt", "1ms", "--inputs", 4], 3, "error: rates[0] = 2000.0 is out of range"),
])
def test_the_stimulus_command_refuses_in_one_line(tmp_path, args, code, message):
    np.save(tmp_path / "v.npy", np.array([0.5, 0.5, 0.5]))
    np.save(tmp_path / "big.npy", np.array([0.5, 3.0]))
    names = {"v": tmp_path / "v.npy", "big": tmp_path / "big.npy"}
    args = [str(a).format(**names) for a in args]
    if "--steps" not in args:
        args += ["--steps", "10"]
    out = tmp_path / "out.npz"
    result = invoke("stimulus", *args, "-o", out)
    assert result.exit_code == code, result.output
    assert message.format(**names) in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.output and not out.exists()


# -- group names into recordings and plots ---------------------------------------------------------

def grouped_network(n=12, m=8):
    b = nf.NetworkBuilder()
    retina = b.add_inputs(5, "retina")
    cue = b.add_inputs(m - 5, "cue")
    exc = b.add_neurons(n - 4, "exc", threshold=40, refractory=1)
    inh = b.add_neurons(4, "inh", threshold=30)
    w = np.random.default_rng(5).integers(5, 40, size=(5, n - 4))
    b.connect(retina, exc, weights=w, plastic=True)
    b.connect(cue, exc, rule="random", p=0.5, weights=(10, 30), seed=2)
    b.connect(exc, inh, weights=20)
    b.connect(inh, exc, weights=-30)
    b.set_learning(a_plus=40, a_minus=30, stdp_shift=4, inc_pre=200, inc_post=200, w_min=0, w_max=100)
    return b.build()


def encoded_stimulus(m=8):
    """Every encoder, end to end: Poisson, then regular, then latency trials."""
    rng = np.random.default_rng(7)
    parts = [nf.poisson(rng.uniform(0, 300, m), steps=60, dt=1e-3, seed=3),
             nf.regular(rng.uniform(0, 0.5, m), steps=40),
             nf.concatenate_trials(nf.latency(rng.random((3, m)), steps=10), gap=5)]
    return np.concatenate(parts)


def run_cli(tmp_path, net, stim, device):
    nf.save_network(net, tmp_path / "net.npz")
    nf.save_stimulus(stim, tmp_path / "stim.npz")
    out = tmp_path / f"{device}.npz"
    result = invoke("-q", "run", tmp_path / "net.npz", "--input", tmp_path / "stim.npz", "--device", device,
                    "-o", out, "--record", "v,i", "--snapshot-every", 20)
    assert result.exit_code == 0, result.output
    return nf.load_recording(out)


def test_run_keeps_the_group_names_and_the_raster_labels_them(tmp_path):
    from neurofabric.host import plot
    net = grouped_network()
    rec = run_cli(tmp_path, net, encoded_stimulus(), "golden")
    assert rec.extras["group_names"].tolist() == ["retina", "cue", "exc", "inh"]
    assert plot.groups(rec, "neurons") == [("exc", 0, 8), ("inh", 8, 4)]
    assert plot.groups(rec, "inputs") == [("retina", 0, 5), ("cue", 5, 3)]
    fig = plot.raster(rec)
    inputs_ax, neurons_ax = fig.axes
    assert [t.get_text() for t in neurons_ax.get_yticklabels()] == ["exc", "inh"]
    assert neurons_ax.get_yticks().tolist() == [3.5, 9.5]
    assert [t.get_text() for t in inputs_ax.get_yticklabels()] == ["retina", "cue"]
    # Only the groups of the neurons drawn are named.
    fig = plot.raster(rec, neurons=[9, 10])
    assert [t.get_text() for t in fig.axes[-1].get_yticklabels()] == ["inh"]
    # The picture is written from the command line too.
    result = invoke("plot", tmp_path / "golden.npz", "-o", tmp_path / "raster.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "raster.png").stat().st_size > 0


def test_a_recording_without_groups_or_with_wrong_ones_draws_neuron_numbers(tmp_path):
    from neurofabric.host import plot
    net = nf.random_network(6, 4, seed=1)
    rec = nf.GoldenModel(net).run(nf.poisson(0.3, steps=50, inputs=4, seed=1))
    assert plot.groups(rec, "neurons") == []
    labels = [t.get_text() for t in plot.raster(rec).axes[-1].get_yticklabels()]
    assert "exc" not in labels and all(label.lstrip("−-").replace(".", "").isdigit() for label in labels if label)
    rec.extras.update(group_names=np.array(["a"]), group_kinds=np.array(["neurons"]),
                      group_starts=np.array([4]), group_sizes=np.array([5]))   # beyond n = 6
    assert plot.groups(rec, "neurons") == []


@pytest.mark.rtl
def test_an_encoded_stimulus_runs_identically_on_golden_and_rtl(tmp_path):
    # n = 12, m = 8 round up to the n = 16, m = 8 core that tests/test_cli_rtl.py builds.
    net = grouped_network()
    stim = encoded_stimulus()
    golden = run_cli(tmp_path, net, stim, "golden")
    rtl = run_cli(tmp_path, net, stim, "rtl")
    assert golden.spikes.sum() > 0 and not np.array_equal(golden.weights, net.weights)
    for key in ("spikes", "v", "i", "weights", "weight_snapshots", "input_spikes"):
        assert np.array_equal(getattr(golden, key), getattr(rtl, key)), key
    assert np.array_equal(rtl.input_spikes, stim)
    assert rtl.extras["group_names"].tolist() == ["retina", "cue", "exc", "inh"]
