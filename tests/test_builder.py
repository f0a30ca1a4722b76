"""The network-building API lays out sources and neurons as the spec numbers them."""

import numpy as np
import pytest

import neurofabric as nf
from neurofabric.host.builder import decay_for_steps
from neurofabric.host.errors import NetworkError


def two_layer():
    b = nf.NetworkBuilder()
    a = b.add_inputs(3, "a")
    c = b.add_inputs(2, "c")
    exc = b.add_neurons(4, "exc", threshold=100, decay_mem=256)
    inh = b.add_neurons(2, "inh", threshold=[50, 60], refractory=2)
    return b, a, c, exc, inh


def test_sources_are_inputs_then_neurons_in_order():
    b, a, c, exc, inh = two_layer()
    b.connect(c, inh, weights=7)
    b.connect(inh, exc, weights=-3)
    net = b.build()
    assert (net.m, net.n) == (5, 6)
    assert (net.weights[3:5, 4:6] == 7).all()          # inputs c are sources 3..4
    assert (net.weights[5 + 4:5 + 6, 0:4] == -3).all()  # neurons inh are sources m+4..m+5
    assert int((net.weights != 0).sum()) == 4 + 8
    assert net.threshold.tolist() == [100] * 4 + [50, 60]
    assert net.decay_mem.tolist() == [256] * 4 + [0] * 2          # no leak by default
    assert net.decay_syn.tolist() == [4096] * 6                     # delta synapses by default
    assert net.refractory.tolist() == [0] * 4 + [2, 2]


def test_time_constants_in_steps_become_the_decay_factors_of_forward_euler():
    b = nf.NetworkBuilder()
    b.add_neurons(6, "a", threshold=10, tau_mem_steps=[1, 0.5, 8, 10, 3, np.inf], tau_syn_steps=2)
    b.set_learning(tau_pre_steps=16, decay_post=7)
    net = b.build()
    # round(4096 / tau): one step or less clears the value, inf keeps it; snnTorch's beta = 0.9 is tau = 10.
    assert net.decay_mem.tolist() == [4096, 4096, 512, 410, 1365, 0]
    assert net.decay_syn.tolist() == [2048] * 6
    assert (net.decay_pre, net.decay_post) == (256, 7)
    assert decay_for_steps(8192).tolist() == 1 and decay_for_steps(8193).tolist() == 0     # halves round up
    # The factor is what the golden model runs: a value of 1000 loses 1/8 of itself per step at tau = 8.
    b = nf.NetworkBuilder()
    x = b.add_inputs(1, "x")
    y = b.add_neurons(1, "y", threshold=30000, tau_mem_steps=8)
    b.connect(x, y, weights=100)
    rec = nf.GoldenModel(b.build()).run(np.eye(1, 4, dtype=bool).T, record=("v",))
    assert rec.v[:, 0].tolist() == [100, 87, 76, 66]      # trunc(v * 3584 / 4096), toward zero


@pytest.mark.parametrize("call, old, new", [
    (lambda b: b.add_neurons(2, "n", threshold=5, k_mem=3), "k_mem", "decay_mem"),
    (lambda b: b.add_neurons(2, "n", threshold=5, k_syn=0), "k_syn", "decay_syn"),
    (lambda b: b.set_learning(k_pre=31), "k_pre", "decay_pre"),
    (lambda b: b.set_learning(a_plus=1, k_post=2), "k_post", "decay_post"),
])
def test_core_model_1_shifts_are_refused_naming_the_argument_that_replaced_them(call, old, new):
    tau = f"tau_{new[6:]}_steps"
    message = (rf"{old} is a decay shift of core model 1, .* give {new} \(0\.\.4096, .*\) or {tau} "
               rf"\(a time constant in steps: {new} = round\(4096 / {tau}\)\)")
    with pytest.raises(NetworkError, match=message):
        call(nf.NetworkBuilder())


@pytest.mark.parametrize("call, message", [
    (lambda b: b.add_neurons(2, "n", threshold=5, tau_mem_steps=4, decay_mem=3),
     "group 'n': both tau_mem_steps and decay_mem given"),
    (lambda b: b.add_neurons(2, "n", threshold=5, tau_syn_steps=[2, 0]), r"tau_syn_steps: time constant 0 steps"),
    (lambda b: b.add_neurons(2, "n", threshold=5, tau_syn_steps=np.nan), "time constant nan steps is not positive"),
    (lambda b: b.add_neurons(2, "n", threshold=5, decay_mem=4097), r"decay_mem \(group 'n'\) = 4097 is out of range"),
    (lambda b: b.set_learning(tau_post_steps=-1), "set_learning: tau_post_steps: time constant -1 steps"),
])
def test_bad_decays_are_refused_naming_the_argument(call, message):
    with pytest.raises(NetworkError, match=message):
        call(nf.NetworkBuilder())


