"""The arithmetic of the core model (spec section 2) as Amaranth expressions,
and the combinational building blocks of the core built from them.

Each helper returns an expression whose value equals the function of the same
name in `neurofabric.host.arith` for every input; the unit tests check that
in the Amaranth simulator. Intermediate widths are chosen so nothing wraps
before the saturation the spec asks for.
"""

from amaranth.hdl import C, Cat, Mux, Module, Shape, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neurofabric.contract.model import DECAY_BITS, DECAY_ONE

from .core_ports import CoreConfig

__all__ = ["sat", "usat", "clamp", "trunc", "decay", "decay_keep", "decay_product", "decay_round", "decay_round_add",
           "trace_update", "xorshift32", "xorshift32_jump", "gen_fires", "stdp_amount", "stdp_product", "stdp_apply",
           "stdp_update", "NeuronUpdate", "TraceUpdate", "SynapseUpdate", "DECAY_FACTOR_BITS"]

#: Bits of a decay factor `d` (0 .. 4096): unsigned 13.
DECAY_FACTOR_BITS = DECAY_BITS + 1


# The saturations test the bits above the result's width instead of comparing
# with the bounds: a LUT or two after an adder instead of two more carry chains
# (the neuron update's halves are among the ECP5 core's longest paths).

def sat(x, bits):
    """`x` saturated to a signed `bits`-bit value (shape `signed(bits)`)."""
    x = Value.cast(x)
    lo, hi = C(-(1 << (bits - 1)), signed(bits)), C((1 << (bits - 1)) - 1, signed(bits))
    width, is_signed = len(x), x.shape().signed
    if width < bits or width == bits and is_signed:   # always in range: extend
        return Cat(x, x[-1].replicate(bits - width) if is_signed else C(0, bits - width)).as_signed()
    if is_signed:
        top = x[bits - 1:]                     # in range: all equal to the sign
        fits = (top == 0) | (top == (1 << len(top)) - 1)
        return Mux(fits, x[:bits].as_signed(), Mux(x[-1], lo, hi))
    return Mux(x[bits - 1:] == 0, x[:bits].as_signed(), hi)


def usat(x, bits):
    """`x` saturated to an unsigned `bits`-bit value (shape `unsigned(bits)`)."""
    x = Value.cast(x)
    hi = C((1 << bits) - 1, bits)
    width, is_signed = len(x), x.shape().signed
    over = x[bits:width - is_signed] != 0 if width - is_signed > bits else C(0, 1)
    low = x[:bits] if width >= bits else Cat(x, x[-1].replicate(bits - width) if is_signed else C(0, bits - width))
    in_range = Mux(over, hi, low)
    return Mux(x[-1], C(0, bits), in_range) if is_signed else in_range


def clamp(x, lo, hi, bits):
    """`min(max(x, lo), hi)` as a signed `bits`-bit value; needs `lo <= hi` in range."""
    return Mux(x < lo, lo, Mux(x > hi, hi, x))[:bits].as_signed()


def trunc(p, k, shape=None):
    """`p / 2^k` rounded toward zero (spec section 2): `p >> k` for `p >= 0`, else
    `-((-p) >> k)`.

    Built as the floor `p >> k` plus 1 when `p` is negative and its low `k` bits are
    not all 0: an incrementer of the high bits instead of a full-width add of
    `2^k - 1`. With `shape`, the result is cut to it (the caller knows it fits).
    """
    p = Value.cast(p)
    if p.shape().signed:
        result = (p >> k) + (p[-1] & (p[:k] != 0))
    else:
        result = p >> k
    if shape is None:
        return result
    shape = Shape.cast(shape)
    result = result[:shape.width]
    return result.as_signed() if shape.signed else result


def decay_keep(d):
    """`4096 - d`, unsigned 13 bits, for a decay factor `d` in 0 .. 4096 (13 bits)."""
    return (C(DECAY_ONE, DECAY_FACTOR_BITS + 1) - d)[:DECAY_FACTOR_BITS]


def decay_product(x, d):
    """`x * (4096 - d)`, exact: the multiplier of `decay` (one DSP tile for 16-bit `x`:
    signed 16 by unsigned 13 fits the iCE40's 16 x 16 SB_MAC16 and the ECP5's 18 x 18)."""
    return Value.cast(x) * decay_keep(d)


def decay_round(product, shape):
    """`trunc(product, 12)` cut to `shape`: the second half of `decay`, after `decay_product`."""
    return trunc(product, DECAY_BITS, shape)


def decay_round_add(product, addend, shape=None):
    """`trunc(product, 12) + addend`, exact: the rounded value is not cut before the
    add, so Yosys merges the rounding's increment into the adder (its carry in)
    instead of building an incrementer of its own. With `shape`, the sum is cut to
    it (the caller knows it fits)."""
    total = trunc(product, DECAY_BITS) + addend
    if shape is None:
        return total
    shape = Shape.cast(shape)
    total = total[:shape.width]
    return total.as_signed() if shape.signed else total


