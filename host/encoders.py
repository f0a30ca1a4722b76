"""Stimuli from arrays of values: rate (Poisson), regular and latency encoders.

Each encoder takes one value per input channel and returns the spikes a
stimulus file holds: a 0/1 `uint8` array of shape `(steps, m)`, which
`save_stimulus` and every device's `run` take as they are.

    rates = np.linspace(0, 50, 64)                       # Hz, one per input
    stim = poisson(rates, steps=1000, dt=1e-3, seed=0)   # (1000, 64)
    stim = regular(20, steps=1000, dt=1e-3, inputs=64)   # every 50th step
    stim = latency(pixels / 16, steps=25)                # brightest first

Units. Rates are spikes per second (Hz) when `dt` (seconds per step) is
given, and spike probabilities per step (0..1) when it is not; either way
the probability per step `rate * dt` is at most 1, so a rate above `1 / dt`
is refused. Latency values are intensities in 0..1.

Trials. Values of shape `(trials, m)` (one row per trial) give
`(trials, steps, m)`: a batch of trials, each run from the reset state
(`Device.run_trials`, a stimulus file's trials axis); `concatenate_trials`
lays them end to end in one run instead, with a gap of silence.

On-chip inputs. The stimulus generator of core model 2 (spec section 5.0)
draws Poisson inputs on the device: `generator_rates` turns rates into the
generator's `rate[k]` (`round(65536 * rate * dt)`, at most 65535), so the
host sends no input spikes at all, and `trial_seeds` gives a batch of trials
seeds that never share random numbers.

    rates = generator_rates(20, dt=1e-3, inputs=64)       # 1311 each: 20 Hz
    dev.run(None, steps=1000, rates=rates, seed=1)

Every bad value (NaN, infinity, negative, a probability above 1, a rate above
`1 / dt`) is a `NetworkError` naming the argument, the index and the range.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import STIMULUS_FIELDS

from .errors import NetworkError

__all__ = ["poisson", "regular", "latency", "step_probabilities", "check_intensities", "concatenate_trials",
           "load_values", "generator_rates", "trial_seeds", "RATE_ONE", "MAX_RATE"]

#: The generator's `rate[k]` is a probability in 1/65536ths per step (spec section 3): input k spikes
#: when the top 16 bits of the state are below it.
RATE_ONE = 1 << 16
#: The largest `rate[k]` (a probability of 65535/65536 per step; a rate of 1 per step is clamped to it).
MAX_RATE = STIMULUS_FIELDS["rate"][1]


def _values(name, values, inputs):
    """`values` as float64 `(m,)` or `(trials, m)`; a scalar is repeated over `inputs` channels."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NetworkError(f"{name}: not an array of numbers ({exc})") from None
    if inputs is not None:
        inputs = _whole(f"{name}: inputs", inputs, 1)
        if arr.ndim == 0:
            arr = np.full(inputs, float(arr))
        elif arr.shape[-1] != inputs:
            raise NetworkError(f"{name}: shape {arr.shape} does not have inputs = {inputs} values per row")
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise NetworkError(f"{name}: shape {arr.shape} is neither (m,) nor (trials, m) with m >= 1 "
                           "(a scalar needs inputs=m)")
    return arr


def _check_range(name, arr, hi, allowed):
    """Refuse NaN, infinity, negative values and values above `hi`, naming the first."""
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > hi)
    if bad.any():
        idx = np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape)
        where = f"{name}[{', '.join(str(int(i)) for i in idx)}]"
        raise NetworkError(f"{where} = {float(arr[idx])!r} is out of range: allowed {allowed}")


def _whole(name, value, lo):
    """A whole number of at least `lo` (steps, windows, channel counts)."""
    if isinstance(value, (bool, np.bool_)):
        raise NetworkError(f"{name} = {value!r} is out of range: allowed a whole number, {lo} or more")
    try:
        number = float(value)
        whole = math.isfinite(number) and number.is_integer() and number >= lo
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise NetworkError(f"{name} = {value!r} is out of range: allowed a whole number, {lo} or more")
    return int(number)


