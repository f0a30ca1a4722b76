"""The integer network of the core model (spec sections 1, 3 and 6).

A `Network` is exactly what the hardware holds: the weight matrix `(m+n, n)`,
per-neuron and per-source parameters, the global learning registers and the
bit widths. Building one checks every field against its range and raises
`NetworkError` naming the field, the index, the value and the allowed range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import (GLOBAL_FIELDS, NEURON_FIELDS, SOURCE_FIELDS, WIDTH_FIELDS,
                                        WIDTH_LIMITS, Widths, field_range, range_text)

from .errors import NetworkError

__all__ = ["Network", "check_integer_array", "check_whole_numbers", "random_network"]


_INT64 = np.iinfo(np.int64)


def _where(name, arr, idx):
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]" if arr.ndim else name


def _first(arr, bad):
    """The index of the first True of `bad` in `arr`, and how many there are."""
    return np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape), int(bad.sum())


def check_integer_array(name, value, shape=None, lo=None, hi=None, allowed=None):
    """Return `value` as an int64 array after checking dtype, shape and range.

    Only integer (or bool) dtypes are accepted: files hold integers (spec
    section 6). `shape` entries may be None (any length). `allowed` is the
    range text used in the message; it defaults to `lo..hi`. Values are
    checked before any cast: without a range, against int64's, so a uint64 of
    2**63 or more is refused instead of wrapping to a negative number.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise NetworkError(f"{name}: not an array of integers ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise NetworkError(f"{name}: dtype {arr.dtype} is not an integer type "
                           "(store integers; the core has no floating point)")
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
            raise NetworkError(f"{name}: shape {arr.shape} does not match the expected {want}")
    if lo is None:
        lo, hi = int(_INT64.min), int(_INT64.max)
        allowed = allowed or f"{lo}..{hi} (int64)"
    if arr.size:
        # numpy compares Python ints with any integer dtype exactly (no wrap).
        bad = (arr < lo) | (arr > hi)
        if bad.any():
            idx, count = _first(arr, bad)
            more = f" ({count} values out of range in all)" if count > 1 else ""
            raise NetworkError(f"{_where(name, arr, idx)} = {int(arr[idx])} is out of range: allowed "
                               f"{allowed or f'{lo}..{hi}'}{more}")
    return arr.astype(np.int64)