def decay(x, d):
    """`trunc(x * (4096 - d), 12)` (spec section 2) for a decay factor `d` in 0 .. 4096.

    The result is never further from 0 than `x`, so it has the shape of `x`.
    """
    x = Value.cast(x)
    return decay_round(decay_product(x, d), x.shape())


def trace_update(x, d, spiked, inc, bits, mode, *, keep=None):
    """One step of an STDP trace (spec section 5, `tr`); `mode` may be a signal.

    Both modes share one decay and one saturating add: mode 1's `inc` on a spike is
    `usat(0 + inc)` (`inc` fits), and its `decay(x, d)` otherwise `usat(decay(x, d) + 0)`.
    `keep`, when given, is `4096 - d` formed elsewhere (the core registers it), and
    `d` is not used.
    """
    x = Value.cast(x)
    product = x * keep if keep is not None else decay_product(x, d)
    kept = Mux(mode & spiked, 0, decay_round(product, x.shape()))
    return usat(kept + Mux(spiked, inc, 0), bits)[:bits]


def xorshift32(g):
    """One step of the stimulus generator (spec 5.0) on the 32-bit `g`:
    `g ^= g << 13; g ^= g >> 17; g ^= g << 5`, the shifts left taken mod 2^32.

    Wiring and three rows of XOR (at most three XOR inputs per bit); 32 bits wide.
    """
    g = Value.cast(g)[:32]
    g = g ^ (g << 13)[:32]
    g = g ^ (g >> 17)
    return (g ^ (g << 5)[:32])[:32]


def _xorshift32_int(g):
    g ^= (g << 13) & 0xFFFFFFFF
    g ^= g >> 17
    return g ^ ((g << 5) & 0xFFFFFFFF)


def xorshift32_jump(g, count):
    """`count` steps of `xorshift32` at once: the generator is linear over GF(2), so
    each bit of the result is the XOR of a fixed set of the bits of `g` (the set is
    computed here from the images of the 32 unit vectors). At most 32 inputs per XOR:
    three levels of 4-input LUTs, whatever `count`."""
    g = Value.cast(g)[:32]
    images = []
    for bit in range(32):
        x = 1 << bit
        for _ in range(count):
            x = _xorshift32_int(x)
        images.append(x)
    out = []
    for bit in range(32):
        mask = sum(1 << b for b in range(32) if images[b] >> bit & 1)
        out.append((g & mask).xor())
    return Cat(*out)


def gen_fires(g, rate):
    """Input spike from the generator (spec 5.0): `(g >> 16) < rate`, `rate` unsigned 16 bits."""
    return Value.cast(g)[16:32] < rate


def stdp_amount(amplitude, trace, shift):
    """`(amplitude * trace) >> shift`, unsigned and exact."""
    return stdp_product(amplitude, trace) >> shift


def stdp_product(amplitude, trace):
    """`amplitude * trace`, unsigned and exact: the first half of `stdp_update`
    (the multiplier), which the core registers before `stdp_apply`."""
    return amplitude * trace


def stdp_apply(w, product, shift, depress, w_min, w_max, bits):
    """The second half of `stdp_update`: `clamp(w -/+ (product >> shift), w_min, w_max)`,
    signed `bits`, from the unsigned `product` of `stdp_product`.

    One adder for both signs: `w - a == ~(~w + a)` in two's complement, so the
    sign costs two rows of XOR instead of a second adder.
    """
    amount = Cat(product >> shift, C(0, 1)).as_signed()
    flipped = Mux(depress, ~w, w)
    total = flipped + amount
    return clamp(Mux(depress, ~total, total), w_min, w_max, bits)


def stdp_update(w, amplitude, trace, shift, depress, w_min, w_max, bits):
    """One STDP visit of a synapse (spec 5.2 when `depress`, else 5.3):
    `clamp(w -/+ ((amplitude * trace) >> shift), w_min, w_max)`, signed `bits`.
    """
    return stdp_apply(w, stdp_product(amplitude, trace), shift, depress, w_min, w_max, bits)


