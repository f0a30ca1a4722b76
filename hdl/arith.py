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

from .core_ports import CoreConfig

__all__ = ["sat", "usat", "clamp", "decay", "trace_update", "stdp_amount", "stdp_product", "stdp_apply",
           "stdp_update", "NeuronUpdate", "TraceUpdate", "SynapseUpdate"]

#: The decay shift that means "no decay".
NO_DECAY = 31


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


def decay(x, k):
    """`x - (x >> k)`, or `x` when `k == 31` (arithmetic shift for signed `x`).

    The result is never further from 0 than `x`, so it has the shape of `x`.
    """
    shape = Shape.cast(x.shape())
    decayed = (x - (x >> k))[:shape.width]
    if shape.signed:
        decayed = decayed.as_signed()
    return Mux(k == NO_DECAY, x, decayed)


def trace_update(x, k, spiked, inc, bits, mode):
    """One step of an STDP trace (spec section 5, `tr`); `mode` may be a signal."""
    decayed = decay(x, k)
    added = usat(decayed + Mux(spiked, inc, 0), bits)
    nearest = Mux(spiked, inc, decayed)
    return Mux(mode, nearest, added)[:bits]


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
    new state and the spike bit. Combinational, or with `pipelined=True` split
    by a register after the current (decayed current plus `a`, saturated) and the
    decayed membrane plus bias: the outputs then belong to the inputs of the previous clock
    cycle (`sync` domain), one neuron per cycle. The whole chain (two barrel
    shifters, three saturating adds, the threshold compare) is about 100 ns on an
    iCE40UP; split, each half fits a 12 MHz clock with room to spare.
    """

    def __init__(self, config: CoreConfig, *, pipelined=False):
        self.config = config
        self.pipelined = pipelined
        super().__init__({
            "params": In(config.neuron_params_layout),
            "state": In(config.neuron_state_layout),
            "a": In(signed(config.acc_bits)),
            "new_state": Out(config.neuron_state_layout),
            "spike": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        S = self.config.S
        p, st, new = self.params, self.state, self.new_state
        # 3. current: i = sat(decay(i, k_syn) + a, S)
        i_new = sat(decay(st.i, p.k_syn) + self.a, S)
        v_decayed = decay(st.v, p.k_mem)
        v_biased = v_decayed + p.bias   # exact; the new i is added in the second half
        if self.pipelined:
            p_reg = Signal(self.config.neuron_params_layout, name="params_s1")
            st_reg = Signal(self.config.neuron_state_layout, name="state_s1")
            i_reg = Signal.like(i_new, name="i_new_s1")
            vb_reg = Signal.like(v_biased, name="v_biased_s1")
            m.d.sync += [p_reg.eq(p), st_reg.eq(st), i_reg.eq(i_new), vb_reg.eq(v_biased)]
            p, st, i_new, v_biased = p_reg, st_reg, i_reg, vb_reg
        # 4. membrane: u = sat(decay(v, k_mem) + i + bias, S), with the new i
        u = sat(v_biased + i_new, S)
        refractory = st.r != 0
        fire = ~refractory & (u >= p.threshold)
        after_spike = Mux(p.reset_mode, sat(u - p.threshold, S), p.v_reset)
        m.d.comb += [
            new.i.eq(i_new),
            new.v.eq(Mux(refractory, st.v, Mux(fire, after_spike, u))),
            new.r.eq(Mux(refractory, st.r - 1, Mux(fire, p.refractory, 0))),
            new.s.eq(fire),
            self.spike.eq(fire),
        ]
        return m


class TraceUpdate(wiring.Component):
    """`tr(x, k, spiked, inc)` of spec section 5 for a `bits`-bit trace."""

    def __init__(self, bits):
        self.bits = bits
        super().__init__({
            "x": In(bits), "k": In(5), "spiked": In(1), "inc": In(bits), "mode": In(1),
            "x_new": Out(bits),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.x_new.eq(trace_update(self.x, self.k, self.spiked, self.inc, self.bits, self.mode))
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
