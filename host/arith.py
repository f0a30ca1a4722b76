"""The arithmetic of the core model (spec section 2), on ints and numpy arrays.

Every function works elementwise on Python ints or on integer numpy arrays
(use int64: the model's exact intermediates always fit, see `spec.WIDTH_LIMITS`).
`>>` on Python ints and numpy signed integers is already the arithmetic shift
(floor division by a power of two), which is what the spec asks for.
"""

import numpy as np

__all__ = ["NO_DECAY", "sat", "usat", "clamp", "decay", "trace_update"]

#: The decay shift that means "no decay" (spec section 2).
NO_DECAY = 31


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


def decay(x, k):
    """`x - (x >> k)`, or `x` unchanged when `k == 31`; `k == 0` clears `x`."""
    if isinstance(x, np.ndarray) or isinstance(k, np.ndarray):
        x = np.asarray(x, dtype=np.int64)
        k = np.asarray(k, dtype=np.int64)
        return np.where(k == NO_DECAY, x, x - (x >> np.minimum(k, 62)))
    return x if k == NO_DECAY else x - (x >> k)


def trace_update(x, k, spiked, inc, bits, mode):
    """One step of an STDP trace (spec section 5, `tr`).

    Mode 0 (all-pairs): `usat(decay(x, k) + inc * spiked, bits)`.
    Mode 1 (nearest): `inc` where spiked, else `decay(x, k)`.
    """
    if mode == 0:
        if isinstance(spiked, np.ndarray):
            return usat(decay(x, k) + np.where(spiked, inc, 0), bits)
        return usat(decay(x, k) + (inc if spiked else 0), bits)
    if isinstance(spiked, np.ndarray):
        return np.where(spiked, inc, decay(x, k))
    return inc if spiked else decay(x, k)