def test_dense_matrix_and_one_to_one_and_sparse():
    b, a, c, exc, inh = two_layer()
    mat = np.arange(12).reshape(3, 4)
    b.connect(a, exc, weights=mat)
    b.connect(inh, inh, weights=[5, 6], rule="one_to_one")
    b.connect(c, exc, rule="sparse", pairs=[(0, 3, -9), (1, 0, 4)])
    net = b.build()
    assert np.array_equal(net.weights[0:3, 0:4], mat)
    assert net.weights[5 + 4, 4] == 5 and net.weights[5 + 5, 5] == 6 and net.weights[5 + 4, 5] == 0
    assert net.weights[3, 3] == -9 and net.weights[4, 0] == 4


def test_random_rule_is_reproducible_and_has_the_density():
    def build(seed):
        b = nf.NetworkBuilder()
        i = b.add_inputs(200)
        n = b.add_neurons(100, threshold=10)
        b.connect(i, n, rule="random", p=0.25, weights=(1, 5), seed=seed)
        return b.build().weights
    w1, w2, w3 = build(1), build(1), build(2)
    assert np.array_equal(w1, w2) and not np.array_equal(w1, w3)
    density = (w1[:200] != 0).mean()
    assert 0.23 < density < 0.27 and w1.min() >= 0 and w1.max() == 5


def test_self_connections_can_be_dropped():
    b = nf.NetworkBuilder()
    n = b.add_neurons(3, threshold=10)
    b.connect(n, n, weights=-2, self_connections=False)
    w = b.build().weights
    assert np.diag(w).tolist() == [0, 0, 0] and (w.sum(axis=0) == -4).all()


def test_plastic_projection_sets_both_masks():
    b, a, c, exc, inh = two_layer()
    b.connect(a, exc, weights=1, plastic=True)
    b.set_learning(a_plus=3, a_minus=2, w_min=0, w_max=50)
    net = b.build()
    assert net.plastic_pre.tolist() == [1, 1, 1] + [0] * 8
    assert net.plastic_post.tolist() == [1] * 4 + [0, 0]
    assert net.learn == 1 and net.a_plus == 3 and net.w_max == 50


def test_masks_that_would_make_unasked_synapses_plastic_are_refused():
    b, a, c, exc, inh = two_layer()
    b.connect(a, exc, weights=1, plastic=True)
    b.connect(c, inh, weights=1, plastic=True)
    with pytest.raises(NetworkError, match="synapses a -> inh would be plastic without being asked"):
        b.build()


def test_overlapping_projections_are_refused():
    b, a, c, exc, inh = two_layer()
    b.connect(a, exc, weights=1)
    b.connect(a, exc, rule="sparse", pairs=[(2, 1, 5)])
    with pytest.raises(NetworkError, match=r"a\[2\] -> exc\[1\] is also set by a->exc"):
        b.build()


def test_out_of_range_values_name_the_group():
    b, a, c, exc, inh = two_layer()
    b.neuron_groups[1].params["threshold"][1] = 99999
    with pytest.raises(NetworkError, match=r"threshold\[5\] \(group 'inh', neuron 1\) = 99999"):
        b.build()


@pytest.mark.parametrize("call, message", [
    (lambda b, g: b.add_neurons(0, threshold=1), "number of neurons = 0"),
    (lambda b, g: b.add_neurons(2, threshold=1, tau=3), "unknown neuron parameter tau"),
    (lambda b, g: b.add_neurons(2, threshold=[1, 2, 3]), r"shape \(3,\) is neither a scalar nor \(2,\)"),
    (lambda b, g: b.add_inputs(2, "a"), "group name 'a' is already used"),
    (lambda b, g: b.connect(g["a"], g["exc"], weights=np.ones((2, 2), int)), r"weights shape \(2, 2\)"),
    (lambda b, g: b.connect(g["a"], g["exc"], weights=0.5), "weights must be integers"),
    (lambda b, g: b.connect(g["a"], g["exc"], rule="one_to_one", weights=1), "equal size"),
    (lambda b, g: b.connect(g["a"], g["exc"], rule="random", weights=1), "probability p"),
    (lambda b, g: b.connect(g["a"], g["exc"], rule="sparse", pairs=[(3, 0, 1)]), "outside the groups"),
    (lambda b, g: b.connect(g["a"], g["exc"], rule="ring", weights=1), "unknown rule 'ring'"),
    (lambda b, g: b.connect(g["exc"], g["a"], weights=1), "post must be a neuron group"),
    (lambda b, g: b.set_learning(a_pluss=3), "unknown learning parameter a_pluss"),
])
def test_bad_calls_are_refused_with_a_message(call, message):
    b, a, c, exc, inh = two_layer()
    with pytest.raises(NetworkError, match=message):
        call(b, {"a": a, "exc": exc})


