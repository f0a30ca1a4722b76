"""neurofabric.pynn: PyNN's API on the core, the mapping of every parameter, recording and refusals."""

import math

import neo
import numpy as np
import pytest
import quantities as pq
from pyNN.parameters import Sequence
from pyNN.random import NumpyRNG, RandomDistribution

import neurofabric.pynn as sim
from neurofabric.host.device import Capabilities, GoldenDevice
from neurofabric.host.errors import DeviceError, NetworkError
from neurofabric.host.generator import generate_inputs
from neurofabric.host.golden import GoldenModel
from neurofabric.pynn.errors import UnsupportedError

CELL = dict(tau_m=20.0, cm=1.0, v_rest=-65.0, v_reset=-70.0, v_thresh=-55.0, tau_refrac=2.0, tau_syn_E=5.0,
            tau_syn_I=5.0)


@pytest.fixture(autouse=True)
def _end():
    yield
    sim.end()


def spike_array(train):
    return np.asarray(train.rescale(pq.ms).magnitude)


# -- the mapping -------------------------------------------------------------------------------

def test_cell_parameters_become_the_core_fields():
    sim.setup(timestep=1.0)
    sim.Population(3, sim.IF_curr_exp(**CELL, i_offset=[0.0, 0.2, 0.4]), label="exc")
    net = sim.core_network()
    report = sim.quantisation_report()
    scale = report["populations"][0]["scale"] * 1e-3              # integers per mV
    assert list(net.decay_mem) == [round(4096 * 1.0 / 20.0)] * 3   # 205
    assert list(net.decay_syn) == [round(4096 * 1.0 / 5.0)] * 3    # 819
    assert list(net.refractory) == [2, 2, 2]
    assert list(net.threshold) == [math.floor(scale * 10.0) + 1] * 3      # v_thresh - v_rest = 10 mV
    assert list(net.v_reset) == [round(scale * -5.0)] * 3                 # v_reset - v_rest = -5 mV
    # i_offset I moves the rest to v_rest + R I (R = tau_m / cm = 20 MOhm): a bias of leak * R * I per step.
    leak = 205 / 4096
    assert list(net.bias) == [round(scale * leak * 20.0 * i) for i in (0.0, 0.2, 0.4)]
    assert net.m == 0 and net.n == 3 and net.learn == 0


def test_weights_are_scaled_and_signed_by_receptor():
    sim.setup(timestep=0.5)
    src = sim.Population(2, sim.SpikeSourceArray(), label="src")
    exc = sim.Population(2, sim.IF_curr_exp(**CELL), label="exc")
    sim.Projection(src, exc, sim.FromListConnector([(0, 0, 0.8, 0.5), (1, 1, 0.4, 0.5)]),
                   sim.StaticSynapse(), receptor_type="excitatory")
    sim.Projection(exc, exc, sim.FromListConnector([(0, 1, -0.6, 0.5)]), sim.StaticSynapse(),
                   receptor_type="inhibitory")
    net = sim.core_network()
    engine = sim.simulator.state.engine
    per_na = engine.compiled.w_per_unit[0]
    # The largest weight uses the whole 8-bit range; the others are rounded on the same scale.
    assert net.weights[0, 0] == 127
    assert net.weights[1, 1] == round(per_na * 0.4) and net.weights[2 + 0, 1] == round(per_na * -0.6)
    assert np.count_nonzero(net.weights) == 3
    with pytest.raises(Exception, match="negative for current-based, inhibitory"):
        sim.Projection(src, exc, sim.OneToOneConnector(), sim.StaticSynapse(weight=0.3), receptor_type="inhibitory")


def test_views_and_assemblies_land_on_the_right_synapses():
    sim.setup(timestep=1.0)
    src = sim.Population(4, sim.SpikeSourceArray(), label="src")
    a = sim.Population(3, sim.IF_curr_exp(**CELL), label="a")
    b = sim.Population(2, sim.IF_curr_exp(**CELL), label="b")
    both = a + b
    prj = sim.Projection(src[1:3], both[[0, 4]], sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5),
                         receptor_type="excitatory")
    net = sim.core_network()
    nonzero = {tuple(x) for x in np.argwhere(net.weights != 0)}
    # src[1], src[2] are inputs 1, 2; both[0] is a[0] (neuron 0), both[4] is b[1] (neuron 4).
    assert nonzero == {(1, 0), (1, 4), (2, 0), (2, 4)}
    assert prj.get("weight", format="array").shape == (2, 2)


