"""Trained networks in snnTorch's NIR conventions run on the core as in their float NIR simulation.

A smaller run of benchmarks/nir_fidelity.py (fewer training samples, epochs,
hidden neurons and held-out samples, fixed seeds): a digits classifier trained
in numpy, written as snnTorch's `export_to_nir` writes it (scalar parameters,
dt = 0.1 ms recorded nowhere), imported at the default tolerance and widths
and run as one batch of trials on the golden model, against the float
simulation of the same graph on the same input spikes. Issue 15's acceptance:
within 3 points of the float accuracy and at least 90 % agreement on the
predicted class, for a CubaLIF graph (`Synaptic`, alpha 0.75, beta 0.875) and
a LIF graph (`Leaky`, beta 0.9).
"""

import importlib.util
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

import neurofabric as nf
from neurofabric.host.errors import NetworkError

from .nir_float import simulate

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("nir_fidelity", ROOT / "benchmarks" / "nir_fidelity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nir_fidelity", module)
    spec.loader.exec_module(module)
    return module


fidelity = _benchmark()


def random_params(rng, hidden=12, inputs=64, bias=True):
    params = {"w1": rng.normal(0.0, 0.4, (hidden, inputs)), "w2": rng.normal(0.2, 0.5, (fidelity.CLASSES, hidden))}
    if bias:
        params.update(b1=rng.normal(0.0, 0.05, hidden), b2=rng.normal(0.0, 0.05, fidelity.CLASSES))
    return params


@pytest.mark.parametrize("kind", list(fidelity.GRAPHS))
def test_the_graph_is_what_snntorchs_exporter_writes(kind, tmp_path):
    graph = fidelity.snntorch_graph(kind, random_params(np.random.default_rng(0)))
    assert [type(graph.nodes[n]).__name__ for n in ("input", "0", "1", "2", "3", "output")] == [
        "Input", "Affine", {"cubalif": "CubaLIF", "lif": "LIF"}[kind], "Affine",
        {"cubalif": "CubaLIF", "lif": "LIF"}[kind], "Output"]
    neuron = graph.nodes["1"]
    beta = fidelity.GRAPHS[kind]["beta"]
    tau_mem = neuron.tau if kind == "lif" else neuron.tau_mem
    assert np.ndim(tau_mem) == 0 and tau_mem == pytest.approx(fidelity.DT / (1 - beta))
    assert neuron.r == pytest.approx(tau_mem / fidelity.DT) and neuron.v_leak == 0 and neuron.v_threshold == 1.0
    assert neuron.v_reset == 0             # snnTorch writes none: nir's default
    if kind == "cubalif":
        assert neuron.tau_syn == pytest.approx(fidelity.DT / 0.25) and neuron.w_in == pytest.approx(4.0)
    nir.write(str(tmp_path / "g.nir"), graph, compression=None)
    with pytest.raises(NetworkError, match="records no time step"):    # snnTorch writes no dt
        nf.import_nir(tmp_path / "g.nir")
    net, _ = nf.import_nir(tmp_path / "g.nir", fidelity.DT)          # the default tolerance
    assert net.n == 12 + fidelity.CLASSES and net.m == 64
    assert set(net.decay_mem.tolist()) == {512 if kind == "cubalif" else 410}     # round(4096 * (1 - beta))
    assert set(net.decay_syn.tolist()) == {1024 if kind == "cubalif" else 4096}


def test_a_layer_without_bias_is_a_linear_node():
    params = fidelity.train("lif", np.random.default_rng(0).uniform(0, 1, (40, 64)), np.arange(40) % 10, hidden=8,
                            epochs=1, bias=False)
    assert sorted(params) == ["w1", "w2"]
    graph = fidelity.snntorch_graph("lif", params)
    assert type(graph.nodes["0"]).__name__ == type(graph.nodes["2"]).__name__ == "Linear"


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(fidelity.GRAPHS))
def test_the_batched_float_simulation_is_nirs_equations(kind, bias):
    # The benchmark's float simulation runs every sample at once; tests/nir_float.py, written from NIR's
    # definitions, runs one: the same spikes in every layer.
    rng = np.random.default_rng(3)
    graph = fidelity.snntorch_graph(kind, random_params(rng, bias=bias))
    x = rng.uniform(0, 1, (6, 64))
    stim = fidelity.rate_code(x, fidelity.STEPS, seed=4)
    batched = fidelity.simulate(graph, fidelity.DT, stim)
    assert batched["1"].sum() > 100 and batched["3"].sum() > 20
    for b in range(len(x)):
        one = simulate(graph, fidelity.DT, {"input": stim[b]}, fidelity.STEPS)
        for name in ("1", "3"):
            assert np.array_equal(batched[name][b], one[name]), (b, name)


def test_predictions_take_most_spikes_then_the_first_to_fire_then_the_lowest_index():
    spikes = np.zeros((3, 4, 10), np.uint8)
    spikes[0, [0, 2], 7] = 1
    spikes[0, 1, 3] = 1                  # one spike against two
    spikes[1, 2, 4] = spikes[1, 1, 6] = 1  # a tie: 6 fired first
    assert fidelity.predict(spikes).tolist() == [7, 6, 0]      # silent: 0


@pytest.mark.parametrize("kind", list(fidelity.GRAPHS))
def test_a_trained_snntorch_graph_runs_on_the_core_within_3_points_and_90_percent_agreement(kind):
    result = fidelity.measure(graphs=(kind,), test_size=300, train_size=800, hidden=32, epochs=10, seed=0)[kind]
    assert result["samples"] == 300
    assert result["float_accuracy"] >= 0.8, result           # trained: chance is 0.1
    assert abs(result["neurofabric_accuracy"] - result["float_accuracy"]) <= fidelity.MAX_ACCURACY_GAP, result
    assert result["agreement"] >= fidelity.MIN_AGREEMENT, result
    assert result["meets_acceptance"] is True
    # The layers really run: spike counts of the core within 2 % of the float simulation's.
    for name, pop in result["populations"].items():
        assert pop["float_spikes_per_sample"] > 1, (name, pop)
        assert pop["neurofabric_spikes_per_sample"] == pytest.approx(pop["float_spikes_per_sample"], rel=0.02)
