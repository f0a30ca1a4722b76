"""The acceptance script of neurofabric.pynn: Poisson inputs, an IF_curr_exp population with lateral
inhibition and STDP onto it, on the golden model and on the simulated board.

The two devices must return identical spikes, membrane potentials and learned weights (the core model
is the contract); the spike counts must agree within 10 % with a floating-point simulation of the same
PyNN model driven by the same input spikes (tests/test_pynn_reference.py, float weights and traces): forward
Euler at the time step, and the exact integration in NEST's order.
"""

import numpy as np
import pytest
import quantities as pq
from pyNN.random import NumpyRNG, RandomDistribution

import neurofabric.pynn as sim

from .test_pynn_reference import simulate, simulate_exact
from .test_pynn_scenarios import BOARD

DT = 1.0
T_STOP = 2000.0
N_INPUTS, N_CELLS = 40, 16
CELL = dict(tau_m=20.0, cm=1.0, v_rest=-65.0, v_reset=-65.0, v_thresh=-55.0, tau_refrac=2.0,
            tau_syn_E=5.0, tau_syn_I=5.0)
RULE = dict(tau_plus=20.0, tau_minus=20.0, A_plus=0.01, A_minus=0.012)
BOUNDS = dict(w_min=0.0, w_max=1.0)
W_INHIBITION = -0.3


def acceptance_script(device, **device_options):
    """The PyNN script, as a user writes it; returns what it recorded."""
    sim.setup(timestep=DT, device=device, device_options=device_options, rng_seed=7)
    inputs = sim.Population(N_INPUTS, sim.SpikeSourcePoisson(rate=15.0), label="inputs")
    exc = sim.Population(N_CELLS, sim.IF_curr_exp(**CELL), label="exc")
    stdp = sim.STDPMechanism(timing_dependence=sim.SpikePairRule(**RULE),
                             weight_dependence=sim.AdditiveWeightDependence(**BOUNDS), dendritic_delay_fraction=0,
                             weight=RandomDistribution("uniform", (0.0, 1.0), rng=NumpyRNG(seed=3)))
    feedforward = sim.Projection(inputs, exc, sim.AllToAllConnector(), stdp, receptor_type="excitatory")
    sim.Projection(exc, exc, sim.AllToAllConnector(allow_self_connections=False),
                   sim.StaticSynapse(weight=W_INHIBITION), receptor_type="inhibitory")
    exc.record(["spikes", "v"])
    inputs.record("spikes")
    initial = feedforward.get("weight", format="array")
    sim.run(T_STOP)
    cells = exc.get_data().segments[0]
    result = dict(
        initial=initial,
        weights=feedforward.get("weight", format="array"),
        spikes=[train.rescale(pq.ms).magnitude.tolist() for train in cells.spiketrains],
        v=cells.filter(name="v")[0].magnitude.copy(),
        inputs=[train.rescale(pq.ms).magnitude for train in inputs.get_data().segments[0].spiketrains],
        counts=exc.get_spike_counts(),
        digest=sim.simulator.state.engine.digest(),
        report=sim.quantisation_report(),
    )
    sim.end()
    return result


@pytest.fixture(scope="module")
def golden():
    return acceptance_script("golden")


def float_model(result, integrate=simulate):
    """The same PyNN model in floating point, driven by the input spikes the device generated."""
    raster = np.zeros((int(T_STOP / DT), N_INPUTS), bool)
    for k, times in enumerate(result["inputs"]):
        raster[np.round(times / DT).astype(int), k] = True
    lateral = np.where(np.eye(N_CELLS, dtype=bool), 0.0, W_INHIBITION)
    return integrate(raster, result["initial"], lateral, dict(CELL, tau_syn=CELL["tau_syn_E"]), DT,
                     dict(RULE, **BOUNDS))


@pytest.mark.parametrize("integrate", [simulate, simulate_exact], ids=["forward_euler", "exact_nest_order"])
def test_spike_counts_agree_with_the_float_model(golden, integrate):
    spikes, weights = float_model(golden, integrate)
    count = sum(golden["counts"].values())
    assert count > 500                                      # the network is well driven
    assert abs(count - spikes.sum()) <= 0.1 * spikes.sum(), (count, int(spikes.sum()))


def test_learning_moves_the_weights_as_the_float_model_does(golden):
    _, weights = float_model(golden)
    change, expected = golden["weights"] - golden["initial"], weights - golden["initial"]
    assert np.abs(change).max() > 0.1
    assert abs(golden["weights"].mean() - weights.mean()) < 0.02
    assert np.corrcoef(change.ravel(), expected.ravel())[0, 1] > 0.5


def test_the_report_names_the_rule_and_the_rates(golden):
    report = golden["report"]
    assert {p["name"] for p in report["learning"]["parameters"]} == {"tau_plus", "tau_minus", "A_plus", "A_minus",
                                                                    "w_min", "w_max"}
    assert all(abs(p["relative_error"]) < 0.01 for p in report["learning"]["parameters"])
    assert report["rates"][0]["rate"] == [round(65536 * 15.0e-3)] * 2
    assert "STDP (one global rule)" in "\n".join(report.lines())


@pytest.mark.rtl
def test_the_simulated_board_gives_the_same_spikes_and_weights(golden):
    board = acceptance_script("rtl", **BOARD)
    assert board["spikes"] == golden["spikes"]
    assert [t.tolist() for t in board["inputs"]] == [t.tolist() for t in golden["inputs"]]
    assert np.array_equal(board["v"], golden["v"])
    assert np.array_equal(board["weights"], golden["weights"])
    assert board["digest"] == golden["digest"]