def test_if_curr_delta_weights_are_jumps_in_mv():
    sim.setup(timestep=1.0)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[10.0]))
    cells = sim.Population(1, sim.IF_curr_delta(tau_m=20.0, v_rest=-65.0, v_thresh=-50.0, v_reset=-65.0))
    sim.Projection(src, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=2.0, delay=1.0))
    cells.record("v")
    sim.run(30.0)
    v = cells.get_data().segments[0].filter(name="v")[0].magnitude[:, 0]
    # The spike at 10 ms acts one step later: v jumps by 2 mV at 11 ms, then leaks with tau_m.
    assert np.all(v[:11] == -65.0)
    assert v[11] == pytest.approx(-63.0, abs=2.0 / 127)
    assert v[12] == pytest.approx(-65.0 + 2.0 * (1 - 205 / 4096), abs=2 * 2.0 / 127)


def test_dc_source_is_the_same_bias_as_i_offset():
    sim.setup(timestep=0.1)
    a = sim.Population(2, sim.IF_curr_exp(**CELL, i_offset=0.7), label="a")
    b = sim.Population(2, sim.IF_curr_exp(**CELL), label="b")
    sim.DCSource(amplitude=0.7).inject_into(b)
    a.record(["spikes", "v"])
    b.record(["spikes", "v"])
    sim.run(100.0)
    va, vb = (p.get_data().segments[0].filter(name="v")[0].magnitude for p in (a, b))
    assert np.array_equal(va, vb) and a.get_spike_counts()[a[0]] > 0
    assert [spike_array(t).tolist() for t in a.get_data().segments[0].spiketrains] == \
        [spike_array(t).tolist() for t in b.get_data().segments[0].spiketrains]


def test_dc_source_switched_during_a_run_is_refused():
    sim.setup(timestep=1.0)
    cells = sim.Population(1, sim.IF_curr_exp(**CELL))
    sim.DCSource(amplitude=0.5, start=10.0, stop=60.0).inject_into(cells)
    with pytest.raises(UnsupportedError, match=r"DCSource of 0.5 nA from 10 to 60 ms is not on for the whole run"):
        sim.run(100.0)


def test_tau_syn_e_and_i_are_one_current():
    sim.setup(timestep=1.0)
    src = sim.Population(2, sim.SpikeSourceArray())
    cells = sim.Population(3, sim.IF_curr_exp(**{**CELL, "tau_syn_E": 4.0, "tau_syn_I": 8.0}), label="cells")
    sim.Projection(src[0:1], cells[0:1], sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5))
    sim.Projection(src[1:2], cells[1:2], sim.AllToAllConnector(), sim.StaticSynapse(weight=-0.5),
                   receptor_type="inhibitory")
    # One receptor type each: each neuron's current decays with its own time constant.
    assert list(sim.core_network().decay_syn) == [round(4096 / 4.0), round(4096 / 8.0), round(4096 / 4.0)]
    sim.Projection(src[1:2], cells[0:1], sim.AllToAllConnector(), sim.StaticSynapse(weight=-0.5),
                   receptor_type="inhibitory")
    with pytest.raises(UnsupportedError, match=r"neuron 0 receives excitatory and inhibitory input with "
                                               r"tau_syn_E = 4 ms and tau_syn_I = 8 ms"):
        sim.core_network()


def test_refractory_periods_are_whole_steps():
    sim.setup(timestep=1.0)
    sim.Population(2, sim.IF_curr_exp(**{**CELL, "tau_refrac": [0.1, 3.0]}))
    # 0.1 ms is under half a step: none, as NEST's counter rounds it.
    assert list(sim.core_network().refractory) == [0, 3]
    sim.setup(timestep=1.0)
    sim.Population(2, sim.IF_curr_exp(**{**CELL, "tau_refrac": [2.0, 0.7]}), label="p")
    with pytest.raises(NetworkError, match=r"population p: tau_refrac\[1\] = 0.7 ms is realised as 1 steps"):
        sim.core_network()


