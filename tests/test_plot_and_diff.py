"""Plots, the text raster, and finding the first divergence between two runs."""

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host import plot
from neurofabric.host.cli import cli
from neurofabric.host.compare import first_divergence


@pytest.fixture
def run(tmp_path):
    net = nf.random_network(6, 4, seed=8, learn=1)
    stim = np.random.default_rng(3).random((60, 4)) < 0.3
    rec = nf.GoldenModel(net).run(stim, record=("v", "i"), snapshot_every=10)
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_stimulus(stim, tmp_path / "s.npz")
    nf.save_recording(rec, tmp_path / "r.npz")
    return net, stim, rec, tmp_path


@pytest.mark.parametrize("kind", ["raster", "traces", "weights", "evolution"])
def test_plot_command_writes_a_png(run, kind):
    *_, tmp = run
    out = tmp / f"{kind}.png"
    result = CliRunner().invoke(cli, ["plot", str(tmp / "r.npz"), "--kind", kind, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_labels_axes(run):
    net, stim, rec, tmp = run
    fig = plot.raster(rec, title="t")
    labels = [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
    assert "time (step)" in labels and "neuron" in labels and "input" in labels


def test_traces_without_probes_is_a_clear_error(run, tmp_path):
    net, stim, rec, tmp = run
    nf.save_recording(nf.GoldenModel(net).run(stim), tmp_path / "plain.npz")
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "plain.npz"), "--kind", "traces"])
    assert result.exit_code == 1 and "run with --record v,i" in result.stderr


def test_ascii_raster_marks_spikes_in_their_column():
    spikes = np.zeros((20, 2), np.uint8)
    spikes[0, 0] = spikes[19, 1] = 1
    text = plot.ascii_raster(spikes, width=10).splitlines()
    assert text[1] == "0 |........." and text[2] == "1 .........|"


def test_first_divergence_finds_the_earliest_step_and_variable(run):
    net, stim, rec, tmp = run
    other = nf.GoldenModel(net).run(stim, record=("v", "i"), snapshot_every=10)
    assert first_divergence(rec, other) is None
    other.v[17, 2] += 1
    other.i[30, 0] += 1
    found = first_divergence(rec, other)
    assert (found.step, found.variable, found.index) == (17, "v", (2,))
    assert found.b == found.a + 1
    other = nf.GoldenModel(net).run(stim, record=("v", "i"))
    other.weights = other.weights.copy()
    other.weights[3, 1] += 5
    found = first_divergence(rec, other)
    assert found.step is None and found.index == (3, 1)
    assert "after the run: synapse w[3][1]" in found.describe()


def test_diff_command_agrees_for_identical_devices(run):
    *_, tmp = run
    result = CliRunner().invoke(cli, ["diff", str(tmp / "n.npz"), "--input", str(tmp / "s.npz"),
                                      "--device", "golden", "--device", "golden"])
    assert result.exit_code == 0 and "agree: 60 steps" in result.output
    result = CliRunner().invoke(cli, ["diff", str(tmp / "n.npz"), "--input", str(tmp / "s.npz"),
                                      "--device", "golden"])
    assert result.exit_code == 2 and "exactly two devices" in result.output


# -- plots show what they say ------------------------------------------------------------

@pytest.fixture
def learning_run():
    """A run in which only some synapses are plastic, and the fixed ones are far heavier."""
    net = nf.random_network(6, 4, seed=8, learn=1, a_plus=10, a_minus=8, stdp_shift=6, w_min=-128, w_max=127,
                            inc_pre=100, inc_post=100, decay_pre=512, decay_post=512, trace_mode=0)
    net.plastic_post = np.array([1, 1, 0, 1, 0, 1])
    net.plastic_pre = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0])
    fixed = ~net.plastic_mask()
    net.weights[fixed] = 120
    net.validate()
    stim = np.random.default_rng(4).random((200, 4)) < 0.4
    rec = nf.GoldenModel(net).run(stim, record=("v", "i"), snapshot_every=20)
    return net, rec


def legend_lines(fig):
    ax = fig.axes[0]
    return {line.get_label(): line for line in ax.get_lines()}


def test_evolution_averages_plastic_synapses_only_and_says_which_neurons(learning_run):
    net, rec = learning_run
    mask = net.plastic_mask()
    fig = plot.evolution(rec, plastic=mask, title="t")
    lines = legend_lines(fig)
    drawn = [j for j in range(net.n) if mask[:, j].any()]
    assert drawn == [0, 1, 3, 5]
    for j in drawn:
        line = lines[f"plastic synapses into neuron {j} ({int(mask[:, j].sum())} synapses)"]
        want = rec.weight_snapshots[:, mask[:, j], j].mean(axis=1)
        assert np.array_equal(line.get_ydata(), want)
        assert np.array_equal(line.get_xdata(), rec.snapshot_steps)
    assert len(lines) == len(drawn)
    assert fig.axes[0].get_title() == "t: all 4 neurons with plastic synapses (0-1, 3, 5)"
    chosen = plot.evolution(rec, plastic=mask, neurons=[1, 2], title="t")
    assert list(legend_lines(chosen)) == ["plastic synapses into neuron 1 (6 synapses)"]
    assert chosen.axes[0].get_title() == "t: neurons 1; no plastic synapses into 2"
    with pytest.raises(nf.NeurofabricError, match=r"neurons 2, 4 have no plastic synapses \(neurons with some: "
                                                  r"0-1, 3, 5\)"):
        plot.evolution(rec, plastic=mask, neurons=[2, 4])