def check_intensities(values: ArrayLike, *, inputs: int | None = None, name: str = "values") -> np.ndarray:
    """`values` as float64 `(m,)` or `(trials, m)` intensities, each in 0..1 (`NetworkError` otherwise)."""
    arr = _values(name, values, inputs)
    _check_range(name, arr, 1.0, "an intensity, 0..1")
    return arr


def step_probabilities(rates: ArrayLike, dt: float | None = None, *, inputs: int | None = None,
                       name: str = "rates") -> np.ndarray:
    """Spike probability per step of each input: `rates * dt` (Hz and seconds), or `rates` without `dt`.

    `rates` is `(m,)`, `(trials, m)` or a scalar with `inputs=m`. Returns
    float64 probabilities in 0..1 of the same shape; a rate above `1 / dt`
    (more than one spike per step) is refused.
    """
    arr = _values(name, rates, inputs)
    if dt is None:
        _check_range(name, arr, 1.0, "a probability per step, 0..1 (give dt to use Hz)")
        return arr
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise NetworkError(f"dt = {dt!r} is not a time step: allowed a positive, finite number of seconds") from None
    if not (math.isfinite(dt) and dt > 0):
        raise NetworkError(f"dt = {dt!r} is not a time step: allowed a positive, finite number of seconds")
    _check_range(name, arr, 1.0 / dt, f"0..{1.0 / dt:g} Hz (1/dt: at most one spike per step of {dt:g} s)")
    return np.minimum(arr * dt, 1.0)   # rate == 1/dt may round a hair above 1


def _shaped(probabilities, steps):
    """The output shape for `(m,)` or `(trials, m)` values."""
    return (steps, probabilities.shape[0]) if probabilities.ndim == 1 else (probabilities.shape[0], steps,
                                                                            probabilities.shape[1])


def poisson(rates: ArrayLike, steps: int, dt: float | None = None, *, seed: int | None = None,
            inputs: int | None = None) -> np.ndarray:
    """Rate coding: each input spikes in each step independently with probability `rates * dt`.

    `rates` in Hz with `dt` in seconds, or probabilities per step without
    `dt` (see `step_probabilities`). The spikes are drawn on the host by
    numpy's default generator from `seed`, so one seed gives one stimulus.
    Returns uint8 `(steps, m)`, or `(trials, steps, m)` for `(trials, m)` rates.
    """
    p = step_probabilities(rates, dt, inputs=inputs)
    steps = _whole("steps", steps, 0)
    rng = np.random.default_rng(seed)
    if p.ndim == 1:
        return (rng.random((steps, p.shape[0])) < p).astype(np.uint8)
    return (rng.random((p.shape[0], steps, p.shape[1])) < p[:, None, :]).astype(np.uint8)


def generator_rates(rates: ArrayLike, dt: float | None = None, *, inputs: int | None = None) -> np.ndarray:
    """The stimulus generator's `rate[k]` for Poisson inputs of `rates` (spec sections 3 and 5.0).

    Units as `poisson` (Hz with `dt`, probabilities per step without). Returns
    int64 `round(65536 * rates * dt)`, clamped to 65535 (`MAX_RATE`): a
    probability per step of `rate[k] / 65536`, within 1/131072 of the one asked
    for (a rate of one spike per step gets 65535/65536). `(m,)`, or
    `(trials, m)` for `(trials, m)` rates: a stimulus file's `rates`.
    """
    p = step_probabilities(rates, dt, inputs=inputs)
    return np.minimum(np.rint(p * RATE_ONE), MAX_RATE).astype(np.int64)