def test_a_time_constant_the_core_cannot_hold_is_refused_with_its_index():
    sim.setup(timestep=0.1)
    sim.Population(3, sim.IF_curr_exp(tau_m=[20.0, 20.0, 1e6]), label="slow")
    with pytest.raises(NetworkError, match=r"population slow: tau_m\[2\] = 1e\+06 ms is realised as inf ms"):
        sim.core_network()


def test_initial_values_other_than_the_reset_state_are_refused():
    sim.setup(timestep=1.0)
    cells = sim.Population(2, sim.IF_curr_exp(v_rest=-60.0), label="c")
    with pytest.raises(UnsupportedError, match=r"initial v\[0\] = -65 mV differs from v_rest\[0\] = -60 mV"):
        sim.core_network()
    cells.initialize(v=-60.0)
    assert sim.core_network().n == 2


@pytest.mark.parametrize("make, supported", [
    (lambda: sim.IF_curr_alpha(), "IF_curr_exp"),
    (lambda: sim.IF_cond_exp(), "IF_curr_exp"),
    (lambda: sim.Izhikevich(), "IF_curr_delta"),
    (lambda: sim.SpikeSourceGamma(), "SpikeSourcePoisson"),
    (lambda: sim.TsodyksMarkramSynapse(), "StaticSynapse"),
    (lambda: sim.StepCurrentSource(times=[1.0], amplitudes=[1.0]), "DCSource"),
    (lambda: sim.STDPMechanism(timing_dependence=sim.SpikePairRule(),
                               weight_dependence=sim.MultiplicativeWeightDependence()), "AdditiveWeightDependence"),
    (lambda: sim.STDPMechanism(timing_dependence=sim.Vogels2011Rule(),
                               weight_dependence=sim.AdditiveWeightDependence()), "SpikePairRule"),
    # PyNN's default: the delay on the dendrite; the core's rule has it on the axon (as pyNN.brian2's).
    (lambda: sim.STDPMechanism(timing_dependence=sim.SpikePairRule(),
                               weight_dependence=sim.AdditiveWeightDependence()), "dendritic_delay_fraction=0"),
])
def test_unsupported_models_name_what_is_supported(make, supported):
    sim.setup()
    with pytest.raises(UnsupportedError, match=supported) as info:
        make()
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, NetworkError)


def test_off_grid_spikes_are_refused():
    with pytest.raises(UnsupportedError, match="on the time-step grid"):
        sim.setup(timestep=0.1, spike_precision="off_grid")


# -- delays --------------------------------------------------------------------------------------

def test_a_source_delay_shifts_its_spikes():
    sim.setup(timestep=0.5)
    src = sim.Population(2, sim.SpikeSourceArray(spike_times=[Sequence([10.0]), Sequence([10.0])]))
    cells = sim.Population(2, sim.IF_curr_exp(**CELL))
    sim.Projection(src, cells, sim.FromListConnector([(0, 0, 0.5, 0.5), (1, 1, 0.5, 2.0)]), sim.StaticSynapse())
    cells.record("v")
    src.record("spikes")
    sim.run(30.0)
    v = cells.get_data().segments[0].filter(name="v")[0].magnitude
    # The current jumps `delay` after the spike, and the membrane (forward Euler) moves in that step.
    first = [int(np.flatnonzero(v[:, j] != -65.0)[0]) for j in range(2)]
    assert first == [int((10.0 + 0.5) / 0.5), int((10.0 + 2.0) / 0.5)]
    assert [spike_array(t).tolist() for t in src.get_data().segments[0].spiketrains] == [[10.0], [10.0]]


