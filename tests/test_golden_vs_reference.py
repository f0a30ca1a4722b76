"""The vectorised golden model equals the plain per-synapse reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network
from neurofabric.contract.model import Widths

from .reference import ReferenceModel


def assert_same_run(net, stimulus, rates=None, seed=None):
    gold, ref = GoldenModel(net), ReferenceModel(net)
    if seed is not None:
        gold.set_seed(seed)
        ref.set_seed(seed)
    for t, inputs in enumerate(stimulus):
        s_gold = gold.step(inputs, rates)
        s_ref = ref.step(inputs, rates)
        assert gold.g == ref.gen, f"step {t}: generator state"
        for name, got, want in (("spikes", s_gold, s_ref), ("v", gold.v, ref.v), ("i", gold.i, ref.i),
                                ("r", gold.r, ref.r), ("y", gold.y, ref.y), ("x", gold.x, ref.x),
                                ("inputs", gold.u, ref.u)):
            got, want = np.asarray(got, np.int64), np.asarray(want, np.int64)
            if not np.array_equal(got, want):
                idx = int(np.flatnonzero(got != want)[0])
                pytest.fail(f"step {t}: {name}[{idx}] golden {got[idx]} reference {want[idx]}")
        if not np.array_equal(gold.weights, np.array(ref.w)):
            k, j = np.argwhere(gold.weights != np.array(ref.w))[0]
            pytest.fail(f"step {t}: w[{k}][{j}] golden {gold.weights[k, j]} reference {ref.w[k][j]}")


@pytest.mark.parametrize("seed", range(40))
def test_random_networks_match_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    n, m = int(rng.integers(1, 51)), int(rng.integers(0, 51))
    net = random_network(n, m, seed=seed, learn=seed % 2)
    stimulus = rng.random((100, m)) < rng.uniform(0.02, 0.5)
    assert_same_run(net, stimulus)


@pytest.mark.parametrize("seed", range(30))
def test_random_networks_with_generated_inputs_match_reference(seed):
    rng = np.random.default_rng(3000 + seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    net = random_network(n, m, seed=seed, learn=seed % 2)
    stimulus = rng.random((80, m)) < rng.uniform(0.0, 0.2)
    rates = np.where(rng.random(m) < 0.3, 0, rng.integers(0, 65536, m))
    assert_same_run(net, stimulus, rates=rates, seed=int(rng.integers(1, 2 ** 32)))


def test_run_equals_steps_with_generated_inputs():
    # GoldenModel.run computes the generator's inputs many steps at a time.
    net = random_network(30, 20, seed=5, learn=1)
    rng = np.random.default_rng(9)
    stim = rng.random((300, 20)) < 0.05
    rates = rng.integers(0, 30000, 20)
    run = GoldenModel(net).run(stim, rates=rates, seed=4242, record=("v", "inputs"))
    ref = ReferenceModel(net)
    ref.set_seed(4242)
    for t in range(300):
        assert list(run.spikes[t].astype(bool)) == ref.step(stim[t], rates), t
        assert list(run.inputs[t].astype(bool)) == ref.u and list(run.v[t]) == ref.v, t
    assert np.array_equal(run.weights, np.array(ref.w))


@pytest.mark.parametrize("seed", range(20))
def test_random_networks_with_weights_inside_their_bounds_match_reference(seed):
    # Every plastic weight in [w_min, w_max]: the golden model may then skip
    # synapses whose change is 0; the reference never skips.
    rng = np.random.default_rng(2000 + seed)
    n, m = int(rng.integers(1, 40)), int(rng.integers(0, 40))
    net = random_network(n, m, seed=seed, learn=1, w_min=-128, w_max=127,
                         stdp_shift=int(rng.integers(6, 12)))
    stimulus = rng.random((100, m)) < rng.uniform(0.02, 0.4)
    assert_same_run(net, stimulus)


@st.composite
def networks_and_stimuli(draw):
    S = draw(st.integers(4, 32))
    W = draw(st.integers(2, 16))
    T = draw(st.integers(1, 16))
    n = draw(st.integers(1, 12))
    m = draw(st.integers(0, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    overrides = {}
    for name, values in (("trace_mode", (0, 1)), ("learn", (0, 1))):
        overrides[name] = draw(st.sampled_from(values))
    net = random_network(n, m, seed=seed, widths=Widths(S, W, T), **overrides)
    steps = draw(st.integers(1, 40))
    rng = np.random.default_rng(seed)
    stimulus = rng.random((steps, m)) < draw(st.floats(0.0, 1.0))
    return net, stimulus


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_and_stimuli())
def test_property_any_widths_match_reference(case):
    net, stimulus = case
    assert_same_run(net, stimulus)