def test_evolution_without_the_network_follows_the_synapses_that_changed(learning_run):
    net, rec = learning_run
    snaps = rec.weight_snapshots
    changed = (snaps != snaps[:1]).any(axis=0) | (rec.weights != snaps[0])
    assert changed.any() and not (changed & ~net.plastic_mask()).any()
    fig = plot.evolution(rec, title="t")
    for label, line in legend_lines(fig).items():
        assert label.startswith("changing synapses into neuron ")
        j = int(label.split("neuron ")[1].split(" ")[0])
        assert np.array_equal(line.get_ydata(), snaps[:, changed[:, j], j].mean(axis=1))
    assert "synapses whose weight changed between snapshots" in fig.axes[0].get_title()


def test_evolution_draws_the_first_eight_neurons_by_default_and_says_how_many():
    net = nf.random_network(12, 3, seed=2, learn=1, plastic_post=np.ones(12, int), plastic_pre=np.ones(15, int))
    rec = nf.GoldenModel(net).run(np.ones((20, 3), bool), snapshot_every=5)
    fig = plot.evolution(rec, plastic=net.plastic_mask(), title="t")
    assert len(legend_lines(fig)) == plot.DEFAULT_EVOLUTION == 8
    assert fig.axes[0].get_title() == "t: neurons 0-7 (8 of the 12 with plastic synapses)"


def test_neurons_and_window_choose_what_raster_and_traces_draw(learning_run):
    net, rec = learning_run
    assert plot.parse_neurons("0-2,5, 4") == [0, 1, 2, 4, 5]
    assert plot.parse_window("50:120") == (50, 120) and plot.parse_window("50:") == (50, None)
    fig = plot.raster(rec, title="t", neurons=[0, 1, 2, 5], window=(50, 120))
    out = fig.axes[-1]
    assert out.get_title() == "output spikes (neurons 0-2, 5 (4 of 6))"
    xy = np.concatenate([c.get_offsets() for c in out.collections])
    t, j = np.nonzero(rec.spikes[50:120][:, [0, 1, 2, 5]])
    assert sorted(map(tuple, xy.tolist())) == sorted(zip((t + 50).tolist(), np.array([0, 1, 2, 5])[j].tolist()))
    assert out.get_xlim() == (49.5, 119.5)
    traces = plot.traces(rec, title="t", window=(50, 120))
    assert traces._suptitle.get_text() == "t: neurons 0-3 (4 of 6)"
    lines = [line for line in traces.axes[0].get_lines() if line.get_label().startswith("neuron")]
    assert [line.get_label() for line in lines] == [f"neuron {j}" for j in range(4)]
    assert np.array_equal(lines[2].get_xdata(), np.arange(50, 120))
    assert np.array_equal(lines[2].get_ydata(), rec.v[50:120, 2])
    every = plot.traces(rec, neurons=range(6), title="t")
    assert every._suptitle.get_text() == "t: all 6 neurons"
    with pytest.raises(nf.NeurofabricError, match=r"window 150:300 is outside the recording: it has steps 0..199"):
        plot.raster(rec, window=(150, 300))
    with pytest.raises(nf.NeurofabricError, match="neuron 6 is out of range"):
        plot.raster(rec, neurons=[6])


def test_ascii_raster_window_and_rows():
    spikes = np.zeros((40, 3), np.uint8)
    spikes[5, 0] = spikes[25, 2] = spikes[30, 1] = 1
    text = plot.ascii_raster(spikes, width=10, rows=[0, 2], window=(20, 40)).splitlines()
    assert text[0].strip() == "time 20..40 steps, 2.0 steps per column, neurons 0, 2 (2 of 3)"
    assert text[1:] == ["0 ..........", "2 ..|......."]


@pytest.mark.parametrize("bad, message", [
    ("0-x", "'0-x' is not a neuron number or a range"),
    ("4-1", "'4-1' is not a range from a neuron to a later one"),
])
def test_parse_neurons_refuses_what_it_cannot_read(bad, message):
    with pytest.raises(nf.NeurofabricError, match=message):
        plot.parse_neurons(bad)


def test_plot_command_takes_neurons_window_and_the_network(learning_run, tmp_path):
    net, rec = learning_run
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_recording(rec, tmp_path / "r.npz")
    for args in (["--kind", "raster", "--neurons", "0-2,5", "--window", "50:120"],
                 ["--kind", "traces", "--neurons", "1,3", "--window", ":100"],
                 ["--kind", "weights", "--neurons", "0-3"],
                 ["--kind", "evolution", "--network", str(tmp_path / "n.npz"), "--window", "40:"]):
        out = tmp_path / f"{args[1]}.png"
        result = CliRunner().invoke(cli, ["plot", str(tmp_path / "r.npz"), "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = CliRunner().invoke(cli, ["plot", str(tmp_path / "r.npz"), "--ascii", "--neurons", "1", "--window",
                                    "0:100", "--width", "10"])
    assert text.exit_code == 0 and text.output.splitlines()[0].strip().startswith("time 0..100 steps")
    assert [line.split()[0] for line in text.output.splitlines()[1:]] == ["1"]
    other = nf.random_network(5, 4, seed=1)
    nf.save_network(other, tmp_path / "other.npz")
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "r.npz"), "--kind", "evolution", "--network",
                                      str(tmp_path / "other.npz"), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 3 and "not the network that ran" in result.stderr
    result = CliRunner().invoke(cli, ["plot", str(tmp_path / "r.npz"), "--kind", "weights", "--window", "0:5"])
    assert result.exit_code == 2 and "a time window does not apply" in result.stderr
    assert not (tmp_path / "x.png").exists()