@pytest.mark.parametrize("pre_kind", ["cells", "poisson"])
def test_delays_other_than_one_step_from_neurons_or_poisson_are_refused(pre_kind):
    sim.setup(timestep=1.0)
    pre = (sim.Population(2, sim.IF_curr_exp(**CELL)) if pre_kind == "cells"
           else sim.Population(2, sim.SpikeSourcePoisson(rate=10.0)))
    post = sim.Population(2, sim.IF_curr_exp(**CELL))
    sim.Projection(pre, post, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5, delay=2.0), label="slow")
    message = (r"projection slow: delay 2 ms is 2 steps of 1 ms; the core delivers a neuron's spike"
               if pre_kind == "cells" else r"projection slow: input channel 0 has connections with delays of 2 ms")
    with pytest.raises(UnsupportedError, match=message):
        sim.run(10.0)


def test_one_source_with_two_delays_is_refused():
    sim.setup(timestep=1.0)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[5.0]))
    post = sim.Population(2, sim.IF_curr_exp(**CELL))
    sim.Projection(src, post, sim.FromListConnector([(0, 0, 0.5, 1.0), (0, 1, 0.5, 3.0)]), sim.StaticSynapse())
    with pytest.raises(UnsupportedError, match="delays of 1, 3 ms; a SpikeSourceArray's delay is a shift"):
        sim.run(10.0)


# -- spike sources ------------------------------------------------------------------------------

def test_spike_times_round_up_to_the_step_grid():
    sim.setup(timestep=0.5)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[0.0, 1.2, 3.0, 7.74]))
    src.record("spikes")
    sim.run(10.0)
    assert spike_array(src.get_data().segments[0].spiketrains[0]).tolist() == [0.0, 1.5, 3.0, 8.0]


def test_poisson_sources_are_the_core_generator_with_its_seed():
    sim.setup(timestep=1.0, rng_seed=12345)
    rates = [20.0, 80.0, 300.0]
    src = sim.Population(3, sim.SpikeSourcePoisson(rate=rates))
    src.record("spikes")
    sim.run(500.0)
    expected, _ = generate_inputs(12345, [round(65536 * r * 1e-3) for r in rates], 500)
    trains = src.get_data().segments[0].spiketrains
    for k in range(3):
        assert spike_array(trains[k]).tolist() == np.flatnonzero(expected[:, k]).astype(float).tolist()
    assert [e["rate"] for e in sim.quantisation_report()["rates"]] == [[1311, 19661]]


def test_poisson_start_and_duration_gate_the_generator_and_rates_change_between_runs():
    sim.setup(timestep=1.0, rng=NumpyRNG(seed=99))
    src = sim.Population(2, sim.SpikeSourcePoisson(rate=200.0, start=[0.0, 100.0], duration=[1e10, 150.0]))
    src.record("spikes")
    sim.run(300.0)
    src[0:1].set(rate=0.0)
    sim.run(100.0)
    # The generator's sequence does not depend on the rates (spec 5.0): the gated spikes are the
    # ungated sequence's spikes inside the window.
    every, _ = generate_inputs(99, [round(65536 * 0.2)] * 2, 400)
    trains = src.get_data().segments[0].spiketrains
    assert spike_array(trains[0]).tolist() == np.flatnonzero(every[:300, 0]).astype(float).tolist()
    window = np.flatnonzero(every[:, 1])
    assert spike_array(trains[1]).tolist() == window[(window >= 100) & (window < 250)].astype(float).tolist()


def test_seeds_replay_and_differ():
    def spikes(**seed):
        sim.setup(timestep=1.0, **seed)
        src = sim.Population(4, sim.SpikeSourcePoisson(rate=50.0))
        src.record("spikes")
        sim.run(200.0)
        out = [spike_array(t).tolist() for t in src.get_data().segments[0].spiketrains]
        sim.end()
        return out
    assert spikes(rng_seed=7) == spikes(rng=NumpyRNG(seed=7)) != spikes(rng_seed=8)
    with pytest.raises(NetworkError, match="seed"):
        sim.setup(rng_seed=0)


def test_a_rate_the_generator_cannot_hold_is_refused():
    sim.setup(timestep=0.1)
    sim.Population(3, sim.SpikeSourcePoisson(rate=[5.0, 5.0, 0.05]), label="slow")
    with pytest.raises(NetworkError, match=r"population slow: rate\[2\] = 0.05 Hz is realised as 0 Hz"):
        sim.run(10.0)


# -- recording --------------------------------------------------------------------------------

