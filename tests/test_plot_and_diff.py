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