def test_builder_network_saves_and_runs(tmp_path):
    b, a, c, exc, inh = two_layer()
    b.connect(a, exc, weights=60)
    net = b.build()
    nf.save_network(net, tmp_path / "n.npz")
    back = nf.load_network(tmp_path / "n.npz")
    assert list(back.extras["group_names"]) == ["a", "c", "exc", "inh"]
    with nf.open_device("golden") as dev:
        dev.load(back)
        rec = dev.run(np.ones((3, 5), bool))
    assert rec.spikes[:, :4].any() and not rec.spikes[:, 4:].any()


def readme_network(sparse, **learning):
    """The README's example network, its plastic projection sparse (as it once was) or all-to-all."""
    b = nf.NetworkBuilder()
    retina = b.add_inputs(64, "retina")
    exc = b.add_neurons(10, "exc", threshold=300, tau_mem_steps=16, decay_syn=1024, refractory=3)
    if sparse:
        b.connect(retina, exc, rule="random", p=0.2, weights=(10, 60), seed=1, plastic=True)
    else:
        b.connect(retina, exc, weights=np.random.default_rng(1).integers(0, 13, size=(64, 10)), plastic=True)
    b.connect(exc, exc, weights=-40, self_connections=False)
    rule = dict(a_plus=32, a_minus=24, stdp_shift=6, tau_pre_steps=8, tau_post_steps=8, inc_pre=128,
                inc_post=128, w_min=0, w_max=127)
    b.set_learning(**{**rule, **learning})
    return b


def test_a_sparse_plastic_projection_warns_with_the_count_of_absent_synapses_that_then_grow():
    b = readme_network(sparse=True)
    with pytest.warns(nf.SparsePlasticityWarning) as caught:
        net = b.build()
    assert len(caught) == 1
    absent = net.weights[:64] == 0
    count = int(absent.sum())
    assert count > 400
    assert str(caught[0].message).startswith(f"{count} absent synapses of plastic projections can learn "
                                             f"(retina->exc: {count} of 640)")
    assert "\n" not in str(caught[0].message)
    assert caught[0].filename == __file__    # pointed at the caller of build()
    rec = nf.GoldenModel(net).run(np.random.default_rng(0).random((1000, 64)) < 0.05)
    assert (rec.weights[:64][absent] > 0).sum() > 0     # what the warning says happens


@pytest.mark.parametrize("learning", [
    dict(a_plus=0),                                   # depression only, clamped at w_min = 0
    dict(learn=0),                                    # nothing learns
    dict(a_plus=1, stdp_shift=15),                    # (a_plus * x) >> stdp_shift is always 0
])
def test_learning_that_cannot_move_a_zero_weight_keeps_a_sparse_projection_sparse_without_a_warning(learning):
    net = readme_network(sparse=True, **learning).build()
    absent = net.weights[:64] == 0
    rec = nf.GoldenModel(net).run(np.random.default_rng(0).random((1000, 64)) < 0.05)
    assert rec.spikes.sum() > 0
    assert (rec.weights[:64][absent] == 0).all()
    if learning.get("a_plus") == 0:
        assert (rec.weights[:64] < net.weights[:64]).any()   # depression did act


@pytest.mark.parametrize("learning, why", [
    (dict(a_plus=0, a_minus=24, w_min=-10), "depression below 0"),
    (dict(a_plus=0, a_minus=0, w_min=5), "a bound that excludes 0"),
    (dict(a_plus=0, a_minus=0, w_min=-10, w_max=-1), "a bound that excludes 0"),
])
def test_a_zero_weight_that_can_move_any_way_warns(learning, why):
    b = readme_network(sparse=True, **learning)
    with pytest.warns(nf.SparsePlasticityWarning, match="absent synapses of plastic projections can learn"):
        net = b.build()
    absent = net.weights[:64] == 0
    rec = nf.GoldenModel(net).run(np.random.default_rng(0).random((1000, 64)) < 0.05)
    assert (rec.weights[:64][absent] != 0).any(), why


def test_an_all_to_all_plastic_projection_is_exact_and_does_not_warn():
    net = readme_network(sparse=False).build()     # the suite turns any warning into an error
    assert net.plastic_mask()[:64].all() and not net.plastic_mask()[64:].any()
    b = nf.NetworkBuilder()
    x = b.add_inputs(3, "x")
    y = b.add_neurons(3, "y", threshold=10)
    b.connect(x, y, rule="one_to_one", weights=5, plastic=True)
    b.set_learning(a_plus=10, inc_pre=100, stdp_shift=2, w_min=0, w_max=50)
    with pytest.warns(nf.SparsePlasticityWarning, match=r"^6 absent synapses .*\(x->y: 6 of 9\)"):
        b.build()
