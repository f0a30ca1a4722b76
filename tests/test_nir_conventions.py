"""NIR graphs as their authors wrote them: snnTorch's conventions, scalars, dt, and the round trip.

The graphs are built with the `nir` package only, the way snnTorch's
`export_to_nir` writes them (no torch here): dt = 0.1 ms recorded nowhere,
`tau = dt / (1 - beta)`, `r = tau_mem / dt`, `w_in = tau_syn / dt` (so that one
spike adds its weight), `v_leak = 0`, reset to zero (snnTorch writes reset by
subtraction as reset to zero, and LIF without `v_reset`). The time constants
are `2**k * dt`, which core model 1 realises exactly.
"""

import logging
import subprocess
import sys

import nir
import numpy as np
import pytest

import neurofabric as nf
from neurofabric.contract.model import GLOBAL_FIELDS, NEURON_FIELDS, SOURCE_FIELDS, WIDTH_FIELDS, Widths
from neurofabric.host.errors import NetworkError
from neurofabric.host.nir_io import export_nir, graph_dt, import_nir, write_nir

from .nir_float import simulate

DT = 1e-4   # what snnTorch's exporter assumes
#: Wide enough that rounding (and the floor of the core's shift decays, which
#: holds a current below 2**k_syn steps) is far below the effects tested.
WIDE = Widths(28, 16, 8)


def decay(k):
    """snnTorch's beta (or alpha) whose time constant dt / (1 - beta) is 2**k steps."""
    return 1.0 - 2.0 ** -k


def leaky(n, k_mem, threshold=1.0):
    """snnTorch's `Leaky` as its exporter writes it (no v_reset, snnTorch #384)."""
    tau = DT / (1 - decay(k_mem))
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n),
                   v_threshold=np.full(n, threshold))


def synaptic(n, k_syn, k_mem, threshold=1.0):
    """snnTorch's `Synaptic` as its exporter writes it: w_in = tau_syn / dt, r = tau_mem / dt."""
    tau_syn, tau_mem = DT / (1 - decay(k_syn)), DT / (1 - decay(k_mem))
    return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, tau_mem / DT),
                       v_leak=np.zeros(n), v_threshold=np.full(n, threshold), w_in=np.full(n, tau_syn / DT))


def io(m, n):
    return {"in": nir.Input(input_type={"input": np.array([m])}),
            "out": nir.Output(output_type={"output": np.array([n])})}


def probe_graph(k_syn, k_mem=5):
    return nir.NIRGraph(nodes={**io(1, 1), "fc": nir.Linear(weight=np.array([[1.0]])),
                               "syn": synaptic(1, k_syn, k_mem, threshold=10.0)},
                        edges=[("in", "fc"), ("fc", "syn"), ("syn", "out")])


@pytest.mark.parametrize("k_syn", [1, 2, 3])
def test_one_spike_into_a_cubalif_adds_its_weight_and_does_not_overshoot(k_syn):
    graph = probe_graph(k_syn)
    net, report = import_nir(graph, DT, widths=WIDE)
    scale = report["populations"][0]["scale"]
    stim = np.zeros((80, 1), bool)
    stim[0] = True
    rec = nf.GoldenModel(net).run(stim, record=("v", "i"))
    _, v_ref = simulate(graph, DT, {"in": stim}, len(stim), probe="syn")
    # snnTorch: syn = alpha * syn + x, mem = beta * mem + syn; the first step holds the weight, 1.0.
    assert rec.i[0, 0] / scale == 1.0
    assert v_ref[0, 0] == pytest.approx(1.0)
    # The membrane's peak: tau_syn / dt (2, 4, 8) times too high when w_in was taken per step.
    peak, peak_ref = rec.v[:, 0].max() / scale, v_ref[:, 0].max()
    assert peak == pytest.approx(peak_ref, rel=0.005), (peak, peak_ref)
    assert np.abs(rec.v[:, 0] / scale - v_ref[:, 0]).max() < 0.005 * peak_ref
    assert all(p["relative_error"] == 0 for p in report["populations"][0]["parameters"])