def _driven(dt=1.0, steps=200):
    src = sim.Population(5, sim.SpikeSourcePoisson(rate=80.0), label="noise")
    cells = sim.Population(4, sim.IF_curr_exp(**CELL), label="cells")
    sim.Projection(src, cells, sim.AllToAllConnector(), sim.StaticSynapse(
        weight=RandomDistribution("uniform", (0.5, 2.0), rng=NumpyRNG(seed=1))))
    return src, cells


def test_recorded_data_are_the_device_run_in_pynn_units():
    sim.setup(timestep=1.0, rng_seed=3)
    src, cells = _driven()
    cells.record(["spikes", "v"])
    src.record("spikes")
    sim.run(200.0)
    block = cells.get_data()
    assert isinstance(block, neo.Block) and len(block.segments) == 1
    segment = block.segments[0]
    v = segment.filter(name="v")[0]
    assert v.units == pq.mV and v.sampling_period == 1.0 * pq.ms and v.shape == (201, 4)
    # The same network and stimulus on the golden model: the recording is its integers, converted.
    net = sim.core_network()
    stim, _ = generate_inputs(3, [round(65536 * 0.08)] * 5, 200)
    model = GoldenModel(net)
    rec = model.run(np.zeros((200, 5), bool), record=("v",), rates=[round(65536 * 0.08)] * 5, seed=3)
    engine = sim.simulator.state.engine
    expected = rec.v / engine.compiled.v_per_mv[None, :] + engine.compiled.v_rest[None, :]
    assert np.array_equal(v.magnitude[0], np.full(4, -65.0))
    assert np.allclose(v.magnitude[1:], expected, rtol=0, atol=1e-9)
    for j, train in enumerate(segment.spiketrains):
        assert train.units == pq.ms and train.t_stop == 200.0 * pq.ms
        assert spike_array(train).tolist() == (np.flatnonzero(rec.spikes[:, j]) + 1.0).tolist()
    assert rec.spikes.sum() > 10
    counts = cells.get_spike_counts()
    assert [counts[c] for c in cells] == rec.spikes.sum(0).tolist()
    assert cells.mean_spike_count() == pytest.approx(rec.spikes.sum() / 4)
    inputs = src.get_data().segments[0].spiketrains
    assert [spike_array(t).tolist() for t in inputs] == [np.flatnonzero(stim[:, k]).astype(float).tolist()
                                                         for k in range(5)]


def test_runs_append_and_clear_starts_again():
    sim.setup(timestep=1.0, rng_seed=3)
    _, cells = _driven()
    cells.record(["spikes", "v"])
    sim.run(100.0)
    sim.run(100.0)
    whole = cells.get_data()
    v = whole.segments[0].filter(name="v")[0]
    assert v.shape == (201, 4)
    first = cells.get_data(clear=True)
    sim.run(50.0)
    later = cells.get_data().segments[0]
    v2 = later.filter(name="v")[0]
    assert v2.t_start == 200.0 * pq.ms and v2.shape == (51, 4)
    assert np.array_equal(v2.magnitude[0], v.magnitude[-1])
    assert all(spike_array(t).min(initial=np.inf) > 200.0 for t in later.spiketrains)
    assert first.segments[0].spiketrains[0].t_stop == 200.0 * pq.ms


def test_sampling_interval_and_views():
    sim.setup(timestep=0.5, rng_seed=3)
    _, cells = _driven()
    cells[1:3].record("v", sampling_interval=2.0)
    sim.run(100.0)
    v = cells.get_data().segments[0].filter(name="v")[0]
    assert v.shape == (51, 2) and v.sampling_period == 2.0 * pq.ms
    assert list(v.array_annotations["channel_index"]) == [1, 2]


@pytest.mark.parametrize("suffix", [".pkl", ".mat"])
def test_write_data_to_neo_formats(tmp_path, suffix):
    sim.setup(timestep=1.0, rng_seed=3)
    _, cells = _driven()
    cells.record(["spikes", "v"])
    sim.run(100.0)
    path = tmp_path / f"cells{suffix}"
    cells.write_data(str(path))
    back = neo.io.get_io(str(path)).read_block() if suffix == ".pkl" else neo.io.NeoMatlabIO(str(path)).read_block()
    here = cells.get_data().segments[0]
    assert np.allclose(np.asarray(back.segments[0].analogsignals[0]), np.asarray(here.analogsignals[0]))
    assert [spike_array(t).tolist() for t in back.segments[0].spiketrains] == \
        [spike_array(t).tolist() for t in here.spiketrains]


