"""NIR import and export, and the physical-units layer with its quantisation report."""

import nir
import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import cli
from neurofabric.host.errors import NetworkError
from neurofabric.host.nir_io import export_nir, import_nir
from neurofabric.host.units import PhysicalNetwork, QuantisationReport, decay_for, realised_tau

from .nir_float import simulate

DT = 1e-3


def cuba_graph(rng, m=20, n=16, pow2=True, recurrent=True, bias=False):
    """Input -> Affine/Linear -> CubaLIF, with a recurrent Linear edge."""
    taus = (2 ** rng.integers(1, 6, n) * DT) if pow2 else rng.uniform(2, 40, n) * DT
    tsyn = (2 ** rng.integers(0, 4, n) * DT) if pow2 else rng.uniform(1, 10, n) * DT
    w_in = rng.normal(0.6, 0.4, (n, m))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([m])}),
        "fc": nir.Affine(weight=w_in, bias=rng.uniform(0, 0.05, n)) if bias else nir.Linear(weight=w_in),
        "lif": nir.CubaLIF(tau_syn=tsyn, tau_mem=taus, r=np.full(n, 2.0), v_leak=np.zeros(n),
                           v_threshold=np.full(n, 1.0), v_reset=np.zeros(n), w_in=np.ones(n)),
        "out": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    if recurrent:
        nodes["rec"] = nir.Linear(weight=rng.normal(0, 0.3, (n, n)))
        edges += [("lif", "rec"), ("rec", "lif")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def run_golden(net, stim):
    return nf.GoldenModel(net).run(stim).spikes


def spike_count_correlation(graph, net, stim):
    ref = simulate(graph, DT, {"in": stim}, len(stim))["lif"].sum(axis=0)
    got = run_golden(net, stim).sum(axis=0)
    return float(np.corrcoef(ref, got)[0, 1]), ref, got


@pytest.mark.parametrize("seed", range(6))
def test_cubalif_graph_with_recurrent_edge_matches_float_semantics(seed, tmp_path):
    rng = np.random.default_rng(seed)
    graph = cuba_graph(rng)
    nir.write(str(tmp_path / "g.nir"), graph)           # written with the nir package
    net, report = import_nir(tmp_path / "g.nir", DT)
    assert (net.m, net.n) == (20, 16)
    stim = rng.random((600, 20)) < 0.08
    corr, ref, got = spike_count_correlation(graph, net, stim)
    assert ref.sum() > 50 and corr > 0.9, (corr, ref, got)
    assert all(p["relative_error"] == 0 for pop in report["populations"] for p in pop["parameters"]
               if p["name"].startswith("tau"))


def test_affine_bias_and_lif_and_if_nodes(tmp_path):
    rng = np.random.default_rng(7)
    m, n1, n2 = 10, 8, 6
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([m])}),
        "a": nir.Affine(weight=rng.uniform(0, 1, (n1, m)), bias=np.full(n1, 0.02)),
        "lif": nir.LIF(tau=np.full(n1, 8 * DT), r=np.ones(n1), v_leak=np.zeros(n1),
                       v_threshold=np.full(n1, 0.5), v_reset=np.zeros(n1)),
        "b": nir.Linear(weight=rng.uniform(0.2, 1.0, (n2, n1))),
        "if": nir.IF(r=np.full(n2, 100.0), v_threshold=np.full(n2, 1.0), v_reset=np.zeros(n2)),
        "out": nir.Output(output_type={"output": np.array([n2])}),
    }, edges=[("in", "a"), ("a", "lif"), ("lif", "b"), ("b", "if"), ("if", "out")])
    with pytest.raises(NetworkError, match=r"population lif: bias\[0\] = 0.0025 is realised as"):
        import_nir(graph, DT)  # 0.02 * dt / tau per step is 2.5 integer steps: rounded by 20 %
    net, report = import_nir(graph, DT, tolerance=0.25)
    assert (net.m, net.n) == (m, n1 + n2)
    assert net.decay_mem[:n1].tolist() == [512] * n1 and net.decay_mem[n1:].tolist() == [0] * n2
    assert net.decay_syn.tolist() == [4096] * (n1 + n2)
    assert (net.bias[:n1] > 0).all() and (net.bias[n1:] == 0).all()
    assert (net.weights[:m, n1:] == 0).all() and (net.weights[m + n1:, :] == 0).all()
    stim = rng.random((500, m)) < 0.1
    ref = simulate(graph, DT, {"in": stim}, 500)
    got = run_golden(net, stim)
    for name, cols in (("lif", slice(0, n1)), ("if", slice(n1, n1 + n2))):
        r, g = ref[name].sum(axis=0), got[:, cols].sum(axis=0)
        assert r.sum() > 10 and np.corrcoef(r, g)[0, 1] > 0.9, (name, r, g)


