"""cocotb tests of the whole core against the golden model, on random networks.

The plan comes from the environment: `NF_CORE_CONFIG` (the `CoreConfig` as
JSON, set by `sim.verilator.run_cocotb`) and `NF_PLAN`, a JSON file with a
list of cases (see `tests/test_core_rtl.py`). Every case builds a random
network (`random_case_network`), loads it, writes the stimulus generator's
rates and seed (`case_rates`, `gen_seed`), runs random host stimulus step by
step and compares spikes, v, i and the input set U after every step, the
weights, traces and state at the intermediate point and at the end, and the
generator state g after the run, with `GoldenModel`. The first mismatch fails
the case with (step, index, variable, expected, got).
"""

import json
import os

import numpy as np

import cocotb

from neurofabric.contract.device import SPIKE_COUNT_BITS
from neurofabric.hdl.core_ports import CoreConfig, Reg, Space
from neurofabric.host.generator import sequence
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import random_network
from neurofabric.contract.model import Widths

from .core_tb import CoreTB

CONFIG = CoreConfig(**json.loads(os.environ.get("NF_CORE_CONFIG", '{"n": 4, "m": 4, "lanes": 2}')))


def _plan():
    path = os.environ.get("NF_PLAN")
    if not path:
        return [{"name": "default", "seed": 0}]
    with open(path) as f:
        return json.load(f)


PLAN = _plan()