def test_end_writes_what_record_asked_for(tmp_path):
    sim.setup(timestep=1.0, rng_seed=3)
    _, cells = _driven()
    path = tmp_path / "v.pkl"
    cells.record("v", to_file=str(path))
    sim.run(50.0)
    sim.end()
    assert neo.io.PickleIO(str(path)).read_block().segments[0].analogsignals[0].shape == (51, 4)
    assert cells.get_data().segments[0].analogsignals[0].shape == (51, 4)    # still there after end()


# -- learning ----------------------------------------------------------------------------------

def _stdp(**rule):
    params = dict(tau_plus=20.0, tau_minus=20.0, A_plus=0.01, A_minus=0.012)
    params.update({k: v for k, v in rule.items() if k in params})
    bounds = dict(w_min=0.0, w_max=1.0)
    bounds.update({k: v for k, v in rule.items() if k in bounds})
    return sim.STDPMechanism(timing_dependence=sim.SpikePairRule(**params),
                             weight_dependence=sim.AdditiveWeightDependence(**bounds), dendritic_delay_fraction=0,
                             weight=RandomDistribution("uniform", (0.2, 0.8), rng=NumpyRNG(seed=2)))


def test_learning_registers_follow_the_pair_rule():
    sim.setup(timestep=1.0)
    src = sim.Population(8, sim.SpikeSourcePoisson(rate=20.0))
    cells = sim.Population(4, sim.IF_curr_exp(**CELL))
    sim.Projection(src, cells, sim.AllToAllConnector(), _stdp())
    net = sim.core_network()
    learning = sim.quantisation_report()["learning"]
    per_unit = learning["w_per_unit"]
    assert net.learn == 1 and net.trace_mode == 0 and net.inc_pre == net.inc_post == 64
    assert net.decay_pre == net.decay_post == round(4096 / 20.0)
    assert (net.w_min, net.w_max) == (0, round(per_unit * 1.0)) and net.w_max == 127
    # a_plus * inc / 2**shift is the weight change per unit of pre trace: w_max * A_plus.
    realised = net.a_plus * 64 / 2 ** net.stdp_shift / per_unit
    assert realised == pytest.approx(0.01, rel=0.5 / net.a_plus)
    assert net.a_minus * 64 / 2 ** net.stdp_shift / per_unit == pytest.approx(0.012, rel=0.5 / net.a_minus)
    assert 128 <= max(net.a_plus, net.a_minus) <= 255
    assert list(net.plastic_pre[:8]) == [1] * 8 and list(net.plastic_post) == [1] * 4


def test_projection_get_after_learning_is_the_device_weights():
    sim.setup(timestep=1.0, rng_seed=5)
    src = sim.Population(10, sim.SpikeSourcePoisson(rate=30.0))
    cells = sim.Population(4, sim.IF_curr_exp(**CELL))
    prj = sim.Projection(src, cells, sim.AllToAllConnector(), _stdp())
    before = prj.get("weight", format="array")
    sim.run(1000.0)
    after = prj.get("weight", format="array")
    engine = sim.simulator.state.engine
    per_unit = engine.compiled.w_per_unit[0]
    device = sim.simulator.state.engine.device.read_weights()[:10]
    assert np.allclose(after, device / per_unit)
    assert not np.allclose(after, before, atol=0.02) and after.min() >= 0 and after.max() <= 1.0
    listed = prj.get("weight", format="list")
    assert len(listed) == 40 and listed[5][2] == pytest.approx(after[int(listed[5][0]), int(listed[5][1])])


