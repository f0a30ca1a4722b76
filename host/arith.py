"""The arithmetic of the core model (spec section 2), on ints and numpy arrays.

Every function works elementwise on Python ints or on integer numpy arrays
(use int64: the model's exact intermediates always fit, see `spec.WIDTH_LIMITS`).
`>>` on Python ints and numpy signed integers is already the arithmetic shift
(floor division by a power of two), which is what the spec asks for.
"""

import numpy as np

__all__ = ["DECAY_ONE", "sat", "usat", "clamp", "trunc", "decay", "trace_update", "xorshift32"]

#: `decay(x, d)` keeps the fraction `(DECAY_ONE - d) / DECAY_ONE` of `x` (spec section 2).
DECAY_ONE = 4096
_DECAY_SHIFT = 12


def sat(x, bits):
    """Saturate to a signed `bits`-bit integer."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(x, lo), hi)


def usat(x, bits):
    """Saturate to an unsigned `bits`-bit integer."""
    hi = (1 << bits) - 1
    if isinstance(x, np.ndarray):
        return np.clip(x, 0, hi)
    return min(max(x, 0), hi)


def clamp(x, lo, hi):
    """`min(max(x, lo), hi)`."""
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(x, lo), hi)


def trunc(p, k):
    """`p / 2**k` rounded toward zero: `p >> k` for `p >= 0`, else `-((-p) >> k)`."""
    if isinstance(p, np.ndarray):
        # Add 2**k - 1 to the negative values, then floor: one pass fewer than a where.
        return (p + ((p >> 63) & ((1 << k) - 1))) >> k
    return p >> k if p >= 0 else -((-p) >> k)


def decay(x, d):
    """`trunc(x * (4096 - d), 12)`: the fraction `d / 4096` of `x` lost, rounded toward zero.

    `d == 0` keeps `x`; `d == 4096` clears it.
    """
    if isinstance(x, np.ndarray) or isinstance(d, np.ndarray):
        x = np.asarray(x, dtype=np.int64)
        return trunc(x * (DECAY_ONE - np.asarray(d, dtype=np.int64)), _DECAY_SHIFT)
    return trunc(x * (DECAY_ONE - d), _DECAY_SHIFT)


def trace_update(x, d, spiked, inc, bits, mode):
    """One step of an STDP trace (spec section 5, `tr`).

    Mode 0 (all-pairs): `usat(decay(x, d) + inc * spiked, bits)`.
    Mode 1 (nearest): `inc` where spiked, else `decay(x, d)`.
    """
    if mode == 0:
        if isinstance(spiked, np.ndarray):
            return usat(decay(x, d) + np.where(spiked, inc, 0), bits)
        return usat(decay(x, d) + (inc if spiked else 0), bits)
    if isinstance(spiked, np.ndarray):
        return np.where(spiked, inc, decay(x, d))
    return inc if spiked else decay(x, d)


def xorshift32(g):
    """One step of the stimulus generator (spec section 5.0), on 32 bits.

    `g ^= g << 13; g ^= g >> 17; g ^= g << 5`, each shift left taken mod 2**32.
    Works on Python ints and on uint64/int64 numpy arrays holding 32-bit values.
    """
    mask = 0xFFFFFFFF
    g = g ^ ((g << 13) & mask)
    g = g ^ (g >> 17)
    return g ^ ((g << 5) & mask)
