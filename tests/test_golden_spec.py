"""Every clause of spec/core-model.md, one behaviour per test, on the golden model."""

import numpy as np
import pytest

from neurofabric.host.arith import clamp, decay, sat, trace_update, usat
from neurofabric.host.golden import GoldenModel
from neurofabric.contract.model import Widths

from .netutil import make_net

ON, OFF = [1], [0]


# -- section 2: arithmetic ------------------------------------------------------

def test_sat_clips_both_ends():
    assert sat(40000, 16) == 32767 and sat(-40000, 16) == -32768 and sat(5, 16) == 5
    assert list(sat(np.array([128, -129, 3]), 8)) == [127, -128, 3]


def test_usat_clips_both_ends():
    assert usat(-3, 8) == 0 and usat(300, 8) == 255 and usat(7, 8) == 7


def test_clamp():
    assert clamp(5, -2, 3) == 3 and clamp(-5, -2, 3) == -2


def test_decay_rounds_toward_zero_from_either_sign():
    # trunc(x * (4096 - d), 12): 7 * 3584 / 4096 = 6.125 -> 6; -7 -> -6 (not -7).
    assert decay(7, 512) == 6 and decay(-7, 512) == -6
    # core model 1's x - (x >> 3) held 7 up forever; factors decay it to 0.
    x = 7
    for _ in range(40):
        x = decay(x, 512)
    assert x == 0
    assert decay(-1, 1) == 0 and decay(1, 1) == 0 and decay(4096, 1) == 4095


def test_decay_0_keeps_and_4096_clears():
    assert decay(1234, 0) == 1234 and decay(-1234, 0) == -1234
    assert decay(1234, 4096) == 0 and decay(-1234, 4096) == 0
    assert list(decay(np.array([100, 100, -100, -100]), np.array([4096, 0, 1024, 1024]))) == [0, 100, -75, -75]


def test_decay_snntorch_beta_0_9():
    # beta = 0.9 is d = round(4096 * 0.1) = 410: 1000 * 3686 / 4096 = 899.9 -> 899.
    assert decay(1000, 410) == 899 and decay(-1000, 410) == -899


def test_trace_update_modes():
    assert trace_update(200, 0, True, 100, 8, 0) == 255      # adds, saturates
    assert trace_update(200, 2048, True, 100, 8, 0) == 200   # decays, then adds
    assert trace_update(200, 2048, False, 100, 8, 0) == 100  # decays
    assert trace_update(200, 2048, True, 100, 8, 1) == 100   # nearest: set
    assert trace_update(201, 2048, False, 100, 8, 1) == 100  # decays, rounding toward zero


def test_xorshift32_matches_the_spec_formula():
    from neurofabric.host.arith import xorshift32
    g = 1
    g1 = g ^ ((g << 13) & 0xFFFFFFFF)
    g1 ^= g1 >> 17
    g1 ^= (g1 << 5) & 0xFFFFFFFF
    assert xorshift32(1) == g1 == 270369
    assert xorshift32(np.array([1], np.uint64))[0] == 270369


# -- section 5.2/5.3: synaptic input and current -----------------------------

def test_input_spike_drives_current_and_spikes_in_the_same_step():
    net = make_net(weights=[[150], [0]], threshold=100)
    g = GoldenModel(net)
    assert g.step(ON)[0] and g.i[0] == 150


def test_current_decays_by_decay_syn():
    net = make_net(weights=[[64], [0]], decay_syn=1024, threshold=10_000)
    g = GoldenModel(net)
    g.step(ON)
    assert g.i[0] == 64
    g.step(OFF)
    assert g.i[0] == 48  # 64 * 3072 / 4096
    g.step(OFF)
    assert g.i[0] == 36
    g.step(OFF)
    assert g.i[0] == 27


def test_negative_current_decays_to_zero():
    net = make_net(weights=[[-5], [0]], decay_syn=1024, threshold=10_000)
    g = GoldenModel(net)
    g.step(ON)
    seen = []
    for _ in range(8):
        g.step(OFF)
        seen.append(int(g.i[0]))
    assert seen[:3] == [-3, -2, -1] and seen[-1] == 0