def test_reset_restores_weights_and_replays_the_segment():
    sim.setup(timestep=1.0, rng_seed=5)
    src = sim.Population(10, sim.SpikeSourcePoisson(rate=30.0))
    cells = sim.Population(4, sim.IF_curr_exp(**CELL))
    cells.record("spikes")
    prj = sim.Projection(src, cells, sim.AllToAllConnector(), _stdp())
    sim.run(500.0)
    learned = prj.get("weight", format="array")
    sim.reset()
    initial = prj.get("weight", format="array")
    sim.run(500.0)
    data = cells.get_data()
    assert len(data.segments) == 2
    trains = [[spike_array(t).tolist() for t in seg.spiketrains] for seg in data.segments]
    assert trains[0] == trains[1] and sum(map(len, trains[0])) > 0
    assert np.array_equal(prj.get("weight", format="array"), learned)
    assert not np.array_equal(initial, learned)


def test_changes_after_the_start_need_a_reset():
    sim.setup(timestep=1.0)
    cells = sim.Population(2, sim.IF_curr_exp(**CELL, i_offset=1.0))
    cells.record("spikes")
    sim.run(100.0)
    count = cells.get_spike_counts()[cells[0]]
    cells.set(i_offset=2.0)
    with pytest.raises(UnsupportedError, match=r"network changed after the simulation started \(parameters of"):
        sim.run(100.0)
    sim.reset()
    sim.run(100.0)
    assert cells.get_spike_counts()[cells[0]] > count


@pytest.mark.parametrize("case, message", [
    ("two_rules", "learn with different rules"),
    ("sparse", "absent synapses would learn too"),
    ("mixed", "static and plastic projections both connect"),
    ("inhibitory", "STDP on inhibitory synapses is not supported"),
])
def test_rules_the_one_global_rule_cannot_hold_are_refused(case, message):
    sim.setup(timestep=1.0)
    src = sim.Population(6, sim.SpikeSourcePoisson(rate=20.0), label="src")
    a = sim.Population(3, sim.IF_curr_exp(**CELL), label="a")
    b = sim.Population(3, sim.IF_curr_exp(**CELL), label="b")
    if case == "two_rules":
        sim.Projection(src, a, sim.AllToAllConnector(), _stdp())
        sim.Projection(src, b, sim.AllToAllConnector(), _stdp(A_plus=0.02))
    elif case == "sparse":
        sim.Projection(src, a, sim.FixedProbabilityConnector(0.5, rng=NumpyRNG(seed=1)), _stdp())
    elif case == "mixed":
        sim.Projection(src[0:3], a, sim.AllToAllConnector(), _stdp())
        sim.Projection(src[3:6], a, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5))
    else:
        syn = sim.STDPMechanism(timing_dependence=sim.SpikePairRule(),
                                weight_dependence=sim.AdditiveWeightDependence(w_min=0.0, w_max=1.0), weight=-0.5,
                                dendritic_delay_fraction=0)
        sim.Projection(src, a, sim.AllToAllConnector(), syn, receptor_type="inhibitory")
    with pytest.raises(UnsupportedError, match=message):
        sim.core_network()


# -- the device -----------------------------------------------------------------------------

class SmallDevice(GoldenDevice):
    """The golden model with a board's limits: 4 neurons, 2 inputs."""

    def capabilities(self):
        return Capabilities(kind="small", neurons=4, inputs=2, state_bits=16, weight_bits=8, trace_bits=8)


def test_a_network_that_does_not_fit_names_both_sizes():
    sim.setup(timestep=1.0, device=SmallDevice())
    sim.Population(3, sim.SpikeSourcePoisson(rate=5.0), label="noise")
    sim.Population(5, sim.IF_curr_exp(**CELL), label="exc")
    with pytest.raises(DeviceError, match=r"needs n = 5 neurons \(exc 5\), m = 3 inputs \(noise 3\); the device "
                                          r"has n = 4 neurons, m = 2 inputs"):
        sim.run(10.0)


def test_a_given_device_is_used_and_left_open():
    device = SmallDevice()
    sim.setup(timestep=1.0, device=device)
    sim.Population(2, sim.IF_curr_exp(**CELL, i_offset=1.0))
    sim.run(20.0)
    sim.end()
    assert device.network is not None and device.network.n == 2
    device.run(None, steps=1)          # still open: setup's caller owns it