def snntorch_network(rng, m=12, h=16, c=10, o=6):
    """Input -> Affine -> Leaky -> Linear -> RSynaptic (recurrent Linear) -> Linear -> IF."""
    nodes = {
        **io(m, o),
        "fc1": nir.Affine(weight=rng.uniform(0.0, 0.5, (h, m)), bias=rng.uniform(0.0, 0.02, h)),
        "lif1": leaky(h, 3, threshold=1.0),
        "fc2": nir.Linear(weight=rng.uniform(-0.1, 0.6, (c, h))),
        "syn": synaptic(c, 1, 4, threshold=1.0),
        "rec": nir.Linear(weight=rng.normal(0.0, 0.15, (c, c))),
        "fc3": nir.Linear(weight=rng.uniform(0.1, 0.6, (o, c))),
        "if": nir.IF(r=np.full(o, 1.0 / DT), v_threshold=np.full(o, 1.0), v_reset=np.zeros(o)),
    }
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "syn"), ("syn", "rec"), ("rec", "syn"),
             ("syn", "fc3"), ("fc3", "if"), ("if", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("seed", range(4))
def test_a_network_in_snntorch_conventions_runs_like_its_float_nir_simulation(seed, tmp_path):
    rng = np.random.default_rng(seed)
    graph = snntorch_network(rng)
    nir.write(str(tmp_path / "g.nir"), graph)
    net, report = import_nir(tmp_path / "g.nir", DT, widths=WIDE)
    for pop in report["populations"]:
        for p in pop["parameters"]:
            if p["name"] != "bias":
                assert p["relative_error"] == 0, (pop["name"], p)
    stim = rng.random((800, 12)) < 0.1
    ref = simulate(graph, DT, {"in": stim}, len(stim))
    got = nf.GoldenModel(net).run(stim).spikes
    start = 0
    for pop in report["populations"]:      # in the file's order of nodes
        name, size = pop["name"], pop["size"]
        r, g = ref[name].sum(axis=0), got[:, start:start + size].sum(axis=0)
        start += size
        assert r.sum() > 40 and abs(int(g.sum()) - int(r.sum())) <= 0.05 * r.sum(), (name, r, g)
        assert np.corrcoef(r, g)[0, 1] > 0.95, (name, r, g)


def test_where_the_integer_grid_holds_the_model_exactly_the_spikes_are_identical():
    # Weights on a grid of 1/128 (the largest maps to 127 exactly), no memory (tau = dt: beta = alpha = 0)
    # and integrate-and-fire: every float sum is exact, and so is the threshold mapping.
    rng = np.random.default_rng(5)
    m, n = 10, 8
    w1 = rng.integers(0, 128, (n, m)) / 128.0
    w1[0, 0] = 127 / 128
    w2 = rng.integers(0, 128, (n, n)) / 128.0
    w2[0, 0] = 127 / 128
    graph = nir.NIRGraph(nodes={
        **io(m, n), "fc": nir.Linear(weight=w1), "syn": synaptic(n, 0, 0, threshold=0.75),
        "fc2": nir.Linear(weight=w2),
        "if": nir.IF(r=np.full(n, 1.0 / DT), v_threshold=np.full(n, 1.5), v_reset=np.zeros(n)),
    }, edges=[("in", "fc"), ("fc", "syn"), ("syn", "fc2"), ("fc2", "if"), ("if", "out")])
    net, _ = import_nir(graph, DT)
    stim = rng.random((400, m)) < 0.2
    ref = simulate(graph, DT, {"in": stim}, len(stim))
    got = nf.GoldenModel(net).run(stim).spikes
    assert ref["syn"].sum() > 50 and ref["if"].sum() > 20
    assert np.array_equal(got[:, :n], ref["syn"]) and np.array_equal(got[:, n:], ref["if"])


def test_the_old_per_step_w_in_would_overshoot_by_tau_syn_over_dt():
    # The same probe with w_in = 1 (NIR's meaning: a spike's charge is dt * w_in) is 1/2**k_syn of it.
    for k_syn in (1, 2, 3):
        graph = probe_graph(k_syn)
        graph.nodes["syn"].w_in = np.ones(1)
        net, report = import_nir(graph, DT, widths=WIDE)
        stim = np.zeros((40, 1), bool)
        stim[0] = True
        rec = nf.GoldenModel(net).run(stim, record=("i",))
        scale = report["populations"][0]["scale"]
        _, v_ref = simulate(graph, DT, {"in": stim}, 40, probe="syn")
        assert v_ref[0, 0] == pytest.approx(2.0 ** -k_syn)
        assert rec.i[0, 0] / scale == pytest.approx(2.0 ** -k_syn, rel=0.01)


# -- scalars and broadcasting -------------------------------------------------

def scalar_params(kind, n):
    """The same neurons with full arrays and with 0-d parameters."""
    full = {
        "LIF": dict(tau=np.full(n, 8 * DT), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0),
                    v_reset=np.zeros(n)),
        "CubaLIF": dict(tau_syn=np.full(n, 2 * DT), tau_mem=np.full(n, 8 * DT), r=np.full(n, 8.0),
                        v_leak=np.zeros(n), v_threshold=np.full(n, 1.0), v_reset=np.zeros(n),
                        w_in=np.full(n, 2.0)),
        "IF": dict(r=np.full(n, 1.0 / DT), v_threshold=np.full(n, 2.0), v_reset=np.zeros(n)),
    }[kind]
    return full, {key: np.asarray(value[0]) for key, value in full.items()}


