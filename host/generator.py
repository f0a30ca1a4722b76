"""The stimulus generator of spec section 5.0, vectorised.

Each step the generator advances its 32-bit state `g` once per input of the
network, `g = xorshift32(g)`, and input `k` spikes when `(g >> 16) < rate[k]`.
The sequence of states depends only on the seed, so it can be computed ahead
of the run, many steps at a time.

xorshift32 is linear over GF(2): `g` after `j` steps is a fixed 32 x 32 bit
matrix times `g`. `sequence` uses that to compute a block of `B` consecutive
states with 32 vector XORs (one per set bit of the block's first state) from
the images of the 32 basis vectors after 1 .. B steps, instead of a Python loop
of `B` iterations; `advance` jumps `count` steps by squaring the matrix. Both
are checked against the plain `arith.xorshift32` loop in the tests.
"""

from __future__ import annotations

import functools

import numpy as np

from neurofabric.contract.model import STIMULUS_FIELDS

from .arith import xorshift32
from .network import check_whole_numbers

__all__ = ["advance", "sequence", "generate_inputs", "check_rates", "check_seed", "RATE_TEXT", "SEED_TEXT"]

_MASK = 0xFFFFFFFF
#: States computed per vector block.
_BLOCK = 4096
_images: np.ndarray | None = None   # (_BLOCK, 32) uint32: basis vector b after j+1 steps


def _block_images() -> np.ndarray:
    global _images
    if _images is None:
        state = (np.uint64(1) << np.arange(32, dtype=np.uint64))
        out = np.empty((_BLOCK, 32), np.uint32)
        for j in range(_BLOCK):
            state = xorshift32(state)
            out[j] = state
        _images = out
    return _images


def _apply(columns, g):
    """The matrix with column images `columns` (32 ints) applied to the 32-bit `g`."""
    out = 0
    b = 0
    while g:
        if g & 1:
            out ^= columns[b]
        g >>= 1
        b += 1
    return out


def _compose(a, b):
    """Columns of the matrix `a @ b` (apply `b`, then `a`)."""
    return [_apply(a, col) for col in b]


@functools.lru_cache(maxsize=64)
def _jump(count: int) -> tuple[int, ...]:
    """Columns of the matrix of `count` xorshift32 steps, by squaring the one-step matrix.

    Cached: a run without rates, and `GoldenModel.step`, advance by the same counts
    (m per step, or a chunk of steps) again and again."""
    power = [xorshift32(1 << b) for b in range(32)]   # the one-step matrix
    out = [1 << b for b in range(32)]                 # the identity
    while count:
        if count & 1:
            out = _compose(power, out)
        count >>= 1
        if count:
            power = _compose(power, power)
    return tuple(out)


def advance(g: int, count: int) -> int:
    """The generator state after `count` more xorshift32 steps from `g`."""
    g, count = int(g), int(count)
    if count < 64:
        for _ in range(count):
            g = xorshift32(g)
        return g
    return _apply(_jump(count), g)


def sequence(g: int, count: int) -> tuple[np.ndarray, int]:
    """The next `count` states after `g` (uint32, state after step 1 first) and the last one."""
    g, count = int(g), int(count)
    out = np.empty(count, np.uint32)
    if count == 0:
        return out, g
    images = _block_images()
    done = 0
    while done < count:
        size = min(_BLOCK, count - done)
        block = np.zeros(size, np.uint32)
        bits, b = g, 0
        while bits:
            if bits & 1:
                block ^= images[:size, b]
            bits >>= 1
            b += 1
        out[done:done + size] = block
        g = int(block[-1])
        done += size
    return out, g


def generate_inputs(g: int, rates: np.ndarray, steps: int) -> tuple[np.ndarray, int]:
    """The generator's input spikes for `steps` steps from state `g`.

    `rates` is the (m',) array of `rate[k]`; returns bool `(steps, m')` and the
    state after the last step. With all rates 0 no input spikes, but the
    state still advances `m'` times per step.
    """
    rates = np.asarray(rates, np.int64)
    m = rates.shape[0]
    if m == 0 or steps == 0:
        return np.zeros((steps, m), bool), int(g)
    if not rates.any():
        return np.zeros((steps, m), bool), advance(g, steps * m)
    states, g = sequence(g, steps * m)
    return (states.reshape(steps, m) >> 16) < rates, g


#: The allowed ranges of `rate[k]` and `seed`, as error messages name them.
RATE_TEXT = f"{STIMULUS_FIELDS['rate'][0]}..{STIMULUS_FIELDS['rate'][1]} (rate[k] / 65536 per step)"
SEED_TEXT = f"{STIMULUS_FIELDS['seed'][0]}..{STIMULUS_FIELDS['seed'][1]} (the generator state is never 0)"


def check_rates(rates, m: int) -> np.ndarray:
    """`rates` as an int64 `(m,)` array of 0 .. 65535 (None: all 0); `NetworkError` otherwise."""
    if rates is None:
        return np.zeros(m, np.int64)
    lo, hi = STIMULUS_FIELDS["rate"]
    return check_whole_numbers("rates", rates, (m,), lo, hi, RATE_TEXT)


def check_seed(seed) -> int | None:
    """`seed` as an int of 1 .. 2**32 - 1, or None; `NetworkError` otherwise."""
    if seed is None:
        return None
    lo, hi = STIMULUS_FIELDS["seed"]
    return int(check_whole_numbers("seed", seed, (), lo, hi, SEED_TEXT))