def test_setup_defaults_and_queries():
    sim.setup(timestep=0.25)
    assert sim.get_time_step() == 0.25 and sim.get_min_delay() == 0.25 and sim.get_current_time() == 0.0
    sim.Population(1, sim.IF_curr_exp(**CELL))
    sim.run(1.0)
    sim.run_until(2.5)
    assert sim.get_current_time() == 2.5
    with pytest.raises(ValueError):
        sim.run_until(1.0)
    assert sim.list_standard_models() == ["IF_curr_exp", "IF_curr_delta", "SpikeSourcePoisson", "SpikeSourceArray"]
    text = "\n".join(sim.quantisation_report().lines())
    assert "population population" in text and "tau_mem" in text


def test_the_package_is_the_pynn_folder():
    from pathlib import Path
    assert Path(sim.__file__).resolve().parent == Path(__file__).resolve().parents[1] / "pynn"


def test_v_is_kept_for_the_recording_populations_only():
    sim.setup(timestep=1.0, rng_seed=3)
    _, cells = _driven()
    quiet = sim.Population(3, sim.IF_curr_exp(**CELL), label="quiet")
    cells[2:4].record("v")
    sim.run(50.0)
    engine = sim.simulator.state.engine
    assert [list(neurons) for _, neurons, _ in engine._v_chunks] == [[0, 1, 2, 3]]
    v = cells.get_data().segments[0].filter(name="v")[0]
    assert v.shape == (51, 2) and not np.isnan(v.magnitude).any()
    assert len(quiet.get_data().segments[0].analogsignals) == 0


def test_weights_that_round_to_zero_are_reported_and_logged(caplog):
    sim.setup(timestep=1.0)
    src = sim.Population(2, sim.SpikeSourceArray(), label="src")
    cells = sim.Population(1, sim.IF_curr_exp(**CELL), label="cells")
    sim.Projection(src, cells, sim.FromListConnector([(0, 0, 1.0, 1.0), (1, 0, 0.001, 1.0)]), sim.StaticSynapse())
    with caplog.at_level("WARNING", logger="neurofabric.pynn.mapping"):
        net = sim.core_network()
    assert list(net.weights[:2, 0]) == [127, 0]
    assert sim.quantisation_report()["populations"][0]["weights"]["rounded_to_zero"] == 1
    assert "population cells: 1 of its 2 incoming weights round to 0" in caplog.text


def test_projection_set_and_connection_attributes_reach_the_core():
    sim.setup(timestep=1.0)
    src = sim.Population(3, sim.SpikeSourceArray(), label="src")
    cells = sim.Population(2, sim.IF_curr_exp(**CELL), label="cells")
    prj = sim.Projection(src, cells, sim.AllToAllConnector(), sim.StaticSynapse(weight=0.5))
    prj.set(weight=np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    prj[5].weight = 1.2               # the connection from src[2] to cells[1]
    w = sim.core_network().weights[:3]
    per_na = sim.simulator.state.engine.compiled.w_per_unit[0]
    expected = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 1.2]])
    assert w[2, 1] == 127 and np.array_equal(w, np.round(expected * per_na))
    assert prj.get("weight", format="array").tolist() == expected.tolist()   # not loaded yet: as given


def test_repeated_static_pairs_are_summed_and_shared_back():
    sim.setup(timestep=1.0)
    src = sim.Population(1, sim.SpikeSourceArray(spike_times=[5.0]), label="src")
    cells = sim.Population(1, sim.IF_curr_exp(**CELL), label="cells")
    prj = sim.Projection(src, cells, sim.FromListConnector([(0, 0, 0.25, 1.0), (0, 0, 0.75, 1.0)]),
                         sim.StaticSynapse())
    sim.run(10.0)
    assert sim.core_network().weights[0, 0] == 127          # one synapse of 1.0 nA, the largest
    per_na = sim.simulator.state.engine.compiled.w_per_unit[0]
    shares = [w for _, _, w in prj.get("weight", format="list")]
    assert shares == pytest.approx([0.25 * 127 / per_na, 0.75 * 127 / per_na])
    assert prj.get("weight", format="array")[0, 0] == pytest.approx(127 / per_na)
