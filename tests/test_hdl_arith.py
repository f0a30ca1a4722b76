"""The core's arithmetic building blocks in the Amaranth simulator, against the
golden model's functions (neurofabric.host.arith) on random and edge-case vectors."""

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from neurofabric.hdl.arith import NeuronUpdate, SynapseUpdate, TraceUpdate, decay, sat, usat
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

    def __init__(self, x_shape, y_shape, fn):
        self.fn = fn
        super().__init__({"x": In(x_shape), "k": In(5), "y": Out(y_shape)})

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


@pytest.mark.parametrize("bits,is_signed", [(16, True), (5, True), (8, False), (4, False)])
def test_decay_matches_golden(bits, is_signed):
    shape = signed(bits) if is_signed else bits
    dut = ExprUnderTest(shape, shape, decay)
    rng = np.random.default_rng(bits)
    vectors = [{(lambda d: d.x): x, (lambda d: d.k): int(k)}
               for x in edge_values(bits, is_signed, 60) for k in rng.choice(32, 6)]
    vectors += [{(lambda d: d.x): x, (lambda d: d.k): k} for x in edge_values(bits, is_signed, 0) for k in (0, 30, 31)]

    def check(vec, get):
        x, k = vec.values()
        _eq(get(lambda d: d.y), ref.decay(x, k), vec)
    run_comb(dut, vectors, check)


@pytest.mark.parametrize("bits", [8, 5, 1])
def test_trace_update_matches_golden(bits):
    dut = TraceUpdate(bits)
    rng = np.random.default_rng(bits)
    hi = (1 << bits) - 1
    vectors = []
    for _ in range(500):
        vectors.append({"x": int(rng.integers(0, hi + 1)), "k": int(rng.choice([0, 1, 2, 3, 7, 30, 31])),
                        "spiked": int(rng.integers(0, 2)), "inc": int(rng.choice([0, 1, hi, rng.integers(0, hi + 1)])),
                        "mode": int(rng.integers(0, 2))})
    sim = Simulator(dut)

    async def bench(ctx):
        for vec in vectors:
            for key, value in vec.items():
                ctx.set(getattr(dut, key), value)
            want = ref.trace_update(vec["x"], vec["k"], bool(vec["spiked"]), vec["inc"], bits, vec["mode"])
            _eq(ctx.get(dut.x_new), want, vec)

    sim.add_testbench(bench)
    sim.run()


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


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("S,W,n,m", [(16, 8, 256, 256), (10, 6, 16, 12), (4, 3, 4, 4)])
def test_neuron_update_matches_golden(S, W, n, m, pipelined):
    """Steps 3 and 4 of spec section 5, one neuron, against the same lines of the golden model
    (pipelined: the outputs one clock cycle after the inputs)."""
    cfg = CoreConfig(n=n, m=m, S=S, W=W, T=8, lanes=4)
    dut = NeuronUpdate(cfg, pipelined=pipelined)
    rng = np.random.default_rng(S)
    smin, smax = -(1 << (S - 1)), (1 << (S - 1)) - 1
    amax = (m + n) * (1 << (W - 1))
    def svals():
        return int(rng.choice([smin, smax, 0, -1, 1, rng.integers(smin, smax + 1)]))
    sim = Simulator(dut)

    async def bench(ctx):
        for _ in range(800):
            p = dict(threshold=svals(), v_reset=svals(), bias=svals(), reset_mode=int(rng.integers(0, 2)),
                     k_mem=int(rng.choice([0, 1, 3, 15, 30, 31])), k_syn=int(rng.choice([0, 1, 3, 15, 30, 31])),
                     refractory=int(rng.choice([0, 1, 255])))
            st = dict(v=svals(), i=svals(), r=int(rng.choice([0, 0, 1, 2, 255])), s=int(rng.integers(0, 2)))
            a = int(rng.choice([-amax, amax - 1, 0, rng.integers(-amax, amax)]))
            for key, value in p.items():
                ctx.set(getattr(dut.params, key), value)
            for key, value in st.items():
                ctx.set(getattr(dut.state, key), value)
            ctx.set(dut.a, a)
            if pipelined:
                await ctx.tick()
                ctx.set(dut.a, 0)   # the next neuron's inputs do not reach this one's outputs
                ctx.set(dut.state.i, 0)
            # The golden model's step 3 and 4 on one neuron.
            i_new = ref.sat(ref.decay(st["i"], p["k_syn"]) + a, S)
            if st["r"] > 0:
                want = dict(v=st["v"], i=i_new, r=st["r"] - 1, s=0)
            else:
                u = ref.sat(ref.decay(st["v"], p["k_mem"]) + i_new + p["bias"], S)
                if u >= p["threshold"]:
                    v = p["v_reset"] if p["reset_mode"] == 0 else ref.sat(u - p["threshold"], S)
                    want = dict(v=v, i=i_new, r=p["refractory"], s=1)
                else:
                    want = dict(v=u, i=i_new, r=0, s=0)
            got = {key: ctx.get(getattr(dut.new_state, key)) for key in want}
            assert got == want, f"params {p}, state {st}, a {a}: expected {want}, got {got}"
            assert ctx.get(dut.spike) == want["s"]

    if pipelined:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _eq(got, want, vector):
    assert int(got) == int(want), f"inputs {vector}: expected {want}, got {got}"
