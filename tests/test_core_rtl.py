"""The whole core, as generated Verilog under Verilator (cocotb), against the golden model.

One Verilator build per configuration (cached in build/rtl/ across runs, keyed
by the configuration and the hdl sources); each configuration's random cases
run in one simulator process. See sim/core_cocotb.py for what a case checks.
"""

import json

import numpy as np
import pytest

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.golden import GoldenModel
from neurofabric.sim.core_cocotb import case_rates, case_stimulus, random_case_network
from neurofabric.sim.verilator import core_model, run_cocotb

pytestmark = pytest.mark.rtl

#: name -> (config, number of random cases, case template)
CONFIGS = {
    # Two words per row: the accumulate/depress pipeline wraps columns every cycle.
    "tiny": (CoreConfig(n=4, m=4, S=16, W=8, T=8, lanes=2), 60, dict(steps=25, rate=0.4)),
    # One lane: no lane select logic at all; the passes one after the other (overlap off).
    "lanes1": (CoreConfig(n=3, m=2, S=16, W=8, T=8, lanes=1), 30, dict(steps=25, rate=0.5)),
    # One word per row (n == lanes), narrow widths: saturation everywhere.
    "one_word": (CoreConfig(n=8, m=5, S=12, W=5, T=4, lanes=8), 40, dict(steps=25, rate=0.4)),
    # Odd widths, networks smaller than the core (unused neurons and inputs; an odd number of
    # used neurons leaves the second neuron update of the last pair idle).
    "small": (CoreConfig(n=16, m=12, S=10, W=6, T=5, lanes=4, neurons_per_cycle=2), 50, dict(steps=20, rate=0.3)),
    # n, m = 64 with 4 lanes.
    "n64": (CoreConfig(n=64, m=64, S=16, W=8, T=8, lanes=4), 20, dict(steps=10, rate=0.15)),
    # Wide words (the ECP5 boards' 16 to 128 lanes): a word column holds more neurons than
    # a step delivers rows, so the overlapped neuron pass waits for the accumulation; two
    # neurons per cycle, as on the ULX3S-85F.
    "wide": (CoreConfig(n=64, m=32, S=16, W=8, T=8, lanes=16, neurons_per_cycle=2), 24, dict(steps=12, rate=0.15)),
    # The short pipeline (the iCE40's; every other configuration has the long one):
    # the STDP write-back in the cycle the word arrives, no neuron input registers.
    "short": (CoreConfig(n=12, m=6, S=12, W=6, T=5, lanes=4), 40, dict(steps=20, rate=0.4)),
    # Weights in 4 banks by word column (the ULX3S boards' potentiation): 8 word columns
    # make two rounds of up to 4 columns a sweep; smaller networks leave rounds short.
    "banked": (CoreConfig(n=32, m=16, S=16, W=8, T=8, lanes=4, neurons_per_cycle=2, pot_banks=4), 30,
               dict(steps=20, rate=0.3)),
    # Banked weights with the short pipeline and the passes one after the other: one round.
    "banked_short": (CoreConfig(n=16, m=8, S=12, W=6, T=5, lanes=4, pot_banks=4), 30, dict(steps=20, rate=0.4)),
}

#: Configurations built with `Core(pipeline="short")`.
SHORT = {"short", "banked_short"}
#: Configurations built with `Core(overlap="off")` (the short pipeline's default is off too; every
#: other configuration runs the neuron and pre trace passes during the accumulation).
SEQUENTIAL = {"lanes1"}