def test_delta_synapse_decay_syn_4096_forgets_current():
    net = make_net(weights=[[64], [0]], decay_syn=4096, threshold=10_000)
    g = GoldenModel(net)
    g.step(ON)
    g.step(OFF)
    assert g.i[0] == 0


def test_current_saturates_both_ends():
    w = Widths(8, 8, 8)
    up = GoldenModel(make_net(m=3, weights=[[127], [127], [127], [0]], widths=w, decay_syn=0, threshold=127))
    up.step([1, 1, 1])
    assert up.i[0] == 127
    down = GoldenModel(make_net(m=3, weights=[[-128], [-128], [-128], [0]], widths=w, decay_syn=0, threshold=127))
    down.step([1, 1, 1])
    assert down.i[0] == -128


def test_accumulator_is_exact_before_saturation():
    # Partial sums 381 then 127: a saturating accumulator would give -127.
    w = Widths(8, 8, 8)
    weights = [[127], [127], [127], [-127], [-127], [0]]
    g = GoldenModel(make_net(m=5, weights=weights, widths=w, threshold=127))
    g.step([1, 1, 1, 1, 1])
    assert g.i[0] == 127


def test_weights_of_undelivered_sources_do_not_count():
    g = GoldenModel(make_net(m=2, weights=[[10], [1000 // 10], [0]], threshold=10_000))
    g.step([1, 0])
    assert g.i[0] == 10


# -- section 5.4: membrane, spike, reset, refractory --------------------------

def test_membrane_leak_and_bias():
    g = GoldenModel(make_net(decay_mem=2048, bias=8, threshold=10_000))
    g.step(OFF)
    assert g.v[0] == 8
    g.step(OFF)
    assert g.v[0] == 12  # 8 * 2048 / 4096 + 8
    g.step(OFF)
    assert g.v[0] == 14


def test_threshold_reached_with_equality_spikes():
    g = GoldenModel(make_net(bias=100, threshold=100))
    assert g.step(OFF)[0]


def test_just_below_threshold_does_not_spike():
    g = GoldenModel(make_net(bias=99, threshold=100, decay_mem=4096))
    assert not g.step(OFF)[0] and g.v[0] == 99


def test_reset_mode_0_sets_v_reset():
    g = GoldenModel(make_net(bias=130, threshold=100, v_reset=-7, reset_mode=0))
    assert g.step(OFF)[0] and g.v[0] == -7


def test_reset_mode_1_subtracts_threshold():
    g = GoldenModel(make_net(bias=130, threshold=100, reset_mode=1))
    assert g.step(OFF)[0] and g.v[0] == 30


def test_reset_mode_1_saturates_after_subtraction():
    w = Widths(8, 8, 8)
    g = GoldenModel(make_net(widths=w, bias=-128, threshold=-128, reset_mode=1, decay_mem=4096))
    g.v[0] = 0
    # u = sat(0 + 0 - 128) = -128 >= -128: spike, v = sat(-128 - (-128)) = 0
    assert g.step(OFF)[0] and g.v[0] == 0
    g2 = GoldenModel(make_net(widths=w, bias=127, threshold=-100, reset_mode=1, decay_mem=4096))
    # u = 127, v = sat(127 + 100) = 127
    assert g2.step(OFF)[0] and g2.v[0] == 127


def test_membrane_saturates_both_ends():
    w = Widths(8, 8, 8)
    # u = sat(0 + 120 + 100) = 127, which reaches a threshold of 127.
    up = GoldenModel(make_net(m=1, weights=[[120], [0]], widths=w, bias=100, threshold=127, decay_syn=0))
    assert up.step(ON)[0]
    # u = sat(-100 - 100) = -128 on the second step.
    down = GoldenModel(make_net(widths=w, bias=-100, threshold=127, decay_mem=0))
    down.step(OFF)
    down.step(OFF)
    assert down.v[0] == -128


def test_refractory_counts_down_without_integration():
    g = GoldenModel(make_net(bias=60, threshold=100, refractory=3, v_reset=5))
    spikes = [bool(g.step(OFF)[0]) for _ in range(2)]
    assert spikes == [False, True] and g.v[0] == 5 and g.r[0] == 3
    for expect_r in (2, 1, 0):
        assert not g.step(OFF)[0]
        assert g.v[0] == 5 and g.r[0] == expect_r  # v unchanged, bias not added
    g.step(OFF)
    assert g.v[0] == 65  # integrating again


def test_current_still_integrates_during_refractory():
    g = GoldenModel(make_net(weights=[[200], [0]], threshold=100, refractory=2, decay_syn=0))
    g.step(ON)
    assert g.s[0] and g.i[0] == 200
    g.step(ON)
    assert not g.s[0] and g.i[0] == 400


def test_neuron_spike_reaches_targets_one_step_later():
    # neuron 0 fires from bias at step 0; its synapse onto neuron 1 acts at step 1.
    weights = np.zeros((3, 2), np.int64)
    weights[1, 1] = 500
    g = GoldenModel(make_net(n=2, m=1, weights=weights, bias=[100, 0], threshold=[100, 400],
                             refractory=[5, 0]))
    s0 = g.step(OFF).copy()
    assert list(s0) == [True, False] and g.i[1] == 0
    s1 = g.step(OFF)
    assert g.i[1] == 500 and s1[1]


def test_self_connection_is_delayed_too():
    g = GoldenModel(make_net(m=0, weights=[[50]], bias=100, threshold=100, decay_syn=4096))
    g.step([])
    assert g.i[0] == 0
    g.step([])
    assert g.i[0] == 50


# -- section 5.5: learning ------------------------------------------------------

LEARN = dict(learn=1, a_plus=10, a_minus=10, stdp_shift=0, decay_pre=0, decay_post=0, inc_pre=3,
             inc_post=2, plastic_pre=1, plastic_post=1)


def test_learning_off_freezes_weights_and_traces():
    g = GoldenModel(make_net(weights=[[150], [0]], threshold=100, **{**LEARN, "learn": 0}))
    for _ in range(5):
        g.step(ON)
    assert g.weights[0, 0] == 150 and g.x.sum() == 0 and g.y.sum() == 0


def test_pre_trace_mode_0_adds_and_saturates():
    g = GoldenModel(make_net(**{**LEARN, "inc_pre": 200, "decay_pre": 0}, threshold=10_000))
    g.step(ON)
    assert g.x[0] == 200
    g.step(ON)
    assert g.x[0] == 255 and g.x[1] == 0


def test_trace_mode_1_sets_on_spike_and_decays():
    g = GoldenModel(make_net(**{**LEARN, "inc_pre": 200, "decay_pre": 2048, "trace_mode": 1}, threshold=10_000))
    g.step(ON)
    g.step(ON)
    assert g.x[0] == 200
    g.step(OFF)
    assert g.x[0] == 100


def test_potentiation_uses_pre_trace_updated_this_step():
    # Pre and post in the same step: x is already inc_pre when potentiating.
    g = GoldenModel(make_net(weights=[[150], [0]], threshold=100, **LEARN))
    g.step(ON)
    assert g.weights[0, 0] == 150 + 10 * 3


def test_same_step_pre_post_is_potentiated_not_depressed():
    g = GoldenModel(make_net(weights=[[150], [0]], threshold=100, **{**LEARN, "a_plus": 0}))
    g.step(ON)  # y was 0 before the step: depression by 0
    assert g.weights[0, 0] == 150


def test_depression_uses_post_trace_of_previous_step():
    g = GoldenModel(make_net(m=2, weights=[[150, ], [0], [0]], threshold=100,
                             **{**LEARN, "plastic_pre": [0, 1, 0]}))
    g.step([1, 0])  # post spikes: y = 2 afterwards
    assert g.y[0] == 2
    g.step([0, 1])  # input 1 delivered: w[1][0] -= 10 * 2
    assert g.weights[1, 0] == -20


def test_depression_before_potentiation_with_clamp_between():
    # w at w_max, depressed by 20 and potentiated by 30 in one step:
    # clamp(clamp(50 - 20) + 30) = 50; the other order would give 30.
    net = make_net(m=1, weights=[[50], [0]], threshold=0, **{**LEARN, "a_minus": 10, "a_plus": 10,
                                                            "inc_pre": 3, "inc_post": 2, "w_max": 50})
    g = GoldenModel(net)
    g.step(OFF)  # bias 0 >= threshold 0: post spikes, y = 2
    g.step(ON)  # depression 20, potentiation 10*3 = 30
    assert g.weights[0, 0] == 50


def test_visited_synapses_are_clamped_even_without_change():
    net = make_net(m=1, weights=[[100], [0]], threshold=10_000,
                   **{**LEARN, "w_min": -20, "w_max": 20, "a_minus": 0})
    g = GoldenModel(net)
    g.step(ON)  # delivered, depression by 0, clamp to 20
    assert g.weights[0, 0] == 20


def test_unvisited_synapses_keep_out_of_bounds_weights():
    net = make_net(m=2, weights=[[100], [100], [0]], threshold=10_000,
                   **{**LEARN, "w_min": -20, "w_max": 20})
    g = GoldenModel(net)
    g.step([1, 0])
    assert list(g.weights[:2, 0]) == [20, 100]


def test_plastic_masks_select_synapses():
    weights = np.full((4, 2), 10)
    net = make_net(n=2, m=2, weights=weights, threshold=0,
                   **{**LEARN, "plastic_pre": [1, 0, 0, 0], "plastic_post": [1, 0], "w_max": 127})
    g = GoldenModel(net)
    g.step([1, 1])  # both neurons spike (bias 0 >= 0); only synapse (0, 0) may learn
    changed = g.weights != 10
    assert changed[0, 0] and changed.sum() == 1


def test_stdp_shift_applies_to_product():
    net = make_net(weights=[[150], [0]], threshold=100, **{**LEARN, "a_plus": 7, "inc_pre": 5, "stdp_shift": 2})
    g = GoldenModel(net)
    g.step(ON)
    assert g.weights[0, 0] == 150 + (7 * 5 >> 2)


def test_post_trace_updates_after_weights():
    net = make_net(weights=[[150], [0]], threshold=100, **LEARN)
    g = GoldenModel(net)
    g.step(ON)
    assert g.y[0] == 2


# -- section 4: state -----------------------------------------------------------

def test_reset_clears_state_and_keeps_weights():
    net = make_net(weights=[[150], [0]], threshold=100, refractory=3, **LEARN)
    g = GoldenModel(net)
    g.step(ON)
    w = g.weights.copy()
    g.reset()
    for name in ("v", "i", "r", "y", "x"):
        assert not getattr(g, name).any(), name
    assert not g.s.any() and np.array_equal(g.weights, w) and not np.array_equal(w, net.weights)


def test_state_persists_between_runs():
    g = GoldenModel(make_net(bias=30, threshold=100))
    g.run(np.zeros((2, 1), bool))
    rec = g.run(np.zeros((2, 1), bool))
    assert list(rec.spikes[:, 0]) == [0, 1]  # 90, then 120 crosses: v carried over


def test_golden_model_does_not_modify_the_network():
    net = make_net(weights=[[150], [0]], threshold=100, **LEARN)
    before = net.weights.copy()
    GoldenModel(net).run(np.ones((5, 1), bool))
    assert np.array_equal(net.weights, before)


@pytest.mark.parametrize("record", [(), ("v",), ("v", "i")])
def test_run_records_probes_after_each_step(record):
    g = GoldenModel(make_net(bias=30, threshold=100, decay_mem=0))
    rec = g.run(np.zeros((4, 1), bool), record=record)
    if "v" in record:
        assert list(rec.v[:, 0]) == [30, 60, 90, 0]
    else:
        assert rec.v is None
    if "i" in record:
        assert list(rec.i[:, 0]) == [0, 0, 0, 0]


def test_run_pads_with_silence_and_snapshots():
    g = GoldenModel(make_net(weights=[[150], [0]], threshold=100, **LEARN))
    rec = g.run(np.ones((2, 1), bool), steps=6, snapshot_every=2)
    assert rec.spikes[:, 0].tolist() == [1, 1, 0, 0, 0, 0]
    assert rec.weight_snapshots.shape == (3, 2, 1) and rec.snapshot_steps.tolist() == [2, 4, 6]
    assert rec.weight_snapshots[-1, 0, 0] == rec.weights[0, 0]


# -- section 5.0: the stimulus generator ------------------------------------------

def _plain_generator(seed, rates, steps):
    g, out = seed, []
    for _ in range(steps):
        row = []
        for rate in rates:
            g ^= (g << 13) & 0xFFFFFFFF
            g ^= g >> 17
            g ^= (g << 5) & 0xFFFFFFFF
            row.append((g >> 16) < rate)
        out.append(row)
    return np.array(out, bool), g


def test_generator_spikes_follow_the_spec_sequence():
    rates = [0, 65535, 30000, 1, 12000]
    net = make_net(m=5, weights=[[0]] * 6)
    g = GoldenModel(net)
    rec = g.run(None, steps=60, rates=rates, seed=987654321, record=("inputs",))
    want, g_after = _plain_generator(987654321, rates, 60)
    assert np.array_equal(rec.inputs.astype(bool), want)
    assert g.g == g_after
    assert not want[:, 0].any() and want[:, 1].all()        # rate 0 never, 65535 almost always


def test_generated_and_host_inputs_count_once():
    net = make_net(m=1, weights=[[10], [0]], threshold=10_000)
    g = GoldenModel(net)
    rec = g.run(np.ones((3, 1), int), rates=[65535], record=("i", "inputs"))
    # a delta synapse: i would be 20 if an input both sources name counted twice
    assert rec.inputs[:, 0].tolist() == [1, 1, 1] and rec.i[:, 0].tolist() == [10, 10, 10]


def test_generator_advances_m_times_per_step_whatever_the_rates():
    net = make_net(m=3, weights=[[0]] * 4)
    a, b = GoldenModel(net), GoldenModel(net)
    a.run(None, steps=10, rates=[0, 0, 0], seed=5)
    b.run(None, steps=10, rates=[40000, 0, 65535], seed=5)
    assert a.g == b.g == _plain_generator(5, [0, 0, 0], 10)[1]


def test_changing_one_rate_changes_only_that_input():
    net = make_net(m=4, weights=[[0]] * 5)
    one = GoldenModel(net).run(None, steps=200, rates=[20000, 20000, 20000, 20000], seed=3, record=("inputs",))
    two = GoldenModel(net).run(None, steps=200, rates=[20000, 50000, 20000, 20000], seed=3, record=("inputs",))
    diff = one.inputs != two.inputs
    assert diff[:, 1].any() and not diff[:, [0, 2, 3]].any()


def test_reset_sets_g_to_the_seed_and_state_persists_between_runs():
    net = make_net(m=2, weights=[[0]] * 3)
    g = GoldenModel(net)
    g.run(None, steps=7, rates=[30000, 30000], seed=77)
    after7 = g.g
    g.run(None, steps=5, rates=[30000, 30000])       # no seed: g goes on
    assert g.g == _plain_generator(77, [0, 0], 12)[1] != after7
    g.reset()
    assert g.g == 77


def test_seed_out_of_range_is_refused():
    from neurofabric.host.errors import NetworkError
    g = GoldenModel(make_net(m=1, weights=[[0], [0]]))
    for bad in (0, 2 ** 32, -1):
        with pytest.raises(NetworkError, match="seed"):
            g.run(None, steps=1, seed=bad)
    with pytest.raises(NetworkError, match="rates"):
        g.run(None, steps=1, rates=[65536])


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 256, 4095, 4096, 4097, 10_000])
def test_generator_jumps_and_blocks_equal_the_plain_loop(count):
    from neurofabric.host.generator import advance, sequence
    g, states = 2463534242, []
    for _ in range(count):
        g ^= (g << 13) & 0xFFFFFFFF
        g ^= g >> 17
        g ^= (g << 5) & 0xFFFFFFFF
        states.append(g)
    block, last = sequence(2463534242, count)
    assert block.tolist() == states and last == g
    assert advance(2463534242, count) == g


def test_a_long_run_without_rates_advances_g_as_the_loop():
    net = make_net(m=70, weights=[[0]] * 71)
    model = GoldenModel(net)
    model.run(None, steps=9, seed=99)                 # 630 steps of the generator, all rates 0
    assert model.g == _plain_generator(99, [0] * 70, 9)[1]