def trial_seeds(seed: int, trials: int, steps: int, inputs: int) -> np.ndarray:
    """Seeds of `trials` trials of `steps` steps on `inputs` inputs that share no random numbers.

    Trial 0 starts from `seed`, trial `r` from the generator state that trial
    `r - 1` ends with (`seed` advanced `r * steps * inputs` times, since the
    generator advances once per input per step): the trials together draw the
    numbers one long run from `seed` would. Returns int64 `(trials,)`, a
    stimulus file's `seed` of a batch of trials.
    """
    from .generator import advance, check_seed
    seed = check_seed(seed)
    if seed is None:
        raise NetworkError("seed: give the first trial's seed, 1..4294967295")
    trials, steps, inputs = _whole("trials", trials, 1), _whole("steps", steps, 0), _whole("inputs", inputs, 0)
    # xorshift32 is linear over GF(2): the jump of steps * inputs advances is the matrix whose
    # column b is basis vector b advanced that far, so each further trial costs 32 XORs at most.
    columns = [advance(1 << b, steps * inputs) for b in range(32)] if trials > 1 else []
    seeds = [seed]
    for _ in range(trials - 1):
        g, jumped, b = seeds[-1], 0, 0
        while g:
            if g & 1:
                jumped ^= columns[b]
            g >>= 1
            b += 1
        seeds.append(jumped)
    return np.array(seeds, np.int64)


def regular(rates: ArrayLike, steps: int, dt: float | None = None, *, inputs: int | None = None) -> np.ndarray:
    """Evenly spaced spikes: input `k` spikes once every `1 / (rates[k] * dt)` steps.

    Units as `poisson`. With a probability per step `p`, input `k` spikes at
    the steps `t` where `floor((t + 1) * p)` rises: `floor(steps * p)`
    spikes, the first at the end of the first period (step `ceil(1/p) - 1`;
    `p = 1` spikes in every step, `p = 0` never). Deterministic.
    Returns uint8 `(steps, m)`, or `(trials, steps, m)` for `(trials, m)` rates.
    """
    p = step_probabilities(rates, dt, inputs=inputs)
    steps = _whole("steps", steps, 0)
    t = np.arange(steps + 1, dtype=np.float64).reshape((-1, 1) if p.ndim == 1 else (1, -1, 1))
    # The small slack keeps 50 * 0.02 == 1 from landing at 0.9999999999999999.
    counts = np.floor(t * (p if p.ndim == 1 else p[:, None, :]) + 1e-9)
    return (np.diff(counts, axis=-2) > 0).astype(np.uint8)


def latency(values: ArrayLike, steps: int, *, window: int | None = None, threshold: float = 0.0,
            inputs: int | None = None) -> np.ndarray:
    """Latency coding: one spike per input, earlier for larger values, within `window` steps.

    `values` are intensities in 0..1. An input with a value above
    `threshold` spikes once, at step `round((1 - value) * (window - 1))`: a
    value of 1 at step 0, a value just above 0 at step `window - 1`; an input
    at or below `threshold` stays silent. `window` defaults to `steps`; the
    steps after it are silence. Scale raw intensities first (for example
    `pixels / 16` for 4-bit pixels).
    Returns uint8 `(steps, m)`, or `(trials, steps, m)` for `(trials, m)` values.
    """
    arr = check_intensities(values, inputs=inputs)
    steps = _whole("steps", steps, 1)
    window = steps if window is None else _whole("window", window, 1)
    if window > steps:
        raise NetworkError(f"window = {window} is out of range: allowed 1..{steps} (the steps)")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        threshold = math.nan
    if not 0.0 <= threshold < 1.0:
        raise NetworkError(f"threshold = {threshold!r} is out of range: allowed 0 <= threshold < 1")
    at = np.rint((1.0 - arr) * (window - 1)).astype(np.int64)
    out = np.zeros(_shaped(arr, steps), np.uint8)
    fire = arr > threshold
    if arr.ndim == 1:
        k = np.flatnonzero(fire)
        out[at[k], k] = 1
    else:
        trial, k = np.nonzero(fire)
        out[trial, at[trial, k], k] = 1
    return out