def make_plan(name, config, count, template):
    """Random cases: learning on and off, both trace modes, saturation-heavy and
    smaller-than-core networks in turn; the stimulus generator with random rates
    (two cases in three) and random seeds (one in two), host inputs alongside (fewer
    where the generator runs), the input set U asked for in most cases."""
    rng = np.random.default_rng(sum(map(ord, name)))
    plan = []
    for index in range(count):
        case = dict(template, name=f"{name}-{index}", seed=int(rng.integers(1 << 30)),
                    learn=index % 2, trace_mode=(index // 2) % 2, saturate=index % 4 == 3,
                    plastic_all=index % 3 == 0, wide_bounds=index % 3 != 2)
        if index % 5 == 4 or name == "small" and index % 2:
            case["n"] = int(rng.integers(1, config.n + 1))
            case["m"] = int(rng.integers(1, config.m + 1))
        if index % 7 == 6:
            case["rate"] = 0.9
        if index % 3 != 2:
            case["gen_rate"] = float(rng.choice([0.05, 0.2, 0.5]))
            case["rate"] = case.get("rate", 0.3) / 3
        if index % 2:
            case["gen_seed"] = int(rng.integers(1, 1 << 32))
        case["report_inputs"] = index % 4 != 1
        plan.append(case)
    return plan


def test_plans_exercise_the_core():
    """The random cases make neurons spike and learning change weights, the generator makes
    input spikes, some of them on inputs the host sent too, and networks with fewer inputs
    than the core run it (checked on the golden model)."""
    for name, (config, count, template) in CONFIGS.items():
        spikes = changed = saturated = generated = both = smaller_gen = 0
        for case in make_plan(name, config, count, template):
            net = random_case_network(config, case)
            golden = GoldenModel(net)
            if case.get("gen_seed") is not None:
                golden.set_seed(case["gen_seed"])
            rates = case_rates(net, case)
            before = golden.weights.copy()
            smax = (1 << (config.S - 1)) - 1
            for inputs in case_stimulus(net, case):
                spikes += int(golden.step(inputs, rates).sum())
                generated += int((golden.u & ~inputs).sum())
                both += int((inputs & (rates > 0)).sum())
                smaller_gen += int(net.m < config.m and rates.any())
                saturated += int((np.abs(golden.i) >= smax).sum() + (np.abs(golden.v) >= smax).sum())
            changed += int((golden.weights != before).sum())
        print(name, spikes, changed, saturated, generated, both, smaller_gen)
        assert spikes > 10 * count, (name, spikes)
        assert changed > count, (name, changed)
        assert saturated > count, (name, saturated)
        assert generated > count * config.m, (name, generated)
        assert both > count, (name, both)
        assert smaller_gen > 10, (name, smaller_gen)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_core_matches_golden(name, tmp_path):
    config, count, template = CONFIGS[name]
    model = core_model(config, pipeline="short" if name in SHORT else "long",
                       overlap="off" if name in SEQUENTIAL else "auto")
    plan = make_plan(name, config, count, template)
    assert len(plan) == count
    run_plan(model, plan, tmp_path)


def both_visits(net, stimulus):
    """How many synapses get depression (5.2) and potentiation (5.3) in the same step:
    a weight word written back by the accumulation pass and read again by the
    potentiation sweep of that step (golden model)."""
    golden = GoldenModel(net)
    count = 0
    for inputs in stimulus:
        delivered = np.concatenate([np.asarray(inputs, bool), golden.s])
        spiked = golden.step(inputs)
        pre = delivered & (net.plastic_pre != 0)
        post = spiked & (net.plastic_post != 0)
        count += int(pre.sum() * post.sum()) if net.learn else 0
    return count


def test_depression_then_potentiation_of_a_word_in_one_step(tmp_path):
    """Read after write across passes, at the smallest distance the schedule allows:
    one or two neurons and inputs (one word column, short neuron and trace passes), a
    synapse depressed in the accumulation pass (its word written back three cycles
    after its read with the long pipeline) and potentiated by the sweep in the same
    step, every step."""
    config, _count, _template = CONFIGS["tiny"]
    plan = [dict(name=f"raw-{index}", seed=9000 + index, learn=1, trace_mode=index % 2, plastic_all=True,
                 wide_bounds=True, n=1 + index % 2, m=1 + (index // 2) % 2, steps=25, rate=0.9,
                 overrides=dict(threshold=np.full(1 + index % 2, -(1 << 15)).tolist(),
                                refractory=[0] * (1 + index % 2)))
            for index in range(8)]
    for case in plan:
        net = random_case_network(config, case)
        assert both_visits(net, case_stimulus(net, case)) >= 20, case["name"]
    run_plan(core_model(config), plan, tmp_path)


def test_core_options_follow_the_platform():
    """`pipeline` and `column_memories` "auto": short and block RAM on the iCE40, long and
    distributed (LUT) RAM for the per-column memories on the ECP5, long and block RAM elsewhere."""
    from amaranth.back import rtlil
    from amaranth.hdl import Fragment
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from neurofabric.hdl.core import Core

    config = CoreConfig(n=8, m=8, lanes=2)
    core = Core(config)
    assert core._pipeline(ICEBreakerPlatform()) == "short"
    assert core._pipeline(ULX3S_85F_Platform()) == "long"
    assert core._pipeline(None) == "long"
    assert core._column_memories(ULX3S_85F_Platform()) == "distributed"
    assert core._column_memories(ICEBreakerPlatform()) == "block"
    assert core._column_memories(None) == "block"
    Fragment.get(core, ULX3S_85F_Platform())   # elaborates
    text = rtlil.convert(Core(config, column_memories="distributed"), emit_src=False)
    # the accumulators, post traces, plastic_post and the work list
    assert text.count('attribute \\ram_style "distributed"') == 4
    assert "ram_style" not in rtlil.convert(Core(config), emit_src=False)
    with pytest.raises(ValueError, match="pipeline = 'fast': allowed 'auto', 'long', 'short'"):
        Core(config, pipeline="fast")
    with pytest.raises(ValueError, match="column_memories = 'lut'"):
        Core(config, column_memories="lut")


def run_plan(model, plan, tmp_path):
    """Run a plan of random networks through the cocotb golden-model tests; all must pass."""
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    tests, failures, messages = run_cocotb(model, "neurofabric.sim.core_cocotb", {"NF_PLAN": str(plan_path)},
                                           test_dir=tmp_path / "run")
    assert failures == 0, f"{failures} of {tests} cocotb tests failed:\n" + "\n".join(m[:2000] for m in messages[:5])
    assert tests == len(plan) + 4


def test_rtl_device_matches_golden_device_across_runs():
    """RTLDevice as GoldenDevice: runs that continue the state and the generator, rates and seeds,
    a reset (g back to the last seed), a run without host inputs, snapshots, probes, the input
    sets U, and a batch of trials."""
    from neurofabric.host.device import GoldenDevice
    from neurofabric.sim.rtl_device import RTLDevice, core_config_for

    net = random_case_network(CONFIGS["tiny"][0], {"seed": 77, "learn": 1, "n": 4, "m": 3, "plastic_all": True,
                                                   "wide_bounds": True})
    rtl, gold = RTLDevice(lanes=2), GoldenDevice()
    assert core_config_for(net, lanes=2) == CONFIGS["tiny"][0]  # reuses the tiny build
    rng = np.random.default_rng(1)
    for device in (rtl, gold):
        device.load(net)
    runs = [dict(), dict(rates=[20000, 0, 65535], seed=123), dict(rates=[9000, 30000, 100]),
            dict(rates=[40000, 40000, 0], reset=True), dict(rates=[5000, 60000, 30000], silent=True)]
    generated = 0
    for index, options in enumerate(runs):
        stim = None if options.get("silent") else (rng.random((12, net.m)) < 0.3).astype(np.uint8)
        if options.get("reset"):
            rtl.reset_state()
            gold.reset_state()
            assert rtl.gen_state == gold.model.g == 123
        kwargs = dict(steps=12, record=("v", "i", "inputs"), snapshot_every=5, rates=options.get("rates"),
                      seed=options.get("seed"))
        got, want = rtl.run(stim, **kwargs), gold.run(stim, **kwargs)
        for key in ("spikes", "v", "i", "inputs", "weights", "weight_snapshots", "snapshot_steps"):
            assert np.array_equal(getattr(got, key), getattr(want, key)), f"run {index}: {key} differs"
        assert got.extras["step_cycles"].shape == (12,)
        assert rtl.gen_state == gold.model.g, f"run {index}"
        generated += int(got.inputs.sum() - (0 if stim is None else (stim & got.inputs).sum()))
    assert generated > 20
    assert np.array_equal(rtl.read_weights(), gold.read_weights())
    trials = dict(steps=8, record=("inputs",), rates=[30000, 10000, 50000], seed=[5, 6])
    got, want = rtl.run_trials(None, **trials), gold.run_trials(None, **trials)
    assert got.trials == want.trials == 2
    for key in ("spikes", "inputs", "weights"):
        assert np.array_equal(getattr(got, key), getattr(want, key)), f"trials: {key} differs"