def same_network(a, b):
    fields = ["weights", *NEURON_FIELDS, *SOURCE_FIELDS]
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields) and all(
        getattr(a, f) == getattr(b, f) for f in GLOBAL_FIELDS) and a.widths == b.widths


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "IF"])
@pytest.mark.parametrize("via_file", [False, True])
def test_scalar_parameters_broadcast_over_the_neurons_the_weights_feed(kind, via_file, tmp_path):
    m, n = 6, 5
    rng = np.random.default_rng(1)
    weight = rng.uniform(0, 1, (n, m))
    full, scalar = scalar_params(kind, n)

    def graph(params, bias):
        node = getattr(nir, kind)(**params)
        fc = nir.Affine(weight=weight, bias=bias)
        # nir's type check refuses scalars (NIR allows them): without it, as nir.read(type_check=False) does.
        return nir.NIRGraph(nodes={**io(m, n), "fc": fc, "pop": node},
                            edges=[("in", "fc"), ("fc", "pop"), ("pop", "out")], type_check=False)

    expected, _ = import_nir(graph(full, np.full(n, 0.25)), DT, tolerance=0.3)
    g = graph(scalar, np.asarray(0.25))
    if via_file:
        nir.write(str(tmp_path / "s.nir"), g, compression=None)   # h5py cannot compress a 0-d dataset
        g = tmp_path / "s.nir"
    got, _ = import_nir(g, DT, tolerance=0.3)
    assert got.n == n and same_network(got, expected)


def test_scalars_mixed_with_arrays_and_on_a_direct_edge_from_an_input():
    n = 4
    lif = nir.LIF(tau=np.asarray(8 * DT), r=np.asarray(8.0), v_leak=np.asarray(0.0), v_threshold=np.asarray(1.0),
                  v_reset=np.asarray(0.0))
    lif.v_threshold = np.array([1.0, 2.0, 3.0, 4.0])      # NIR broadcasts; nir's constructor would not
    graph = nir.NIRGraph(nodes={**io(7, n), "fc": nir.Linear(weight=np.ones((n, 7))), "pop": lif},
                         edges=[("in", "fc"), ("fc", "pop"), ("pop", "out")], type_check=False)
    net, _ = import_nir(graph, DT)
    assert net.n == n and len(set(net.threshold.tolist())) == 4 and (np.diff(net.threshold) > 0).all()
    direct = nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array([5])}),
                                 "pop": nir.IF(r=np.asarray(1.0 / DT), v_threshold=np.asarray(0.5),
                                               v_reset=np.asarray(0.0))},
                          edges=[("in", "pop")], type_check=False)
    net, _ = import_nir(direct, DT)
    assert (net.m, net.n) == (5, 5) and np.array_equal(net.weights[:5] > 0, np.eye(5, dtype=bool))


