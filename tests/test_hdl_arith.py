"""The core's arithmetic building blocks in the Amaranth simulator, against the
golden model's functions (neurofabric.host.arith) on random and edge-case vectors."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from neurofabric.hdl.arith import (DECAY_FACTOR_BITS, NeuronUpdate, SynapseUpdate, TraceUpdate, decay, gen_fires,
                                   sat, usat, xorshift32)
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host import arith as ref


def run_comb(dut, vectors, check):
    """Apply each vector (a dict of port -> value) and call `check(vector, get)`."""
    sim = Simulator(dut)

    async def bench(ctx):
        for vector in vectors:
            for port, value in vector.items():
                ctx.set(port(dut), value)
            check(vector, lambda port: ctx.get(port(dut)))

    sim.add_testbench(bench)
    sim.run()


class ExprUnderTest(wiring.Component):
    """`y = f(x, k)` for an expression helper."""

    def __init__(self, x_shape, y_shape, fn, k_shape=DECAY_FACTOR_BITS):
        self.fn = fn
        super().__init__({"x": In(x_shape), "k": In(k_shape), "y": Out(y_shape)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.fn(self.x, self.k))
        return m


def edge_values(bits, signed_=True, count=300, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed_ else (0, (1 << bits) - 1)
    edges = [lo, lo + 1, -1, 0, 1, hi - 1, hi] if signed_ else [0, 1, hi - 1, hi]
    return [int(v) for v in edges] + [int(v) for v in rng.integers(lo, hi + 1, count)]


@pytest.mark.parametrize("bits,out_bits,is_signed", [(18, 16, True), (12, 5, True), (8, 8, True), (6, 8, True),
                                                    (17, 16, True), (10, 8, False), (8, 8, False), (5, 8, False)])
def test_sat_matches_golden(bits, out_bits, is_signed):
    x_shape = signed(bits) if is_signed else unsigned(bits)
    dut = ExprUnderTest(x_shape, signed(out_bits), lambda x, k: sat(x, out_bits))
    vectors = [{(lambda d: d.x): v} for v in edge_values(bits, is_signed)]
    run_comb(dut, vectors, lambda vec, get: _eq(get(lambda d: d.y), ref.sat(list(vec.values())[0], out_bits), vec))


@pytest.mark.parametrize("bits,out_bits,is_signed", [(10, 8, True), (6, 4, True), (9, 8, True), (8, 8, True),
                                                    (5, 8, True), (9, 8, False), (8, 8, False), (3, 4, False)])
def test_usat_matches_golden(bits, out_bits, is_signed):
    x_shape = signed(bits) if is_signed else unsigned(bits)
    dut = ExprUnderTest(x_shape, out_bits, lambda x, k: usat(x, out_bits))
    vectors = [{(lambda d: d.x): v} for v in edge_values(bits, is_signed)]
    run_comb(dut, vectors, lambda vec, get: _eq(get(lambda d: d.y), ref.usat(list(vec.values())[0], out_bits), vec))


def decay_factors(rng, count):
    """Decay factors 0 .. 4096: the ends, the values next to them and powers of two, then random ones."""
    edges = [0, 1, 2, 3, 4095, 4096, 4094, 2048, 1024, 16, 64]
    return edges + [int(d) for d in rng.integers(0, 4097, count)]


@pytest.mark.parametrize("bits,is_signed", [(16, True), (32, True), (5, True), (2, True), (8, False), (16, False),
                                            (1, False)])
def test_decay_matches_golden(bits, is_signed):
    """`trunc(x * (4096 - d), 12)`, rounding toward zero from both signs, for every shape the core decays."""
    shape = signed(bits) if is_signed else bits
    dut = ExprUnderTest(shape, shape, decay)
    rng = np.random.default_rng(bits)
    vectors = [{(lambda d: d.x): x, (lambda d: d.k): d}
               for x in edge_values(bits, is_signed, 80) for d in decay_factors(rng, 4)[::3]]
    vectors += [{(lambda d: d.x): x, (lambda d: d.k): d}
                for x in edge_values(bits, is_signed, 0) for d in decay_factors(rng, 0)]

    def check(vec, get):
        x, d = vec.values()
        _eq(get(lambda d: d.y), ref.decay(x, d), vec)
    run_comb(dut, vectors, check)


def test_decay_rounds_toward_zero_to_zero_from_both_signs():
    """A value left alone decays all the way to 0 (core model 1's shift held small
    positive values up forever): 200 steps of d = 256 from +-7 and +-32767."""
    dut = ExprUnderTest(signed(16), signed(16), decay)
    sim = Simulator(dut)

    async def bench(ctx):
        for start in (7, -7, 32767, -32768):
            x = start
            for _ in range(200):
                ctx.set(dut.x, x)
                ctx.set(dut.k, 256)
                x = ctx.get(dut.y)
            assert x == 0, start

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("bits", [8, 5, 1, 16])
def test_trace_update_matches_golden(bits):
    dut = TraceUpdate(bits)
    rng = np.random.default_rng(bits)
    hi = (1 << bits) - 1
    vectors = []
    factors = decay_factors(rng, 600)
    for index in range(600):
        vectors.append({"x": int(rng.choice([0, 1, hi, rng.integers(0, hi + 1)])), "d": factors[index % len(factors)],
                        "spiked": int(rng.integers(0, 2)), "inc": int(rng.choice([0, 1, hi, rng.integers(0, hi + 1)])),
                        "mode": int(rng.integers(0, 2))})
    sim = Simulator(dut)

    async def bench(ctx):
        for vec in vectors:
            for key, value in vec.items():
                ctx.set(getattr(dut, key), value)
            want = ref.trace_update(vec["x"], vec["d"], bool(vec["spiked"]), vec["inc"], bits, vec["mode"])
            _eq(ctx.get(dut.x_new), want, vec)

    sim.add_testbench(bench)
    sim.run()


class KeptTraceUpdate(wiring.Component):
    """`trace_update` given `keep = 4096 - d` formed outside, as the core does."""

    def __init__(self, bits):
        self.bits = bits
        super().__init__({"x": In(bits), "keep": In(DECAY_FACTOR_BITS), "spiked": In(1), "inc": In(bits),
                          "mode": In(1), "x_new": Out(bits)})

    def elaborate(self, platform):
        from neurofabric.hdl.arith import trace_update

        m = Module()
        m.d.comb += self.x_new.eq(trace_update(self.x, None, self.spiked, self.inc, self.bits, self.mode,
                                               keep=self.keep))
        return m


@pytest.mark.parametrize("bits", [8, 4])
def test_trace_update_with_a_precomputed_keep_matches_golden(bits):
    dut = KeptTraceUpdate(bits)
    rng = np.random.default_rng(bits + 100)
    hi = (1 << bits) - 1
    sim = Simulator(dut)

    async def bench(ctx):
        for d in decay_factors(rng, 40):
            for _ in range(10):
                vec = {"x": int(rng.integers(0, hi + 1)), "spiked": int(rng.integers(0, 2)),
                       "inc": int(rng.integers(0, hi + 1)), "mode": int(rng.integers(0, 2))}
                for key, value in vec.items():
                    ctx.set(getattr(dut, key), value)
                ctx.set(dut.keep, 4096 - d)
                want = ref.trace_update(vec["x"], d, bool(vec["spiked"]), vec["inc"], bits, vec["mode"])
                _eq(ctx.get(dut.x_new), want, dict(vec, d=d))

    sim.add_testbench(bench)
    sim.run()


def test_xorshift32_matches_golden_along_a_sequence_and_on_edge_states():
    """The 32-bit step, fed back 3,000 times from several seeds, and on single bits and all ones."""
    dut = ExprUnderTest(32, 32, lambda g, k: xorshift32(g), k_shape=1)
    sim = Simulator(dut)

    async def bench(ctx):
        for g in [1 << b for b in range(32)] + [0xFFFFFFFF, 0x80000001, 0x12345678]:
            ctx.set(dut.x, g)
            _eq(ctx.get(dut.y), ref.xorshift32(g), {"g": g})
        for seed in (1, 0xFFFFFFFF, 2463534242):
            g = seed
            for _ in range(1000):
                ctx.set(dut.x, g)
                got = ctx.get(dut.y)
                _eq(got, ref.xorshift32(g), {"g": g})
                g = got

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("count", [1, 2, 16])
def test_xorshift32_jump_is_count_steps(count):
    from neurofabric.hdl.arith import xorshift32_jump

    dut = ExprUnderTest(32, 32, lambda g, k: xorshift32_jump(g, count), k_shape=1)
    rng = np.random.default_rng(count)
    sim = Simulator(dut)

    async def bench(ctx):
        for g in [1 << b for b in range(32)] + [0xFFFFFFFF] + [int(v) for v in rng.integers(1, 1 << 32, 300)]:
            ctx.set(dut.x, g)
            want = g
            for _ in range(count):
                want = ref.xorshift32(want)
            _eq(ctx.get(dut.y), want, {"g": g})

    sim.add_testbench(bench)
    sim.run()


def test_gen_fires_compares_the_high_half_of_g_strictly_below_the_rate():
    dut = ExprUnderTest(32, 1, gen_fires, k_shape=16)
    rng = np.random.default_rng(16)
    vectors = []
    for _ in range(800):
        rate = int(rng.choice([0, 1, 65535, 32768, rng.integers(0, 65536)]))
        high = int(rng.choice([rate, rate - 1, rate + 1, 0, 65535, rng.integers(0, 65536)])) & 0xFFFF
        vectors.append({(lambda d: d.x): (high << 16) | int(rng.integers(0, 65536)), (lambda d: d.k): rate})

    def check(vec, get):
        g, rate = vec.values()
        _eq(get(lambda d: d.y), int((g >> 16) < rate), vec)
    run_comb(dut, vectors, check)


@pytest.mark.parametrize("W,T", [(8, 8), (5, 4), (16, 16)])
def test_synapse_update_matches_golden(W, T):
    dut = SynapseUpdate(W, T)
    rng = np.random.default_rng(W * 100 + T)
    wlo, whi = -(1 << (W - 1)), (1 << (W - 1)) - 1
    vectors = []
    for _ in range(500):
        lo, hi = sorted(int(v) for v in rng.integers(wlo, whi + 1, 2))
        vectors.append({"w": int(rng.integers(wlo, whi + 1)), "amplitude": int(rng.integers(0, 256)),
                        "trace": int(rng.integers(0, 1 << T)), "shift": int(rng.integers(0, 16)),
                        "depress": int(rng.integers(0, 2)), "w_min": lo, "w_max": hi})
    sim = Simulator(dut)

    async def bench(ctx):
        for vec in vectors:
            for key, value in vec.items():
                ctx.set(getattr(dut, key), value)
            amount = (vec["amplitude"] * vec["trace"]) >> vec["shift"]
            changed = vec["w"] - amount if vec["depress"] else vec["w"] + amount
            _eq(ctx.get(dut.w_new), ref.clamp(changed, vec["w_min"], vec["w_max"]), vec)

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("pipelined,registered_products", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("S,W,n,m", [(16, 8, 256, 256), (10, 6, 16, 12), (4, 3, 4, 4), (32, 16, 8, 8)])
def test_neuron_update_matches_golden(S, W, n, m, pipelined, registered_products):
    """Steps 3 and 4 of spec section 5, one neuron, against the same lines of the golden model
    (pipelined: the outputs `latency` clock cycles after the inputs, a new neuron every cycle)."""
    cfg = CoreConfig(n=n, m=m, S=S, W=W, T=8, lanes=4)
    dut = NeuronUpdate(cfg, pipelined=pipelined, registered_products=registered_products)
    assert dut.latency == int(pipelined) + int(registered_products)
    rng = np.random.default_rng(S)
    smin, smax = -(1 << (S - 1)), (1 << (S - 1)) - 1
    amax = (m + n) * (1 << (W - 1))

    def svals():
        return int(rng.choice([smin, smax, 0, -1, 1, rng.integers(smin, smax + 1)]))

    def vector():
        p = dict(threshold=svals(), v_reset=svals(), bias=svals(), reset_mode=int(rng.integers(0, 2)),
                 decay_mem=int(rng.choice([0, 1, 4095, 4096, 2048, rng.integers(0, 4097)])),
                 decay_syn=int(rng.choice([0, 1, 4095, 4096, 2048, rng.integers(0, 4097)])),
                 refractory=int(rng.choice([0, 1, 255])))
        st = dict(v=svals(), i=svals(), r=int(rng.choice([0, 0, 1, 2, 255])), s=int(rng.integers(0, 2)))
        a = int(rng.choice([-amax, amax - 1, 0, rng.integers(-amax, amax)]))
        return p, st, a

    def expected(p, st, a):
        """The golden model's steps 3 and 4 on one neuron."""
        i_new = ref.sat(ref.decay(st["i"], p["decay_syn"]) + a, S)
        if st["r"] > 0:
            return dict(v=st["v"], i=i_new, r=st["r"] - 1, s=0)
        u = ref.sat(ref.decay(st["v"], p["decay_mem"]) + i_new + p["bias"], S)
        if u >= p["threshold"]:
            v = p["v_reset"] if p["reset_mode"] == 0 else ref.sat(u - p["threshold"], S)
            return dict(v=v, i=i_new, r=p["refractory"], s=1)
        return dict(v=u, i=i_new, r=0, s=0)

    sim = Simulator(dut)

    async def bench(ctx):
        # One vector per cycle: each output belongs to the inputs of `latency` cycles before.
        in_flight = []
        for _ in range(800 + dut.latency):
            p, st, a = vector()
            for key, value in p.items():
                ctx.set(getattr(dut.params, key), value)
            for key, value in st.items():
                ctx.set(getattr(dut.state, key), value)
            ctx.set(dut.a, a)
            in_flight.append((p, st, a))
            if len(in_flight) > dut.latency:
                p, st, a = in_flight.pop(0)
                want = expected(p, st, a)
                got = {key: ctx.get(getattr(dut.new_state, key)) for key in want}
                assert got == want, f"params {p}, state {st}, a {a}: expected {want}, got {got}"
                assert ctx.get(dut.spike) == want["s"]
            if dut.latency:
                await ctx.tick()

    if pipelined:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_neuron_update_refuses_registered_products_without_the_pipeline():
    with pytest.raises(ValueError, match="registered_products needs pipelined=True"):
        NeuronUpdate(CoreConfig(n=4, m=4), registered_products=True)


def _eq(got, want, vector):
    assert int(got) == int(want), f"inputs {vector}: expected {want}, got {got}"