def concatenate_trials(stimuli: ArrayLike, gap: int = 0) -> np.ndarray:
    """Trials `(trials, steps, m)` laid end to end in time, `gap` steps of silence between two.

    One run of them carries the state from one trial into the next (a batch
    of trials, `Device.run_trials`, resets it before each).

    Trial `r` starts at step `r * (steps + gap)`; the result has
    `trials * steps + (trials - 1) * gap` steps. A `(steps, m)` array is one
    trial and is returned as it is.
    """
    stim = np.asarray(stimuli)
    if stim.ndim == 2:
        return stim.astype(np.uint8)
    if stim.ndim != 3:
        raise NetworkError(f"trials: shape {stim.shape} is not (trials, steps, m)")
    gap = _whole("gap", gap, 0)
    trials, steps, m = stim.shape
    if trials == 0:
        return np.zeros((0, m), np.uint8)
    out = np.zeros((trials * steps + (trials - 1) * gap, m), np.uint8)
    for r in range(trials):
        out[r * (steps + gap):r * (steps + gap) + steps] = stim[r]
    return out


def load_values(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an array of values (one per input; one row per trial) from .npy, .npz or .csv.

    .npy: one array. .npz: the array `values`, or the only array it holds.
    .csv: numbers separated by commas, one row per trial. Returns float64
    `(trials, m)`: a single row (a 1-D array or a one-line file) is one trial.
    The file is checked before it is read, as every input of neurofabric
    (a regular file, its declared size within `files.MAX_FILE_VALUES`, no
    object arrays).
    """
    from . import files
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise NetworkError(f"values file {str(path)!r}: format {suffix or 'without a suffix'!r} is not "
                           "supported; allowed: .npy, .npz, .csv")
    if suffix == ".npz":
        arrays = files.read_npz(path, "values")
        if "values" in arrays:
            arr = arrays["values"]
        elif len(arrays) == 1:
            arr = next(iter(arrays.values()))
        else:
            raise NetworkError(f"values file {str(path)!r}: holds {', '.join(sorted(arrays)) or 'nothing'}; "
                               "name the array 'values'")
    else:
        with files._open_regular(path, "values") as fh:
            if os.fstat(fh.fileno()).st_size > files.MAX_FILE_BYTES:
                raise NetworkError(f"values file {str(path)!r} is larger than MAX_FILE_BYTES "
                                   f"({files.MAX_FILE_BYTES:,})")
            arr = _read_npy(fh, path) if suffix == ".npy" else _read_csv(fh, path)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise NetworkError(f"values file {str(path)!r}: dtype {arr.dtype} is not a real number type")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or 0 in arr.shape:
        raise NetworkError(f"values file {str(path)!r}: shape {arr.shape} is neither (m,) nor (trials, m)")
    return arr.astype(np.float64)


def _read_npy(fh, path):
    from . import files
    try:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(fh)
    except (ValueError, OSError, SyntaxError, EOFError) as exc:
        raise NetworkError(f"values file {str(path)!r} is not a .npy file ({exc})") from None
    if dtype.hasobject:
        raise NetworkError(f"values file {str(path)!r}: object arrays are refused (they would need unpickling)")
    if math.prod(shape) > files.MAX_FILE_VALUES:
        raise NetworkError(f"values file {str(path)!r} declares {math.prod(shape):,} values, more than "
                           f"MAX_FILE_VALUES ({files.MAX_FILE_VALUES:,})")
    fh.seek(0)
    try:
        return np.load(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise NetworkError(f"values file {str(path)!r} is not a readable .npy file ({exc})") from None


def _read_csv(fh, path):
    try:
        text = fh.read().decode("utf-8")
    except UnicodeDecodeError:
        raise NetworkError(f"values file {str(path)!r} is not a text file of numbers") from None
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise NetworkError(f"values file {str(path)!r} holds no numbers")
    try:
        table = [[float(cell) for cell in row.split(",")] for row in rows]
    except ValueError as exc:
        raise NetworkError(f"values file {str(path)!r}: not numbers separated by commas ({exc})") from None
    if len({len(row) for row in table}) != 1:
        raise NetworkError(f"values file {str(path)!r}: rows of different lengths "
                           f"({', '.join(sorted({str(len(r)) for r in table}))} values)")
    return np.array(table, dtype=np.float64)