def random_case_network(config, case):
    """The network of a case: random, optionally smaller than the core, optionally
    pushed towards saturation (no leak, large thresholds and biases)."""
    rng = np.random.default_rng(case["seed"] + 7919)
    n = case.get("n") or config.n
    m = case.get("m") or config.m
    widths = Widths(config.S, config.W, config.T)
    overrides = dict(case.get("overrides", {}))
    if case.get("saturate"):
        smax = (1 << (config.S - 1)) - 1
        wmax = (1 << (config.W - 1)) - 1
        overrides.setdefault("decay_syn", rng.choice([0, 0, 64, 4096], n))
        overrides.setdefault("decay_mem", rng.choice([0, 0, 128], n))
        overrides.setdefault("threshold", rng.choice([smax, smax - 1, -smax - 1, 3 * wmax], n))
        overrides.setdefault("bias", rng.integers(-smax - 1, smax + 1, n) // rng.choice([1, 4, 64], n))
        overrides.setdefault("v_reset", rng.integers(-smax - 1, smax + 1, n))
        overrides.setdefault("stdp_shift", int(rng.integers(0, 3)))
        overrides.setdefault("a_plus", 255)
        overrides.setdefault("a_minus", int(rng.integers(0, 256)))
    if case.get("plastic_all"):
        overrides.setdefault("plastic_pre", np.ones(m + n, np.int64))
        overrides.setdefault("plastic_post", (rng.random(n) < 0.9).astype(np.int64))
    if case.get("wide_bounds"):
        wmax = (1 << (config.W - 1)) - 1
        overrides.setdefault("w_min", -wmax - 1)
        overrides.setdefault("w_max", wmax)
    for key in ("learn", "trace_mode"):
        if case.get(key) is not None:
            overrides[key] = case[key]
    net = random_network(n, m, seed=case["seed"], widths=widths, density=case.get("density", 0.5), **overrides)
    return net


def case_stimulus(net, case):
    """The host's input spikes of a case, bool `(steps, m')`."""
    rng = np.random.default_rng(case["seed"] + 104729)
    steps = case.get("steps", 20)
    rate = case.get("rate", 0.3)
    return rng.random((steps, net.m)) < rate


def case_rates(net, case):
    """The generator's `rate[k]` of a case, int64 `(m',)`: all 0 unless `gen_rate` is set;
    then random around `gen_rate` (a probability per step), with inputs that never and
    that almost always spike."""
    if not case.get("gen_rate"):
        return np.zeros(net.m, np.int64)
    rng = np.random.default_rng(case["seed"] + 1299709)
    rates = rng.integers(0, int(2 * 65536 * case["gen_rate"]) + 1, net.m).clip(0, 65535)
    special = rng.random(net.m)
    rates[special < 0.1] = 0
    rates[special > 0.92] = 65535
    return rates.astype(np.int64)


def first_mismatch(step, variable, expected, got):
    """None, or the text naming the first index where `got` differs from `expected`."""
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        return f"step {step}: {variable} shape expected {expected.shape}, got {got.shape}"
    bad = np.argwhere(expected != got)
    if bad.size == 0:
        return None
    idx = tuple(int(x) for x in bad[0])
    where = ", ".join(f"{name} {value}" for name, value in zip(
        ("synapse (source" if variable == "weights" else "neuron" if variable not in ("x",) else "source",
         "target)"), idx))
    return (f"first mismatch at step {step}, {where}, variable {variable}: expected {int(expected[idx])}, "
            f"got {int(got[idx])} ({len(bad)} mismatches in {variable})")


def u_mismatch(step, golden, res, m):
    """None, or the text naming the first input where the core's U differs from the golden model's."""
    return first_mismatch(step, "inputs", golden.u.astype(int), res.input_bits(m).astype(int))


async def check_state(tb, golden, step, counts):
    """The mismatches of the core's weights and state with the golden model's, and of its
    spike counters with `counts` (each neuron's spikes since the last reset)."""
    weights = await tb.read_weights()
    problems = [first_mismatch(step, "weights", golden.weights, weights)]
    state = await tb.read_state()
    for key in ("v", "i", "r", "y", "x"):
        problems.append(first_mismatch(step, key, getattr(golden, key), state[key]))
    problems.append(first_mismatch(step, "s", golden.s.astype(np.int64), state["s"]))
    if "count" in state:
        problems.append(first_mismatch(step, "count", np.asarray(counts) % (1 << SPIKE_COUNT_BITS), state["count"]))
    return [p for p in problems if p]


@cocotb.test()
@cocotb.parametrize(case=PLAN)
async def core_matches_golden(dut, case):
    """A random network runs bit-exact with the golden model."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    net = random_case_network(CONFIG, case)
    stim = case_stimulus(net, case)
    rates = case_rates(net, case)
    await tb.load(net)
    # The rates table keeps what an earlier case wrote: every case writes its own.
    await tb.write_rates(rates)
    golden = GoldenModel(net)
    if case.get("gen_seed") is not None:
        await tb.write_seed(case["gen_seed"])
        golden.set_seed(case["gen_seed"])
    assert await tb.read_gen_state() == golden.g
    assert await tb.read_reg(Reg.N_USED) == net.n
    report = case.get("report_inputs", True)
    steps = stim.shape[0]
    check_at = {steps // 2, steps} if steps > 1 else {steps}
    counts = np.zeros(net.n, np.int64)          # each neuron's spikes since the load's reset
    for t in range(steps):
        expected = golden.step(stim[t], rates)
        counts += expected
        res = await tb.step(stim[t], probe=True, report_inputs=report)
        got = np.zeros(net.n, bool)
        got[res.spikes] = True
        for problem in (first_mismatch(t, "spike", expected.astype(int), got.astype(int)),
                        first_mismatch(t, "v", golden.v, res.v), first_mismatch(t, "i", golden.i, res.i),
                        u_mismatch(t, golden, res, net.m) if report else None):
            assert problem is None, f"case {case}: {problem}"
        assert res.spikes == sorted(res.spikes), f"step {t}: spikes out of order {res.spikes}"
        if t + 1 in check_at:
            problems = await check_state(tb, golden, t, counts)
            assert not problems, f"case {case}: " + "; ".join(problems)
    assert await tb.read_reg(Reg.STEPS_DONE) == steps
    assert await tb.read_gen_state() == golden.g, f"case {case}: generator state after {steps} steps"


@cocotb.test()
async def state_persists_and_resets(dut):
    """Runs continue from the state; RESET_STATE clears state and the spike counters, keeps
    weights and sets g to the seed."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    case = {"seed": 4242, "learn": 1, "steps": 12, "rate": 0.3, "gen_rate": 0.2}
    net = random_case_network(CONFIG, case)
    stim = case_stimulus(net, case)
    rates = case_rates(net, case)
    await tb.load(net)
    await tb.write_rates(rates)
    await tb.write_seed(0xDEADBEEF)
    golden = GoldenModel(net)
    golden.set_seed(0xDEADBEEF)
    counts = np.zeros(net.n, np.int64)
    for t in range(6):
        counts += golden.step(stim[t], rates)
        await tb.step(stim[t])
    assert await tb.read_gen_state() == golden.g != 0xDEADBEEF
    if CONFIG.spike_counters:
        assert list((await tb.read_state())["count"]) == list(counts)
        # The host may write the counters; the reset clears them.
        await tb.write_many([(Space.COUNT, j, (0xFFF0 + 37 * j) % 65536) for j in range(net.n)])
        assert list((await tb.read_state())["count"]) == [(0xFFF0 + 37 * j) % 65536 for j in range(net.n)]
    await tb.reset_state()
    golden.reset()
    assert await tb.read_gen_state() == golden.g == 0xDEADBEEF
    problems = await check_state(tb, golden, 6, np.zeros(net.n))     # the reset cleared the counts
    assert not problems, "; ".join(problems)
    for t in range(6, 12):
        expected = golden.step(stim[t], rates)
        res = await tb.step(stim[t], probe=True, report_inputs=True)
        assert res.spikes == list(np.flatnonzero(expected)), f"step {t}"
        assert first_mismatch(t, "v", golden.v, res.v) is None
        assert u_mismatch(t, golden, res, net.m) is None


@cocotb.test()
async def duplicate_and_out_of_range_inputs(dut):
    """Inputs are a set: duplicates count once, inputs >= m_used are dropped, and an input that
    both the host and the generator name counts once (in the sums and in U)."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    case = {"seed": 99, "learn": 1, "n": max(1, CONFIG.n - CONFIG.lanes), "m": max(1, CONFIG.m - 1),
            "gen_rate": 0.4}
    net = random_case_network(CONFIG, case)
    rates = case_rates(net, case)
    await tb.load(net)
    await tb.write_rates(rates)
    golden = GoldenModel(net)
    rng = np.random.default_rng(5)
    overlaps = 0
    counts = np.zeros(net.n, np.int64)
    for t in range(8):
        inputs = rng.random(net.m) < 0.5
        g_before = golden.g
        expected = golden.step(inputs, rates)
        counts += expected
        overlaps += int((inputs & golden.u & (rates > 0)).sum())
        raw = list(np.flatnonzero(inputs)) * 2 + list(range(net.m, CONFIG.m))
        rng.shuffle(raw)
        res = await tb.step(np.array(raw, np.int64), probe=True, report_inputs=True)
        assert res.spikes == list(np.flatnonzero(expected)), f"step {t}: {res.spikes} (g was {g_before})"
        assert first_mismatch(t, "i", golden.i, res.i) is None
        assert u_mismatch(t, golden, res, net.m) is None
    assert overlaps > 0
    problems = await check_state(tb, golden, 8, counts)
    assert not problems, "; ".join(problems)
    assert await tb.read_gen_state() == golden.g


@cocotb.test()
async def generator_follows_seed_writes_rate_changes_and_smaller_networks(dut):
    """g advances m' times per step whatever the rates (all 0 too), a seed written mid-run
    restarts it, changed rates apply from the next step, the rates table reads back, and
    writes beyond m are ignored."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    rng = np.random.default_rng(17)
    seed = 1    # the seed register's value after reset; loading a network (RESET_STATE) sets g to it
    for m_net in sorted({1, max(1, CONFIG.m // 2), CONFIG.m}):
        case = {"seed": 31 + m_net, "learn": m_net % 2, "m": m_net, "gen_rate": 0.3}
        net = random_case_network(CONFIG, case)
        await tb.load(net)
        golden = GoldenModel(net)
        golden.set_seed(seed)
        zeros = np.zeros(net.m, np.int64)
        await tb.write_rates(zeros)
        for _ in range(3):     # all rates 0: no generated spike, but g advances m' per step
            golden.step(np.zeros(net.m, bool), zeros)
            res = await tb.step([], report_inputs=True)
            assert res.inputs == []
        assert await tb.read_gen_state() == golden.g
        for phase in range(3):
            rates = rng.integers(0, 65536, net.m)
            rates[rng.random(net.m) < 0.3] = 0
            await tb.write_rates(rates)
            assert await tb.read_many([(Space.RATE, k) for k in range(net.m)]) == [int(r) for r in rates]
            if phase == 1:
                seed = int(rng.integers(1, 1 << 32))
                await tb.write_seed(seed)
                golden.set_seed(seed)
                assert await tb.read_gen_state() == seed
                assert await tb.read_reg(Reg.SEED) == seed
            for t in range(4):
                host = rng.random(net.m) < 0.2
                expected = golden.step(host, rates)
                res = await tb.step(host, report_inputs=True)
                assert res.spikes == list(np.flatnonzero(expected)), f"m' = {m_net}, phase {phase}, step {t}"
                assert u_mismatch(t, golden, res, net.m) is None, f"m' = {m_net}, phase {phase}"
            assert await tb.read_gen_state() == golden.g, f"m' = {m_net}, phase {phase}"
        # The comparison's edge: rate[k] equal to the high half of input k's state this step
        # does not fire, one more does (spec 5.0: `(g >> 16) < rate[k]`).
        states, _ = sequence(golden.g, net.m)
        high = states.astype(np.int64) >> 16
        odd = np.arange(net.m) % 2 == 1
        rates = np.where(odd, np.minimum(high + 1, 65535), high)
        await tb.write_rates(rates)
        expected = golden.step(np.zeros(net.m, bool), rates)
        res = await tb.step([], report_inputs=True)
        assert res.inputs == list(np.flatnonzero(odd & (high < 65535))) == list(np.flatnonzero(golden.u))
        assert res.spikes == list(np.flatnonzero(expected))
    # The table holds m words: a write beyond it changes nothing that is read back.
    await tb.write_many([(Space.RATE, k, 1000 + k) for k in range(CONFIG.m)])
    await tb.write(Space.RATE, CONFIG.m, 7)
    assert await tb.read_many([(Space.RATE, k) for k in range(CONFIG.m)]) == [1000 + k for k in range(CONFIG.m)]


@cocotb.test()
async def real_time_period_spaces_steps(dut):
    """With PERIOD set, consecutive step starts are at least that many cycles apart."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    net = random_case_network(CONFIG, {"seed": 3, "learn": 0})
    await tb.load(net)
    await tb.write_rates(np.zeros(net.m, np.int64))
    period = 400
    await tb.write(Space.GLOBAL, Reg.PERIOD, period)
    first = await tb.step([])
    start = tb.cycles
    for _ in range(3):
        last = await tb.step([])
    # The period spaces the starts; a step's end comes `cycles` (LAST_STEP_CYCLES) after
    # its start, and the steps' work differs (their spikes; the generator pass's reads).
    starts_apart = (tb.cycles - start) - (last.cycles - first.cycles)
    assert starts_apart >= 3 * period, (tb.cycles - start, first.cycles, last.cycles)
    await tb.write(Space.GLOBAL, Reg.PERIOD, 0)
    start = tb.cycles
    for _ in range(3):
        await tb.step([])
    assert tb.cycles - start < 3 * period
