"""The fields of the core model (spec sections 1, 3, 4 and 6), written once.

Every reader, writer and validator, the device description (`contract.device`)
and through it the gateware and the wire protocol take field names and ranges
from here, so no range appears in two places. Pure Python: the host imports it
without Amaranth.
"""

from dataclasses import dataclass

__all__ = [
    "CORE_MODEL_VERSION", "Widths", "DEFAULT_WIDTHS", "WIDTH_LIMITS",
    "NEURON_FIELDS", "SOURCE_FIELDS", "GLOBAL_FIELDS", "STATE_FIELDS", "SOURCE_STATE_FIELDS", "WIDTH_FIELDS",
    "STIMULUS_FIELDS", "GENERATOR_STATE_FIELDS", "DECAY_BITS", "DECAY_ONE", "DECAY_RANGE",
    "field_range", "field_bits", "range_text",
]

#: Version of `spec/core-model.md` this code implements.
CORE_MODEL_VERSION = 2

#: A decay factor `d` is `0 .. 4096`: `decay(x, d) = trunc(x * (4096 - d), 12)` (spec section 2).
DECAY_BITS = 12
DECAY_ONE = 1 << DECAY_BITS
DECAY_RANGE = (0, DECAY_ONE)


@dataclass(frozen=True)
class Widths:
    """Bit widths fixed when hardware is built (spec section 1)."""

    state_bits: int = 16   # S: membrane v and synaptic current i, signed
    weight_bits: int = 8   # W: a weight, signed
    trace_bits: int = 8    # T: an STDP trace, unsigned


DEFAULT_WIDTHS = Widths()

#: Widths this implementation accepts. The upper limits keep every exact
#: intermediate of the model inside int64: the membrane sum is below 3 * 2^31,
#: the accumulator below (m+n) * 2^15, and amplitude * trace below 2^24.
WIDTH_LIMITS = {"state_bits": (2, 32), "weight_bits": (2, 16), "trace_bits": (1, 16)}

# A field's range is ("s", width) for a signed field of that width, ("u", width)
# for unsigned, or a literal (lo, hi).
_S, _W, _T = "state_bits", "weight_bits", "trace_bits"

#: Per-neuron parameters, shape (n,) (spec section 3).
NEURON_FIELDS = {
    "threshold": ("s", _S),
    "v_reset": ("s", _S),
    "reset_mode": (0, 1),
    "decay_mem": DECAY_RANGE,
    "decay_syn": DECAY_RANGE,
    "refractory": (0, 255),
    "bias": ("s", _S),
    "plastic_post": (0, 1),
}

#: Per-source parameters, shape (m+n,).
SOURCE_FIELDS = {"plastic_pre": (0, 1)}

#: Global learning parameters, scalars.
GLOBAL_FIELDS = {
    "learn": (0, 1),
    "a_plus": (0, 255),
    "a_minus": (0, 255),
    "stdp_shift": (0, 15),
    "decay_pre": DECAY_RANGE,
    "decay_post": DECAY_RANGE,
    "inc_pre": ("u", _T),
    "inc_post": ("u", _T),
    "trace_mode": (0, 1),
    "w_min": ("s", _W),
    "w_max": ("s", _W),
}

#: Per-neuron state, shape (n,) (spec section 4): membrane, current, refractory
#: counter (it counts down from a `refractory` parameter), last step's spike,
#: post trace.
STATE_FIELDS = {
    "v": ("s", _S),
    "i": ("s", _S),
    "r": NEURON_FIELDS["refractory"],
    "s": (0, 1),
    "y": ("u", _T),
}

#: Per-source state, shape (m+n,): the pre trace.
SOURCE_STATE_FIELDS = {"x": ("u", _T)}

#: Stimulus generator parameters (spec section 3): they belong to a stimulus, not
#: to the network. `rate` is per input, shape (m,); `seed` is a scalar.
STIMULUS_FIELDS = {
    "rate": (0, 65535),
    "seed": (1, (1 << 32) - 1),
}

#: The generator's state (spec section 4): 32 bits, never 0.
GENERATOR_STATE_FIELDS = {"g": (1, (1 << 32) - 1)}

#: The widths stored in a network file.
WIDTH_FIELDS = ("state_bits", "weight_bits", "trace_bits")


def field_range(spec, widths):
    """The inclusive (lo, hi) range of a field spec under the given widths."""
    kind, arg = spec
    if kind == "s":
        bits = getattr(widths, arg)
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if kind == "u":
        return 0, (1 << getattr(widths, arg)) - 1
    return kind, arg


def field_bits(spec, widths):
    """``(bits, signed)``: the width a field spec needs under the given widths
    (a literal range ``(0, hi)`` takes the bits of `hi`)."""
    kind, arg = spec
    if kind in ("s", "u"):
        return getattr(widths, arg), kind == "s"
    lo, hi = spec
    if lo < 0:
        raise ValueError(f"field range {lo}..{hi}: a literal range starts at 0 (signed ranges are ('s', width))")
    return max(1, hi.bit_length()), False


def range_text(spec, widths):
    """Human text of a field's allowed range, naming the width it comes from."""
    lo, hi = field_range(spec, widths)
    if spec[0] == "s":
        return f"{lo}..{hi} (signed {getattr(widths, spec[1])}-bit, {spec[1]})"
    if spec[0] == "u":
        return f"{lo}..{hi} (unsigned {getattr(widths, spec[1])}-bit, {spec[1]})"
    return f"{lo}..{hi}"