def check_whole_numbers(name, value, shape=None, lo=None, hi=None, allowed=None):
    """As `check_integer_array`, but also accept floats that are whole numbers.

    For values given in Python (builder arguments, command-line options):
    `300.0` is taken as 300, while `300.7`, NaN and infinity are refused
    instead of being truncated or wrapped.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise NetworkError(f"{name}: not an array of integers ({exc})") from None
    if arr.dtype != object and np.issubdtype(arr.dtype, np.floating):
        for bad, what in ((np.isnan(arr), "is not a number"), (np.isinf(arr), "is infinite"),
                          (np.isfinite(arr) & (arr != np.round(arr)), "is not a whole number")):
            if bad.any():
                idx, _ = _first(arr, bad)
                raise NetworkError(f"{_where(name, arr, idx)} = {float(arr[idx])!r} {what}: the core holds "
                                   "integers; round the value explicitly")
        beyond = (arr < float(_INT64.min)) | (arr >= float(_INT64.max))
        if beyond.any():
            idx, _ = _first(arr, beyond)
            raise NetworkError(f"{_where(name, arr, idx)} = {float(arr[idx]):g} is out of range: allowed "
                               f"{allowed or (f'{lo}..{hi}' if lo is not None else 'int64')}")
        arr = arr.astype(np.int64)
    elif arr.dtype == object and arr.ndim == 0 and isinstance(arr.item(), int):
        # A Python int too large for int64.
        raise NetworkError(f"{name} = {arr.item()} is out of range: allowed "
                           f"{allowed or (f'{lo}..{hi}' if lo is not None else 'int64')}")
    return check_integer_array(name, arr, shape, lo, hi, allowed)


@dataclass(eq=False)
class Network:
    """An integer network for the core, checked on construction.

    Sources `0..m-1` are the inputs, source `m + j` is neuron `j`.
    `weights[k, j]` is the synapse from source `k` to neuron `j`.
    `extras` carries keys the core does not use (names, descriptions, a
    quantisation report); they survive a save and load.

    Fields may be given as any integer array-likes (a file's 0-d arrays for
    the globals); checking stores them as the int64 arrays and ints that the
    annotations name.
    """

    weights: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    reset_mode: np.ndarray
    decay_mem: np.ndarray
    decay_syn: np.ndarray
    refractory: np.ndarray
    bias: np.ndarray
    plastic_post: np.ndarray
    plastic_pre: np.ndarray
    learn: int = 0
    a_plus: int = 0
    a_minus: int = 0
    stdp_shift: int = 0
    decay_pre: int = 0
    decay_post: int = 0
    inc_pre: int = 0
    inc_post: int = 0
    trace_mode: int = 0
    w_min: int = -128
    w_max: int = 127
    widths: Widths = field(default_factory=Widths)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- sizes ---------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of neurons."""
        return self.weights.shape[1]

    @property
    def m(self) -> int:
        """Number of external inputs."""
        return self.weights.shape[0] - self.weights.shape[1]

    @property
    def state_bits(self) -> int:
        """S, the width of v and i (signed)."""
        return self.widths.state_bits

    @property
    def weight_bits(self) -> int:
        """W, the width of a weight (signed)."""
        return self.widths.weight_bits

    @property
    def trace_bits(self) -> int:
        """T, the width of an STDP trace (unsigned)."""
        return self.widths.trace_bits

    # -- checking ------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; raise `NetworkError` on the first problem.

        Run on construction, and again by every device's `load`, so a
        `Network` whose fields were edited after it was built is checked
        before anything runs it. Fields come back as int64 arrays and ints.
        """
        if not isinstance(self.widths, Widths):
            raise NetworkError(f"widths: {self.widths!r} is not a Widths(state_bits, weight_bits, trace_bits)")
        for name in WIDTH_FIELDS:
            lo, hi = WIDTH_LIMITS[name]
            check_integer_array(name, getattr(self.widths, name), (), lo, hi)
        self.widths = Widths(*(int(getattr(self.widths, f)) for f in WIDTH_FIELDS))
        spec_w = ("s", "weight_bits")
        lo, hi = field_range(spec_w, self.widths)
        w = check_integer_array("weights", self.weights, (None, None), lo, hi, range_text(spec_w, self.widths))
        if w.shape[1] < 1 or w.shape[0] < w.shape[1]:
            raise NetworkError(f"weights: shape {w.shape} is not (m+n, n) with n >= 1 and m >= 0")
        n, m = w.shape[1], w.shape[0] - w.shape[1]
        self.weights = w
        sized = [(name, spec, (n,)) for name, spec in NEURON_FIELDS.items()]
        sized += [(name, spec, (m + n,)) for name, spec in SOURCE_FIELDS.items()]
        for name, spec, shape in sized:
            lo, hi = field_range(spec, self.widths)
            try:
                setattr(self, name, check_integer_array(
                    name, getattr(self, name), shape, lo, hi, range_text(spec, self.widths)))
            except NetworkError as exc:
                if "shape" not in str(exc):
                    raise
                raise NetworkError(f"{exc} (n = {n} neurons and m = {m} inputs, from the shape "
                                   f"{w.shape} of weights)") from None
        for name, spec in GLOBAL_FIELDS.items():
            lo, hi = field_range(spec, self.widths)
            value = check_integer_array(name, getattr(self, name), (), lo, hi,
                                        range_text(spec, self.widths))
            setattr(self, name, int(value))
        if self.w_min > self.w_max:
            raise NetworkError(f"w_min = {self.w_min} is greater than w_max = {self.w_max}: "
                               "need w_min <= w_max")
        if not isinstance(self.extras, dict):
            raise NetworkError("extras: must be a dict of extra arrays")

    # -- derived facts -------------------------------------------------------
    def plastic_mask(self) -> np.ndarray:
        """Boolean `(m+n, n)`: which synapses may learn (plastic_pre x plastic_post)."""
        return np.outer(self.plastic_pre.astype(bool), self.plastic_post.astype(bool))

    def accumulator_bits(self) -> int:
        """Bits of the exact synaptic sum of spec step 2: W + ceil(log2(m+n)) + 1."""
        return self.weight_bits + int(np.ceil(np.log2(max(self.m + self.n, 1)))) + 1

    def copy(self) -> Network:
        """A deep copy (arrays copied)."""
        kw = {name: np.array(getattr(self, name)) for name in self.array_fields()}
        kw.update({name: getattr(self, name) for name in GLOBAL_FIELDS})
        return Network(widths=self.widths, extras=dict(self.extras), **kw)

    @staticmethod
    def array_fields() -> tuple[str, ...]:
        """Names of the array fields, in file order."""
        return ("weights", *NEURON_FIELDS, *SOURCE_FIELDS)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every spec section 6 key as a numpy array (plus the extras)."""
        out = {}
        for name in self.array_fields():
            out[name] = np.asarray(getattr(self, name), dtype=np.int64)
        for name in GLOBAL_FIELDS:
            out[name] = np.array(getattr(self, name), dtype=np.int64)
        for name in WIDTH_FIELDS:
            out[name] = np.array(getattr(self.widths, name), dtype=np.int64)
        for key, value in self.extras.items():
            if key in out:
                raise NetworkError(f"extras: key {key!r} clashes with a network field")
            out[key] = np.asarray(value)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, ArrayLike]) -> Network:
        """Build from a mapping of spec section 6 keys; unknown keys become extras."""
        known = set(cls.array_fields()) | set(GLOBAL_FIELDS) | set(WIDTH_FIELDS)
        missing = [k for k in (*cls.array_fields(), *GLOBAL_FIELDS, *WIDTH_FIELDS) if k not in arrays]
        if missing:
            raise NetworkError(f"missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        widths = {}
        for name in WIDTH_FIELDS:
            lo, hi = WIDTH_LIMITS[name]
            widths[name] = int(check_integer_array(name, arrays[name], (), lo, hi))
        kw = {name: arrays[name] for name in cls.array_fields()}
        kw.update({name: arrays[name] for name in GLOBAL_FIELDS})
        extras = {k: v for k, v in arrays.items() if k not in known}
        return cls(widths=Widths(**widths), extras=extras, **kw)

    def summary(self) -> dict[str, int]:
        """A dict of facts for `neurofabric info`."""
        plastic = self.plastic_mask()
        nonzero = self.weights != 0
        return {
            "neurons": self.n,
            "inputs": self.m,
            "state_bits": self.state_bits,
            "weight_bits": self.weight_bits,
            "trace_bits": self.trace_bits,
            "synapses_nonzero": int(nonzero.sum()),
            "synapses_plastic": int(plastic.sum()),
            "synapses_plastic_nonzero": int((plastic & nonzero).sum()),
            "learn": self.learn,
            "weight_memory_bits": (self.m + self.n) * self.n * self.weight_bits,
            "accumulator_bits": self.accumulator_bits(),
        }


#: Decay factors a random network favours: none, a delta memory, halving, snnTorch's
#: beta = 0.9 (410), slow leaks and the smallest leak.
_SPECIAL_DECAYS = np.array([0, 4096, 2048, 1024, 410, 128, 16, 1])


def _random_decays(rng, count):
    """Decay factors 0..4096: half from `_SPECIAL_DECAYS`, half uniform."""
    special = rng.choice(_SPECIAL_DECAYS, count)
    return np.where(rng.random(count) < 0.5, special, rng.integers(0, 4097, count))


def random_network(n: int, m: int, seed: int = 0, *, widths: Widths | None = None, learn: int | None = None,
                   density: float = 0.5, **overrides: Any) -> Network:
    """A random valid network, for tests, self-tests and benchmarks.

    Parameters are drawn so that neurons actually spike and learning actually
    changes weights; any field can be fixed with a keyword (`trace_mode=1`).
    """
    rng = np.random.default_rng(seed)
    widths = widths or Widths()
    S, W, T = widths.state_bits, widths.weight_bits, widths.trace_bits
    smax, wmax, tmax = (1 << (S - 1)) - 1, (1 << (W - 1)) - 1, (1 << T) - 1
    weights = rng.integers(-wmax - 1, wmax + 1, size=(m + n, n))
    weights[:m] = np.minimum(np.abs(weights[:m]), wmax)  # excitatory inputs, so something happens
    weights *= rng.random((m + n, n)) < density
    thr_hi = max(2, min(smax, 3 * wmax))
    kw = dict(
        weights=weights,
        threshold=rng.integers(1, thr_hi + 1, n),
        v_reset=rng.integers(-(thr_hi // 2), 1, n),
        reset_mode=rng.integers(0, 2, n),
        decay_mem=_random_decays(rng, n),
        decay_syn=_random_decays(rng, n),
        refractory=rng.choice([0, 0, 1, 2, 5], n),
        bias=rng.integers(-(thr_hi // 8), thr_hi // 8 + 1, n),
        plastic_post=rng.integers(0, 2, n),
        plastic_pre=rng.integers(0, 2, m + n),
        learn=int(rng.integers(0, 2)) if learn is None else int(learn),
        a_plus=int(rng.integers(0, 256)),
        a_minus=int(rng.integers(0, 256)),
        # Shifts that keep amplitude * trace >> shift comparable to the weights.
        stdp_shift=int(rng.integers(min(15, max(0, T + 8 - W - 2)), 16)),
        decay_pre=int(_random_decays(rng, 1)[0]),
        decay_post=int(_random_decays(rng, 1)[0]),
        inc_pre=int(rng.integers(0, tmax + 1)),
        inc_post=int(rng.integers(0, tmax + 1)),
        trace_mode=int(rng.integers(0, 2)),
    )
    w_lo, w_hi = sorted(int(v) for v in rng.integers(-wmax - 1, wmax + 1, 2))
    kw["w_min"], kw["w_max"] = w_lo, w_hi
    kw.update(overrides)
    return Network(widths=widths, **kw)