def test_parameters_that_broadcast_to_no_common_size_are_refused():
    lif = nir.LIF(tau=np.full(3, 8 * DT), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    lif.r = np.ones(2)
    graph = nir.NIRGraph(nodes={**io(2, 3), "fc": nir.Linear(weight=np.ones((3, 2))), "pop": lif},
                         edges=[("in", "fc"), ("fc", "pop"), ("pop", "out")], type_check=False)
    with pytest.raises(NetworkError, match="NIR node 'pop': r has 2 values for 3 neurons"):
        import_nir(graph, DT)


# -- dt ------------------------------------------------------------------------

def test_dt_is_read_from_the_graph_and_a_different_one_wins_with_a_warning(caplog):
    net = nf.random_network(6, 4, seed=3)
    graph = export_nir(net, dt=5e-4)
    assert graph_dt(graph) == 5e-4
    back, report = import_nir(graph)
    assert report["dt"] == 5e-4 and float(back.extras["dt"]) == 5e-4 and same_network(back, net)
    with caplog.at_level(logging.WARNING, logger="neurofabric"):
        import_nir(graph, 1e-3, tolerance=1.5)    # every time constant half as many steps
    assert "NIR graph records dt = 0.0005 s (metadata neurofabric.dt); importing at dt = 0.001 s" in caplog.text
    bare = snntorch_network(np.random.default_rng(0))
    with pytest.raises(NetworkError, match=r"records no time step .*snnTorch's exporter assumes dt = 0.1 ms"):
        import_nir(bare)


def beta_graph(k_mem, n=3):
    return nir.NIRGraph(nodes={**io(2, n), "fc": nir.Linear(weight=np.ones((n, 2))), "lif1": leaky(n, k_mem)},
                        edges=[("in", "fc"), ("fc", "lif1"), ("lif1", "out")])


def test_a_dt_that_leaves_the_membrane_no_memory_is_warned_about_with_the_figures(caplog):
    graph = beta_graph(3)     # beta 0.875 at snnTorch's 0.1 ms: tau 0.8 ms
    with caplog.at_level(logging.WARNING, logger="neurofabric"):
        import_nir(graph, DT)
    assert "lif1" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="neurofabric"):
        net, _ = import_nir(graph, 1e-3, tolerance=0.5)
    assert net.k_mem.tolist() == [0, 0, 0]
    assert ("population lif1: tau_mem = 0.0008 s is 0.8 steps of dt = 0.001 s (3 of 3 neurons under 2 steps); "
            "3 neurons keep no membrane potential from one step to the next (k_mem = 0)") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neurofabric"):
        import_nir(beta_graph(3), 6e-5, tolerance=0.5)   # 13 steps: fine
        import_nir(beta_graph(4), 1e-4 * 12, tolerance=0.3)   # 1.33 steps: short
    assert "tau_mem = 0.0016 s is 1.33 steps of dt = 0.0012 s" in caplog.text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "neurofabric", *args], capture_output=True, text=True, timeout=120)