def test_time_constants_off_the_power_of_two_grid_are_realised_within_half_a_factor():
    rng = np.random.default_rng(3)
    graph = cuba_graph(rng, pow2=False)        # 2..40 and 1..10 steps
    with pytest.raises(NetworkError, match=r"population lif: tau_mem\[\d+\] = .* beyond the tolerance of 0%"):
        import_nir(graph, DT, tolerance=0.0)
    net, report = import_nir(graph, DT)          # within 10%: far within
    lif = graph.nodes["lif"]
    assert net.decay_mem.tolist() == [round(4096 * DT / t) for t in lif.tau_mem]
    assert net.decay_syn.tolist() == [min(round(4096 * DT / t), 4096) for t in lif.tau_syn]
    pop = report["populations"][0]
    for name, d in (("tau_mem", net.decay_mem), ("tau_syn", net.decay_syn)):
        p = next(p for p in pop["parameters"] if p["name"] == name)
        assert p["realised"] == [4096 * DT / d.max(), 4096 * DT / d.min()]
        # d = round(4096 * dt / tau) realises tau within 0.5 / d of itself.
        assert 0 < abs(p["relative_error"]) <= 0.5 / d.min()


def test_time_constants_beyond_the_longest_factor_are_refused_naming_it():
    p = PhysicalNetwork(dt=DT)
    p.add_population("slow", 2, model="lif", tau_mem=[3.0, 10.0], v_threshold=1.0)
    # 3000 steps: d = 1 realises 4096 (+37%); 10000 steps: d rounds to 0, no decay at all.
    with pytest.raises(NetworkError, match=r"tau_mem\[0\] = 3 is realised as 4.096 \(\+36.5%\), beyond the tolerance "
                                           r"of 10%; the core's time constants are 4096 \* dt / d for a whole d in "
                                           r"1..4096 .*the longest short of no decay, inf, is 4096 steps"):
        p.compile()
    with pytest.raises(NetworkError, match=r"tau_mem\[1\] = 10 is realised as inf \(\+infx\)"):
        p.compile(tolerance=1000.0)      # at no tolerance: no decay is asked for with inf
    p.populations["slow"].tau_mem = [3.0, np.inf]
    net, report = p.compile(tolerance=0.4)
    assert net.decay_mem.tolist() == [1, 0]


def test_realised_values_in_the_report_explain_the_core_behaviour():
    # Off the power-of-two grid the core runs the time constants the report
    # calls realised: the float semantics with those values track the core.
    rng = np.random.default_rng(11)
    graph = cuba_graph(rng, pow2=False)
    net, report = import_nir(graph, DT, tolerance=0.45)
    lif = graph.nodes["lif"]
    realised = nir.CubaLIF(tau_syn=4096 * DT / net.decay_syn, tau_mem=4096 * DT / net.decay_mem,
                           r=lif.r, v_leak=lif.v_leak, v_threshold=lif.v_threshold, v_reset=lif.v_reset,
                           w_in=lif.w_in)
    as_realised = nir.NIRGraph(nodes=dict(graph.nodes, lif=realised), edges=graph.edges)
    stim = rng.random((600, 20)) < 0.08
    corr, ref, got = spike_count_correlation(as_realised, net, stim)
    assert ref.sum() > 50 and corr > 0.9, (corr, ref, got)
    taus = next(p for p in report["populations"][0]["parameters"] if p["name"] == "tau_mem")
    assert taus["realised"] == [realised_tau(net.decay_mem.max(), DT), realised_tau(net.decay_mem.min(), DT)]


def test_unsupported_node_names_the_node():
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([4])}),
        "gain": nir.Scale(scale=np.ones(4)),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }, edges=[("in", "gain"), ("gain", "out")], type_check=False)
    with pytest.raises(NetworkError, match="NIR node 'gain' of type Scale is not supported"):
        import_nir(graph, DT)


def test_export_then_import_round_trips_structure_and_weights(tmp_path):
    net = nf.random_network(12, 7, seed=5, learn=1)
    graph = export_nir(net, dt=DT)
    nir.write(str(tmp_path / "e.nir"), graph)
    back_graph = nir.read(str(tmp_path / "e.nir"))            # the nir package reads what we write
    assert set(back_graph.nodes) == {"input", "input_weights", "neurons", "recurrent_weights", "output"}
    assert np.array_equal(np.asarray(back_graph.nodes["input_weights"].weight), net.weights[:7].T)
    assert np.array_equal(np.asarray(back_graph.nodes["recurrent_weights"].weight), net.weights[7:].T)
    back, report = import_nir(back_graph, DT, tolerance=0.5)
    assert (back.m, back.n) == (net.m, net.n)
    assert np.array_equal(back.decay_mem, net.decay_mem) and np.array_equal(back.decay_syn, net.decay_syn)
    scale = report["populations"][0]["scale"]
    assert np.all(np.abs(back.weights / scale - net.weights) <= 0.5 / scale + 1e-9)
    assert np.array_equal(back.weights != 0, net.weights != 0)