class NeuronUpdate(wiring.Component):
    """Steps 3 and 4 of spec section 5 for one neuron.

    Inputs: the neuron's state, parameters and synaptic input `a`; outputs the
    new state and the spike bit, `latency` clock cycles (`sync` domain) after the
    inputs, one neuron per cycle:

    - `pipelined=False` (latency 0): combinational.
    - `pipelined=True` (latency 1): a register after the current (decayed current
      plus `a`, saturated) and the decayed membrane plus bias; the membrane sum,
      the threshold compare and the reset come after it. The iCE40's short
      pipeline at 12 MHz.
    - `pipelined=True, registered_products=True` (latency 2): also a register
      after the two decay products `v * (4096 - decay_mem)` and
      `i * (4096 - decay_syn)`, so that a multiplier (DSP tile) never shares a
      cycle with the adders after it: the ECP5's long pipeline at 50 MHz.

    The results are the same in all three.
    """

    def __init__(self, config: CoreConfig, *, pipelined=False, registered_products=False):
        if registered_products and not pipelined:
            self._MustUse__silence = True   # refused: no "created but never used" warning
            raise ValueError("NeuronUpdate: registered_products needs pipelined=True")
        self.config = config
        self.pipelined = pipelined
        self.registered_products = registered_products
        super().__init__({
            "params": In(config.neuron_params_layout),
            "state": In(config.neuron_state_layout),
            "a": In(signed(config.acc_bits)),
            "new_state": Out(config.neuron_state_layout),
            "spike": Out(1),
        })

    @property
    def latency(self):
        """Clock cycles from the inputs to the outputs."""
        return int(self.pipelined) + int(self.registered_products)

    def elaborate(self, platform):
        m = Module()
        S = self.config.S
        p, st, a = self.params, self.state, self.a
        new = self.new_state

        def register(values, stage):
            regs = []
            for name, value in values:
                reg = Signal(value.shape(), name=f"{name}_s{stage}")
                m.d.sync += reg.eq(value)
                regs.append(reg)
            return regs

        def wire(name, value):
            """`value` as a signal: each operator is built once, however often its result is used."""
            sig = Signal(value.shape(), name=name)
            m.d.comb += sig.eq(value)
            return sig

        # The decay products (one multiplier each).
        i_product = wire("i_product", decay_product(st.i, p.decay_syn))
        v_product = wire("v_product", decay_product(st.v, p.decay_mem))
        if self.registered_products:
            p, st, a, i_product, v_product = register(
                [("params", p), ("state", st), ("a", a), ("i_product", i_product), ("v_product", v_product)], 0)
        # 3. current: i = sat(decay(i, decay_syn) + a, S)
        i_new = wire("i_new", sat(wire("i_sum", decay_round_add(i_product, a)), S))
        # decay(v, decay_mem) + bias fits S + 1 bits; + the new i next
        v_biased = wire("v_biased", decay_round_add(v_product, p.bias, signed(S + 1)))
        # What the state becomes unless the membrane decides (a refractory neuron keeps v and
        # counts r down; a spike loads v_reset and the refractory period), chosen before the
        # register: one v and one r go through it instead of v, r, v_reset and refractory.
        refractory = wire("refractory", st.r != 0)
        held_v = wire("held_v", Mux(refractory, st.v, p.v_reset))
        held_r = wire("held_r", Mux(refractory, st.r - 1, p.refractory)[:len(st.r)])
        threshold, reset_mode = p.threshold, p.reset_mode
        if self.pipelined:
            threshold, reset_mode, refractory, held_v, held_r, i_new, v_biased = register(
                [("threshold", threshold), ("reset_mode", reset_mode), ("refractory", refractory),
                 ("held_v", held_v), ("held_r", held_r), ("i_new", i_new), ("v_biased", v_biased)], 1)
        # 4. membrane: u = sat(decay(v, decay_mem) + i + bias, S), with the new i
        u = wire("u", sat(wire("u_sum", v_biased + i_new), S))
        fire = ~refractory & (u >= threshold)
        m.d.comb += [
            new.i.eq(i_new),
            new.v.eq(Mux(refractory | fire & ~reset_mode, held_v, Mux(fire, sat(u - threshold, S), u))),
            new.r.eq(Mux(refractory | fire, held_r, 0)),
            new.s.eq(fire),
            self.spike.eq(fire),
        ]
        return m


class TraceUpdate(wiring.Component):
    """`tr(x, d, spiked, inc)` of spec section 5 for a `bits`-bit trace (`d`: the
    decay factor, 0 .. 4096)."""

    def __init__(self, bits):
        self.bits = bits
        super().__init__({
            "x": In(bits), "d": In(DECAY_FACTOR_BITS), "spiked": In(1), "inc": In(bits), "mode": In(1),
            "x_new": Out(bits),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.x_new.eq(trace_update(self.x, self.d, self.spiked, self.inc, self.bits, self.mode))
        return m


class SynapseUpdate(wiring.Component):
    """One STDP visit of a synapse (spec 5.2 / 5.3):
    `clamp(w -/+ ((amplitude * trace) >> shift), w_min, w_max)`.

    `depress = 1` subtracts (5.2), `0` adds (5.3).
    """

    def __init__(self, weight_bits, trace_bits):
        self.weight_bits, self.trace_bits = weight_bits, trace_bits
        W = weight_bits
        super().__init__({
            "w": In(signed(W)), "amplitude": In(8), "trace": In(trace_bits), "shift": In(4),
            "depress": In(1), "w_min": In(signed(W)), "w_max": In(signed(W)),
            "w_new": Out(signed(W)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.w_new.eq(stdp_update(self.w, self.amplitude, self.trace, self.shift, self.depress,
                                              self.w_min, self.w_max, self.weight_bits))
        return m