def test_cli_import_reads_dt_from_the_graph_and_shows_the_dt_warnings(tmp_path):
    net = nf.random_network(6, 4, seed=8, learn=1, widths=Widths(12, 6, 6))
    write_nir(export_nir(net, dt=2e-4), tmp_path / "own.nir")
    proc = run_cli("import-nir", str(tmp_path / "own.nir"), "-o", str(tmp_path / "own.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "quantisation report (dt = 0.2 ms" in proc.stdout
    assert same_network(nf.load_network(tmp_path / "own.npz"), net)
    nir.write(str(tmp_path / "snn.nir"), beta_graph(3))
    proc = run_cli("import-nir", str(tmp_path / "snn.nir"), "-o", str(tmp_path / "snn.npz"))
    assert proc.returncode == 3 and "snnTorch's exporter assumes dt = 0.1 ms" in proc.stderr
    proc = run_cli("import-nir", str(tmp_path / "snn.nir"), "--dt", "1ms", "--tolerance", "0.5",
                   "-o", str(tmp_path / "snn.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "population lif1: tau_mem = 0.0008 s is 0.8 steps of dt = 0.001 s" in proc.stderr
    assert "(k_mem = 0)" in proc.stderr


# -- the round trip ------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_export_then_import_gives_back_the_same_integer_network(seed, tmp_path):
    rng = np.random.default_rng(seed)
    m = 0 if seed == 0 else int(rng.integers(1, 12))
    widths = Widths(16, 8, 8) if seed % 2 else Widths(int(rng.integers(10, 20)), int(rng.integers(4, 9)),
                                                     int(rng.integers(4, 10)))
    net = nf.random_network(int(rng.integers(1, 14)), m, seed=seed, learn=1, widths=widths)
    assert net.refractory.any() or net.n < 4
    write_nir(export_nir(net, dt=1e-3), tmp_path / "e.nir")
    read = nir.read(str(tmp_path / "e.nir"), type_check=m > 0)        # the nir package reads it
    assert set(read.nodes) >= {"neurons", "recurrent_weights", "output"}
    back, report = import_nir(tmp_path / "e.nir", tolerance=0.0)
    for field in ["weights", *NEURON_FIELDS, *SOURCE_FIELDS]:
        assert np.array_equal(getattr(back, field), getattr(net, field)), field
    for field in (*GLOBAL_FIELDS, *WIDTH_FIELDS):
        assert getattr(back, field) == getattr(net, field), field
    assert all(p["relative_error"] == 0 for pop in report["populations"] for p in pop["parameters"])
    stim = rng.random((100, m)) < 0.3
    a, b = nf.GoldenModel(net).run(stim), nf.GoldenModel(back).run(stim)
    assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.weights, b.weights)


def test_a_plain_export_is_what_snntorchs_importer_reads():
    # snnTorch's import_from_nir asserts v_leak == 0 and r == tau_mem / dt, and reads an
    # Affine bias: biases of neurons whose current lasts one step go there.
    net = nf.random_network(6, 5, seed=2, learn=0, k_syn=np.zeros(6, int), bias=np.arange(1, 7),
                            refractory=np.zeros(6, int), reset_mode=np.zeros(6, int))
    graph = export_nir(net, dt=DT)
    lif = graph.nodes["neurons"]
    assert np.all(lif.v_leak == 0) and np.allclose(lif.r, lif.tau_mem / DT) and np.allclose(lif.w_in, lif.tau_syn / DT)
    assert type(graph.nodes["input_weights"]).__name__ == "Affine"
    assert np.array_equal(graph.nodes["input_weights"].bias, net.bias)
    assert type(graph.nodes["recurrent_weights"]).__name__ == "Linear"
    # A neuron whose current decays over steps keeps its bias on the membrane, as v_leak.
    slow = nf.random_network(3, 2, seed=2, k_syn=np.array([0, 2, 31]), bias=np.array([4, 5, -6]))
    lif = export_nir(slow, dt=DT).nodes["neurons"]
    assert lif.v_leak.tolist() == [0.0, 5.0 * 2.0 ** slow.k_mem[1], -6.0 * 2.0 ** slow.k_mem[2]]


@pytest.mark.parametrize("where, key, value, message", [
    ("neurons", "refractory_steps", np.arange(3), r"NIR node 'neurons': metadata neurofabric.refractory_steps has "
                                                  r"shape \(3,\), expected \(4,\)"),
    ("neurons", "reset_mode", np.full(4, 2), r"reset_mode\[0\] = 2 is out of range: allowed 0\.\.1"),
    ("neurons", "plastic_post", np.full(4, 0.5), r"metadata neurofabric.plastic_post\[0\] = 0.5 is not a whole number"),
    ("input", "plastic_pre", np.ones(9), r"NIR node 'input': metadata neurofabric.plastic_pre has shape \(9,\)"),
    ("graph", "learn", 3, r"learn = 3 is out of range: allowed 0\.\.1"),
    ("graph", "dt", -1.0, r"NIR graph metadata neurofabric.dt = -1 s is out of range"),
    ("neurons", "scale", "big", r"population neurons: scale = 'big' is not a number"),
])
def test_broken_neurofabric_metadata_is_refused_naming_it(where, key, value, message):
    graph = export_nir(nf.random_network(4, 3, seed=1), dt=1e-3)
    target = graph.metadata if where == "graph" else graph.nodes[where].metadata
    target["neurofabric"][key] = value
    with pytest.raises(NetworkError, match=message):
        import_nir(graph)
