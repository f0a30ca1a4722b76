"""cocotb tests of the whole core against the golden model, on random networks.

The plan comes from the environment: `NF_CORE_CONFIG` (the `CoreConfig` as
JSON, set by `sim.verilator.run_cocotb`) and `NF_PLAN`, a JSON file with a
list of cases (see `tests/test_core_rtl.py`). Every case builds a random
network (`random_case_network`), loads it, runs random stimulus step by step
and compares spikes, v and i after every step, and the weights, traces and
state at the intermediate point and at the end, with `GoldenModel`. The first
mismatch fails the case with (step, index, variable, expected, got).
"""

import json
import os

import numpy as np

import cocotb

from neurofabric.hdl.core_ports import CoreConfig, Reg, Space
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
        overrides.setdefault("k_syn", rng.choice([31, 31, 6, 0], n))
        overrides.setdefault("k_mem", rng.choice([31, 31, 5], n))
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
    rng = np.random.default_rng(case["seed"] + 104729)
    steps = case.get("steps", 20)
    rate = case.get("rate", 0.3)
    return rng.random((steps, net.m)) < rate


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


async def check_state(tb, golden, step):
    weights = await tb.read_weights()
    problems = [first_mismatch(step, "weights", golden.weights, weights)]
    state = await tb.read_state()
    for key in ("v", "i", "r", "y", "x"):
        problems.append(first_mismatch(step, key, getattr(golden, key), state[key]))
    problems.append(first_mismatch(step, "s", golden.s.astype(np.int64), state["s"]))
    return [p for p in problems if p]


@cocotb.test()
@cocotb.parametrize(case=PLAN)
async def core_matches_golden(dut, case):
    """A random network runs bit-exact with the golden model."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    net = random_case_network(CONFIG, case)
    stim = case_stimulus(net, case)
    await tb.load(net)
    golden = GoldenModel(net)
    assert await tb.read_reg(Reg.N_USED) == net.n
    steps = stim.shape[0]
    check_at = {steps // 2, steps} if steps > 1 else {steps}
    for t in range(steps):
        expected = golden.step(stim[t])
        res = await tb.step(stim[t], probe=True)
        got = np.zeros(net.n, bool)
        got[res.spikes] = True
        for problem in (first_mismatch(t, "spike", expected.astype(int), got.astype(int)),
                        first_mismatch(t, "v", golden.v, res.v), first_mismatch(t, "i", golden.i, res.i)):
            assert problem is None, f"case {case}: {problem}"
        assert res.spikes == sorted(res.spikes), f"step {t}: spikes out of order {res.spikes}"
        if t + 1 in check_at:
            problems = await check_state(tb, golden, t)
            assert not problems, f"case {case}: " + "; ".join(problems)
    assert await tb.read_reg(Reg.STEPS_DONE) == steps


@cocotb.test()
async def state_persists_and_resets(dut):
    """Runs continue from the state; RESET_STATE clears state, keeps weights."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    case = {"seed": 4242, "learn": 1, "steps": 12, "rate": 0.5}
    net = random_case_network(CONFIG, case)
    stim = case_stimulus(net, case)
    await tb.load(net)
    golden = GoldenModel(net)
    for t in range(6):
        golden.step(stim[t])
        await tb.step(stim[t])
    await tb.reset_state()
    golden.reset()
    problems = await check_state(tb, golden, 6)
    assert not problems, "; ".join(problems)
    for t in range(6, 12):
        expected = golden.step(stim[t])
        res = await tb.step(stim[t], probe=True)
        assert res.spikes == list(np.flatnonzero(expected)), f"step {t}"
        assert first_mismatch(t, "v", golden.v, res.v) is None


@cocotb.test()
async def duplicate_and_out_of_range_inputs(dut):
    """Inputs are a set: duplicates count once, inputs >= m_used are dropped."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    case = {"seed": 99, "learn": 1, "n": max(1, CONFIG.n - CONFIG.lanes), "m": max(1, CONFIG.m - 1)}
    net = random_case_network(CONFIG, case)
    await tb.load(net)
    golden = GoldenModel(net)
    rng = np.random.default_rng(5)
    for t in range(8):
        inputs = rng.random(net.m) < 0.5
        expected = golden.step(inputs)
        raw = list(np.flatnonzero(inputs)) * 2 + list(range(net.m, CONFIG.m))
        rng.shuffle(raw)
        res = await tb.step(np.array(raw, np.int64), probe=True)
        assert res.spikes == list(np.flatnonzero(expected)), f"step {t}: {res.spikes}"
        assert first_mismatch(t, "i", golden.i, res.i) is None
    problems = await check_state(tb, golden, 8)
    assert not problems, "; ".join(problems)


@cocotb.test()
async def real_time_period_spaces_steps(dut):
    """With PERIOD set, consecutive step starts are at least that many cycles apart."""
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    net = random_case_network(CONFIG, {"seed": 3, "learn": 0})
    await tb.load(net)
    period = 400
    await tb.write(Space.GLOBAL, Reg.PERIOD, period)
    await tb.step([])
    start = tb.cycles
    for _ in range(3):
        await tb.step([])
    assert tb.cycles - start >= 3 * period, tb.cycles - start
    await tb.write(Space.GLOBAL, Reg.PERIOD, 0)
    start = tb.cycles
    for _ in range(3):
        await tb.step([])
    assert tb.cycles - start < 3 * period