def test_exported_network_runs_like_the_original():
    net = nf.random_network(10, 6, seed=9, learn=0, refractory=np.zeros(10, int), reset_mode=np.zeros(10, int))
    back, _ = import_nir(export_nir(net, dt=DT), DT, tolerance=0.5)
    stim = np.random.default_rng(1).random((300, 6)) < 0.2
    a, b = run_golden(net, stim).sum(axis=0), run_golden(back, stim).sum(axis=0)
    assert a.sum() > 0 and np.corrcoef(a, b)[0, 1] > 0.9


def test_export_carries_weights_learned_on_a_device(tmp_path):
    net = nf.random_network(8, 5, seed=4, learn=1)
    with nf.open_device("golden") as dev:
        dev.load(net)
        rec = dev.run(np.random.default_rng(0).random((200, 5)) < 0.3)
    assert not np.array_equal(rec.weights, net.weights)
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_recording(rec, tmp_path / "r.npz")
    result = CliRunner().invoke(cli, ["export-nir", str(tmp_path / "n.npz"), "--weights", str(tmp_path / "r.npz"),
                                      "-o", str(tmp_path / "g.nir"), "--dt", "1ms"])
    assert result.exit_code == 0, result.output
    graph = nir.read(str(tmp_path / "g.nir"))
    assert np.array_equal(np.asarray(graph.nodes["input_weights"].weight), rec.weights[:5].T)


def test_cli_import_writes_network_and_info_shows_the_report(tmp_path):
    graph = cuba_graph(np.random.default_rng(2))
    nir.write(str(tmp_path / "g.nir"), graph)
    runner = CliRunner()
    result = runner.invoke(cli, ["import-nir", str(tmp_path / "g.nir"), "--dt", "1ms", "-o", str(tmp_path / "n.npz")])
    assert result.exit_code == 0, result.output
    assert "quantisation report (dt = 1 ms" in result.output
    info = runner.invoke(cli, ["info", str(tmp_path / "n.npz")])
    assert info.exit_code == 0 and "population lif (16 cubalif neurons)" in info.output
    assert "tau_mem" in info.output and "rounded to zero" in info.output


def test_cli_import_errors_are_one_line(tmp_path):
    (tmp_path / "bad.nir").write_bytes(b"junk")
    result = CliRunner().invoke(cli, ["import-nir", str(tmp_path / "bad.nir"), "--dt", "1ms", "-o",
                                      str(tmp_path / "n.npz")])
    assert result.exit_code == 3 and "cannot be read" in result.stderr
    result = CliRunner().invoke(cli, ["import-nir", str(tmp_path / "bad.nir"), "--dt", "soon", "-o",
                                      str(tmp_path / "n.npz")])
    assert result.exit_code == 2 and "soon" in result.output


# -- the physical-units layer -------------------------------------------------

def test_decay_for_is_forward_euler_rounded_and_realised_tau_inverts_it():
    assert decay_for(8e-3, 1e-3) == 512 and decay_for(10e-3, 1e-3) == 410 and decay_for(3e-3, 1e-3) == 1365
    assert decay_for(1e-3, 1e-3) == 4096 and decay_for(0.5e-3, 1e-3) == 4096      # one step or less: cleared
    assert decay_for(None, 1e-3) == 0 and decay_for(float("inf"), 1e-3) == 0      # no decay
    assert decay_for(8.192, 1e-3) == 1 and decay_for(8.193, 1e-3) == 0           # 8192 steps: the last to decay
    assert realised_tau(410, 1e-3) == pytest.approx(9.990e-3, rel=1e-4) and realised_tau(0, 1e-3) == float("inf")
    for dt in (1e-3, 1e-4, 5e-4, 0.0123):
        assert all(decay_for(realised_tau(d, dt), dt) == d for d in range(4097))
    with pytest.raises(NetworkError, match="time constant -0.001 s is not positive"):
        decay_for(-1e-3, 1e-3)


