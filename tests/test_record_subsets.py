"""Recording some neurons and spike counts only (spec section 6: `neurons`, `counts`)."""

import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import cli
from neurofabric.host.errors import DeviceError, NetworkError


def _pair(learn=1):
    net = nf.random_network(24, 10, seed=6, learn=learn)
    full, part = nf.open_device("golden"), nf.open_device("golden")
    full.load(net)
    part.load(net)
    return net, full, part


def test_some_neurons_are_the_full_recordings_columns():
    net, full, part = _pair()
    rates = np.full(10, 12000)
    a = full.run(None, steps=80, rates=rates, seed=3, record=("v", "i", "inputs"))
    b = part.run(None, steps=80, rates=rates, seed=3, record=("v", "i", "inputs"), record_neurons=[17, 2, 5])
    assert b.neurons.tolist() == [2, 5, 17]
    for key in ("spikes", "v", "i"):
        assert np.array_equal(getattr(b, key), getattr(a, key)[:, [2, 5, 17]])
    assert np.array_equal(b.inputs, a.inputs) and np.array_equal(b.weights, a.weights)


def test_counts_replace_spikes_per_run_and_per_trial():
    net, full, part = _pair()
    a = full.run_trials(np.random.default_rng(0).random((3, 40, 10)) < 0.2)
    b = part.run_trials(np.random.default_rng(0).random((3, 40, 10)) < 0.2, record_neurons=[0, 23], counts=True)
    assert b.spikes is None and b.steps == 40 and b.trials == 3
    assert np.array_equal(b.counts, a.spikes[:, :, [0, 23]].sum(axis=1))
    one = part.run(np.ones((30, 10), int), counts=True)
    assert one.counts.shape == (net.n,) and one.steps == 30


@pytest.mark.parametrize("bad, match", [([], "non-empty"), ([3, 3], "twice"), ([24], "out of range"),
                                        ([-1], "out of range"), ([1.5], "integer"), ([[1]], "shape")])
def test_bad_neuron_lists_are_refused(bad, match):
    _, full, _ = _pair()
    with pytest.raises(DeviceError, match=match):
        full.run(None, steps=5, record_neurons=bad)


def test_files_keep_neurons_and_counts(tmp_path):
    _, full, _ = _pair()
    for kw in (dict(record_neurons=[1, 4]), dict(record_neurons=[1, 4], counts=True), dict(counts=True)):
        rec = full.run(None, steps=20, rates=np.full(10, 30000), record=("v",), **kw)
        nf.save_recording(rec, tmp_path / "r.npz")
        back = nf.load_recording(tmp_path / "r.npz")
        assert back.steps == 20
        for key in ("spikes", "counts", "neurons", "v"):
            got, want = getattr(back, key), getattr(rec, key)
            assert (got is None and want is None) or np.array_equal(got, want), key


def test_a_recording_whose_columns_disagree_with_its_neurons_is_refused(tmp_path):
    _, full, _ = _pair()
    rec = full.run(None, steps=5, record_neurons=[1, 4])
    arrays = rec.to_arrays()
    arrays["neurons"] = np.array([1, 4, 7])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetworkError, match="neurons|columns"):
        nf.load_recording(tmp_path / "bad.npz")
    arrays["neurons"] = np.array([4, 1])
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetworkError, match="ascending"):
        nf.load_recording(tmp_path / "bad.npz")


def test_cli_run_neurons_and_counts(tmp_path):
    net = nf.random_network(12, 6, seed=2)
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_stimulus(np.random.default_rng(1).random((50, 6)) < 0.3, tmp_path / "s.npz")
    runner = CliRunner()
    args = ["run", str(tmp_path / "n.npz"), "--input", str(tmp_path / "s.npz")]
    res = runner.invoke(cli, [*args, "-o", str(tmp_path / "c.npz"), "--neurons", "0-3,11", "--counts"])
    assert res.exit_code == 0, res.output
    rec = nf.load_recording(tmp_path / "c.npz")
    dev = nf.open_device("golden")
    dev.load(net)
    want = dev.run(nf.load_stimulus(tmp_path / "s.npz")).spikes
    assert rec.neurons.tolist() == [0, 1, 2, 3, 11] and np.array_equal(rec.counts, want[:, rec.neurons].sum(0))
    info = runner.invoke(cli, ["info", str(tmp_path / "c.npz")])
    assert info.exit_code == 0 and "spike counts only" in info.output and "0-3, 11" in info.output
    plot = runner.invoke(cli, ["plot", str(tmp_path / "c.npz"), "-o", str(tmp_path / "p.png")])
    assert plot.exit_code == 2 and "counts only" in plot.output
    bad = runner.invoke(cli, [*args, "-o", str(tmp_path / "d.npz"), "--neurons", "12"])
    assert bad.exit_code == 2 and "out of range" in bad.output and not (tmp_path / "d.npz").exists()