def test_compile_scales_a_population_together_and_reports():
    p = PhysicalNetwork(dt=DT)
    p.add_inputs(4, "x")
    p.add_population("a", 3, tau_mem=16e-3, tau_syn=4e-3, v_threshold=1.0, v_reset=-0.25, v_leak=0.1,
                     refractory=2e-3)
    w = np.array([[0.5, 0.0, 0.01], [0.2, 0.1, 0.0], [0.0, 0.3, 0.0001], [0.1, 0.1, 0.1]])
    p.connect("x", "a", w)
    net, report = p.compile()
    pop = report["populations"][0]
    s = pop["scale"]
    assert net.decay_mem.tolist() == [256] * 3 and net.decay_syn.tolist() == [1024] * 3
    assert net.refractory.tolist() == [2] * 3 and net.reset_mode.tolist() == [0] * 3
    assert net.threshold.tolist() == [int(np.floor(s)) + 1] * 3
    assert net.v_reset.tolist() == [round(-0.25 * s)] * 3
    assert net.bias.tolist() == [round(0.1 / 16 * s)] * 3
    assert int(np.abs(net.weights).max()) == 127            # the largest weight uses the range
    assert pop["weights"]["rounded_to_zero"] == 1            # 0.0001 vanished, and it says so
    assert pop["weights"]["count"] == 9
    assert QuantisationReport.from_json(str(net.extras["quantisation_report"])) == report


def test_unrepresentable_parameters_are_errors_naming_them():
    p = PhysicalNetwork(dt=DT)
    p.add_inputs(1, "x")
    p.add_population("slow", 1, tau_mem=300e-3, tau_syn=1e-3, v_threshold=1.0, refractory=0.5)
    p.connect("x", "slow", [[1.0]])
    with pytest.raises(NetworkError, match=r"population slow: refractory 0.5 s is 500 steps; at most 255"):
        p.compile(tolerance=1.0)
    q = PhysicalNetwork(dt=DT)
    q.add_population("odd", 1, tau_mem=0.6e-3, tau_syn=1e-3, v_threshold=1.0)
    with pytest.raises(NetworkError, match=r"tau_mem = 0.0006 is realised as 0.001 \(\+66.7%\).*4096 \* dt / d"):
        q.compile()     # shorter than a step: d = 4096, the most a decay takes


def test_thresholds_are_reported_exact_and_never_refuse_a_network():
    # floor(s * thr) + 1 with >= fires exactly when the model's v > thr on the integer grid:
    # a threshold between grid points costs nothing, even at a tolerance of 0.
    p = PhysicalNetwork(dt=DT)
    p.add_inputs(2, "x")
    p.add_population("a", 3, r=1 / DT, v_threshold=[0.5, 1.0, 1.7], model="if", scale=3.0)
    p.connect("x", "a", np.full((2, 3), 1 / 3))     # one integer step of v per input spike
    net, report = p.compile(tolerance=0.0)
    assert net.threshold.tolist() == [2, 4, 6]        # floor(1.5) + 1, floor(3) + 1, floor(5.1) + 1
    thr = next(q for q in report["populations"][0]["parameters"] if q["name"] == "v_threshold")
    assert thr["relative_error"] == 0 and thr["realised"] == thr["requested"] == [0.5, 1.7]
    assert thr["integer"] == [2, 6]
    assert any("v_threshold  requested 0.5..1.7, realised 0.5..1.7 (exact), integer 2..6" in line
               for line in report.lines())
    # Neuron 0 fires on the second spike (model: 2/3 > 0.5; core: v_int 2 >= 2), not on the first (1/3;
    # v_int 1); neuron 1 not on the third (1.0 is not above 1.0; v_int 3 < 4): as the model.
    golden = nf.GoldenModel(net).run(np.eye(2, dtype=bool)[[0, 0, 0]])
    assert golden.spikes[:, 0].tolist() == [0, 1, 0] and golden.spikes[:, 1].tolist() == [0, 0, 0]


def test_a_membrane_left_alone_decays_to_zero_at_most_tau_steps_below_the_model():
    # decay(x, d) rounds toward zero: each step takes up to one integer step more than the model's
    # (dt / tau) * v, so the core sits below the model by less than tau / dt steps (the sum of a geometric
    # series of ones), and reaches 0, as the model does (core model 1's floor held it at 7 forever).
    p = PhysicalNetwork(dt=DT)
    p.add_inputs(1, "x")
    p.add_population("a", 1, tau_mem=8e-3, r=8.0, v_threshold=100.0, model="lif", scale=127.0)
    p.connect("x", "a", [[1.0]])                 # v_int = 127 after the spike
    net, _ = p.compile(tolerance=0.0)
    assert net.decay_mem.tolist() == [512] and net.weights[0, 0] == 127
    stim = np.zeros((80, 1), bool)
    stim[0] = True
    v = nf.GoldenModel(net).run(stim, record=("v",)).v[:, 0]
    model = 127.0 * (7 / 8) ** np.arange(80)
    gap = model - v
    assert (gap >= 0).all() and gap.max() < 8 and gap.max() > 3      # 3.9 steps at most here
    assert v[-1] == 0 and (np.diff(v) <= 0).all()
    assert v[30:].tolist() == [0] * 50         # the model: 2.3 at step 30, 0.3 at step 45
