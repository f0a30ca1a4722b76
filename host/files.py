"""Network, stimulus and recording files (spec section 6): NumPy `.npz` archives.

Every loader refuses bad input with a `NetworkError` that names the file, the
field, the index and the allowed range; a truncated or non-npz file is an
error with a message, never a traceback.

Loaders check before they load: each member's declared shape and dtype are
read from its `.npy` header first, and a file whose arrays are declared
larger than the network they describe implies, or than `MAX_FILE_VALUES` and
`MAX_FILE_BYTES` in all, is refused before any of its data is decompressed
(a few hundred kilobytes of zeros can declare gigabytes). Object arrays are
refused: they would need unpickling. Writers are atomic (`safe_io`).
"""

from __future__ import annotations

import logging
import math
import os
import stat
import zipfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import (CORE_MODEL_VERSION, DECAY_ONE, GLOBAL_FIELDS, NEURON_FIELDS,
                                        SOURCE_FIELDS, STIMULUS_FIELDS, WIDTH_FIELDS)

from .device import Device
from .generator import RATE_TEXT, SEED_TEXT
from .errors import NetworkError
from .golden import Recording, check_stimulus
from .network import Network, check_integer_array
from .safe_io import atomic_output


__all__ = ["load_network", "save_network", "load_stimulus", "save_stimulus", "Stimulus",
           "load_recording", "save_recording", "read_npz", "read_npz_headers", "convert_core_model_1",
           "Conversion", "CORE_MODEL_1_DECAYS", "MAX_FILE_VALUES", "MAX_FILE_BYTES"]

logger = logging.getLogger(__name__)

#: The most values the arrays of one file may declare in all: 2**28, 2 GiB once
#: held as int64 as the loaders hold them. The largest core a board here holds
#: (512 neurons, 512 inputs) has 2**19 weights; a recording of a million steps
#: of 256 neurons has 2**28 spikes. Read when a file is loaded, so a program
#: that means to load more can raise it; writers warn past it.
MAX_FILE_VALUES = 1 << 28
#: The most bytes the arrays of one file may declare in all (strings included).
MAX_FILE_BYTES = 2 << 30
#: The most members an archive may have (a network file has 24 and a few extras).
MAX_MEMBERS = 1024


class _Malformed(Exception):
    """A member that is not a readable .npy array (turned into a NetworkError)."""


def _member_key(info):
    return info.filename[:-4] if info.filename.endswith(".npy") else info.filename


def _read_header(zf, info):
    """The declared `(shape, dtype, header bytes)` of one member, from its .npy header only."""
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
        except ValueError:
            raise _Malformed("not a .npy array") from None
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise _Malformed(f".npy format version {version[0]}.{version[1]} is not supported")
        header_bytes = fh.tell()
    if dtype.hasobject:
        raise _Malformed("object arrays are refused (they would need unpickling)")
    return tuple(int(s) for s in shape), dtype, header_bytes


def _open_regular(path, what):
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NetworkError(f"{what} file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise NetworkError(f"{what} file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise NetworkError(f"{what} file {str(path)!r} is a folder, not an .npz file")
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO would block until something writes to it.
        raise NetworkError(f"{what} file {str(path)!r} is not a regular file")
    try:
        return open(path, "rb")
    except PermissionError:
        raise NetworkError(f"{what} file {str(path)!r} cannot be read: permission denied") from None
    except OSError as exc:
        raise NetworkError(f"{what} file {str(path)!r} cannot be read: {exc.strerror or exc}") from None


def read_npz_headers(path, what):
    """The declared `{key: (shape, dtype)}` of an `.npz` file's arrays, without reading their data.

    Refuses (`NetworkError`) a file that is not an archive of .npy arrays, a
    member that is an object array or is not a .npy array, and declared sizes
    beyond `MAX_FILE_VALUES` or `MAX_FILE_BYTES` in all.
    """
    return _with_archive(path, what, lambda headers, members, zf: headers)


def _not_readable(path, what, detail):
    return NetworkError(f"{what} file {str(path)!r} is not a readable NumPy .npz archive ({detail})")


def _checked_headers(fh, path, what):
    if fh.read(6) == b"\x93NUMPY":
        raise NetworkError(f"{what} file {str(path)!r} is a single .npy array, "
                           "not an .npz archive of named arrays")
    fh.seek(0)
    zf = zipfile.ZipFile(fh)
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _not_readable(path, what, f"{len(infos)} members, at most {MAX_MEMBERS}")
    headers, members = {}, {}
    values = size = 0
    for info in infos:
        key = _member_key(info)
        try:
            shape, dtype, header_bytes = _read_header(zf, info)
        except _Malformed as exc:
            raise _not_readable(path, what, f"member {key!r}: {exc}") from None
        count = math.prod(shape)
        values += count
        size += count * dtype.itemsize
        if values > MAX_FILE_VALUES or size > MAX_FILE_BYTES:
            raise NetworkError(f"{what} file {str(path)!r}: {key} declares shape {shape} of {dtype} "
                               f"({count:,} values, {count * dtype.itemsize:,} bytes), beyond the limit of "
                               f"{MAX_FILE_VALUES:,} values (files.MAX_FILE_VALUES) and {MAX_FILE_BYTES:,} bytes "
                               "(files.MAX_FILE_BYTES) for all the arrays of a file")
        # The archive's directory says how many bytes the member holds.
        if count * dtype.itemsize > info.file_size - header_bytes:
            raise _not_readable(path, what, f"member {key!r} declares shape {shape} of {dtype}, more "
                                "data than it holds (truncated?)")
        headers[key], members[key] = (shape, dtype), info
    return headers, members, zf


def _read_member(zf, info):
    with zf.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def read_npz(path, what, check_headers=None):
    """Read every array of an `.npz` file into a dict, or raise `NetworkError`.

    The headers are checked first (see `read_npz_headers`), then
    `check_headers({key: (shape, dtype)})` if given, which refuses declared
    shapes that do not fit, all before any array data is read.
    """
    def read(headers, members, zf):
        if check_headers is not None:
            _prefixed(path, check_headers, headers)
        return {key: _read_member(zf, info) for key, info in members.items()}

    return _with_archive(path, what, read)


def _with_archive(path, what, func):
    """`func(headers, members, zipfile)` on the checked archive; every failure a `NetworkError`."""
    try:
        with _open_regular(path, what) as fh:
            headers, members, zf = _checked_headers(fh, path, what)
            with zf:
                return func(headers, members, zf)
    except NetworkError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError) as exc:
        # BadZipFile and EOFError for truncated archives or not a zip at all,
        # ValueError for a corrupt .npy, NotImplementedError for an unknown
        # compression method, OSError for the rest.
        raise _not_readable(path, what, f"{type(exc).__name__}: {exc}") from None


def _prefixed(path, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NetworkError as exc:
        raise NetworkError(f"{path}: {exc}") from None


def _shape_text(shape):
    return "(" + ", ".join("any" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _expect_shape(headers, key, shape, note=""):
    """Refuse a declared shape that does not match `shape` (None: any length)."""
    if key not in headers:
        return
    have = headers[key][0]
    if len(have) != len(shape) or any(w is not None and w != h for w, h in zip(shape, have)):
        raise NetworkError(f"{key}: shape {have} does not match the expected {_shape_text(shape)}{note}")


def _weights_shape(headers, key="weights"):
    """`(n, m)` from the declared shape of the weights, or None when absent."""
    if key not in headers:
        return None
    shape = headers[key][0]
    if len(shape) != 2 or shape[1] < 1 or shape[0] < shape[1]:
        raise NetworkError(f"{key}: shape {shape} is not (m+n, n) with n >= 1 and m >= 0")
    return shape[1], shape[0] - shape[1]


#: Core model 1's decay shifts and the core model 2 decay factors that replace them
#: (spec section 6, "Changes from core model 1"): per neuron, then global.
CORE_MODEL_1_DECAYS = {"k_mem": "decay_mem", "k_syn": "decay_syn", "k_pre": "decay_pre", "k_post": "decay_post"}
#: Core model 1's range of a decay shift (31: no decay).
_SHIFT_RANGE = (0, 31)

_CONVERT_HINT = ("convert it with `neurofabric convert OLD.npz -o NEW.npz`, which turns each decay shift k "
                 "into the factor d = 4096 >> k (k = 31: d = 0, no decay); the converted network's results are "
                 "close to, not identical with, core model 1's")


def _network_headers(headers, fields=None):
    """Declared shapes of a network file: every field sized by n and m from the weights.

    `fields` are the per-neuron and global field names to expect (default: core
    model 2's); `core_model` must be a scalar.
    """
    neuron_fields, global_fields = fields or (NEURON_FIELDS, GLOBAL_FIELDS)
    _expect_shape(headers, "core_model", ())
    sizes = _weights_shape(headers)
    if sizes is None:
        return
    n, m = sizes
    note = f" (n = {n} neurons and m = {m} inputs, from the shape ({m + n}, {n}) of weights)"
    for name in neuron_fields:
        _expect_shape(headers, name, (n,), note)
    for name in SOURCE_FIELDS:
        _expect_shape(headers, name, (m + n,), note)
    for name in (*global_fields, *WIDTH_FIELDS):
        _expect_shape(headers, name, ())


def _core_model_of(arrays):
    """The `core_model` of a file's arrays as an int (None when absent), checked as a 0-d integer."""
    if "core_model" not in arrays:
        return None
    return int(check_integer_array("core_model", arrays["core_model"], (), 0, int(np.iinfo(np.int64).max),
                                   "a core model number (this neurofabric: 2)"))


def _check_core_model(path, arrays):
    """Refuse (one line) a network file of another core model than this one's (spec section 6)."""
    version = _prefixed(path, _core_model_of, arrays)
    shifts = [key for key in CORE_MODEL_1_DECAYS if key in arrays]
    if version is None or version == 1:
        what = "has no core_model key" if version is None else "has core_model = 1"
        if shifts or version == 1:
            raise NetworkError(f"{path}: {what}: it is a core model 1 network (decay shifts "
                               f"{', '.join(shifts) or 'k_mem, k_syn, k_pre, k_post'}); this neurofabric runs "
                               f"core model {CORE_MODEL_VERSION}: {_CONVERT_HINT}")
        raise NetworkError(f"{path}: {what}: a core model {CORE_MODEL_VERSION} network file holds "
                           f"core_model = {CORE_MODEL_VERSION} (save_network writes it); a core model 1 file "
                           f"(decay shifts k_mem, k_syn, k_pre, k_post) needs converting: {_CONVERT_HINT}")
    if version != CORE_MODEL_VERSION:
        raise NetworkError(f"{path}: core_model = {version}: this neurofabric reads core model "
                           f"{CORE_MODEL_VERSION} network files only (spec section 6)")
    if shifts:
        raise NetworkError(f"{path}: core_model = {CORE_MODEL_VERSION}, but the file also holds core model 1's "
                           f"decay shifts {', '.join(shifts)}: a network file is of one core model; remove "
                           f"them (core model {CORE_MODEL_VERSION}'s decays are "
                           f"{', '.join(CORE_MODEL_1_DECAYS[k] for k in shifts)})")


def _network_extras(arrays, n, m):
    """Drop (with a warning) the extras neurofabric reads itself when they are malformed.

    Unknown keys are the user's and are kept as they are (spec section 6);
    `dt` is a fact about the network and is refused when it is not a time step.
    """
    if "dt" in arrays:
        dt = arrays["dt"]
        ok = dt.shape == () and (np.issubdtype(dt.dtype, np.integer) or np.issubdtype(dt.dtype, np.floating))
        if not ok or not (math.isfinite(float(dt)) and float(dt) > 0):
            shown = repr(dt.item()) if dt.shape == () else f"an array of shape {dt.shape}"
            raise NetworkError(f"dt = {shown} is not a time step: allowed a positive, finite number "
                               "of seconds")
    groups = ("group_names", "group_kinds", "group_starts", "group_sizes")
    present = [k for k in groups if k in arrays]
    if present:
        problem = _groups_problem(arrays, groups, n, m)
        if problem:
            logger.warning("ignoring the group description (%s): %s", ", ".join(present), problem)
            for key in present:
                del arrays[key]
    if "quantisation_report" in arrays:
        from .units import QuantisationReport
        report = arrays["quantisation_report"]
        try:
            if report.shape != () or report.dtype.kind != "U":
                raise ValueError("not a text")
            QuantisationReport.from_json(str(report)).lines()
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            logger.warning("ignoring the quantisation_report, which is not readable: %s", exc)
            del arrays["quantisation_report"]


def _groups_problem(arrays, groups, n, m):
    if any(k not in arrays for k in groups):
        return f"needs all of {', '.join(groups)}"
    names, kinds, starts, sizes = (arrays[k] for k in groups)
    if any(a.ndim != 1 or a.shape != names.shape for a in (kinds, starts, sizes)):
        return "not four lists of one length"
    if kinds.dtype.kind != "U" or not set(kinds.tolist()) <= {"inputs", "neurons"}:
        return "group_kinds must be 'inputs' or 'neurons'"
    if not (np.issubdtype(starts.dtype, np.integer) and np.issubdtype(sizes.dtype, np.integer)):
        return "group_starts and group_sizes must be integers"
    for kind, start, size in zip(kinds.tolist(), starts.tolist(), sizes.tolist()):
        limit = m if kind == "inputs" else n
        if start < 0 or size < 1 or start + size > limit:
            return f"a group of {kind} from {start} of size {size} does not fit 0..{limit}"
    return None


def load_network(path: str | os.PathLike[str]) -> Network:
    """Load and check a network file of core model 2 (`core_model` = 2).

    A core model 1 file (decay shifts `k_mem`, `k_syn`, `k_pre`, `k_post`, no
    `core_model`) is refused with a message naming `neurofabric convert`
    (`convert_core_model_1`); a file of another core model is refused naming it.
    """
    arrays = read_npz(path, "network", _network_headers)
    _check_core_model(path, arrays)
    del arrays["core_model"]
    network = _prefixed(path, Network.from_arrays, arrays)
    _prefixed(path, _network_extras, network.extras, network.n, network.m)
    return network


def save_network(network: Network, path: str | os.PathLike[str], *,
                 inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a network file (every spec key, `core_model` = 2, plus the network's extras).

    The write is atomic and refuses to replace anything but a regular file,
    or any of `inputs` (see `safe_io.atomic_output`).
    """
    arrays = network.to_arrays()
    clashes = [key for key in ("core_model", *CORE_MODEL_1_DECAYS) if key in network.extras]
    if clashes:
        raise NetworkError(f"extras: key {clashes[0]!r} is a network file's own key (core_model) or core model "
                           "1's (k_*): it cannot be an extra")
    arrays["core_model"] = np.array(CORE_MODEL_VERSION, dtype=np.int64)
    _write(path, arrays, inputs)


@dataclass(frozen=True)
class Conversion:
    """What `convert_core_model_1` did to one decay: the shifts `k` it found and the factors `d` it wrote.

    `field` is the core model 2 name (`decay_mem`, ...), `shift` core model 1's
    (`k_mem`, ...); `pairs` lists each distinct `(k, d, count)`; `lost` counts
    the values with `13 <= k <= 30`, whose leak of `2**-k` per step is below
    the smallest factor (1/4096), so that `d = 4096 >> k = 0` keeps the value
    (no decay) where core model 1 leaked slowly.
    """

    field: str
    shift: str
    pairs: tuple[tuple[int, int, int], ...]
    lost: int

    def describe(self) -> str:
        """One line: `decay_mem <- k_mem: k 3 -> d 512 (5), k 31 -> d 0 (3)`, and the values that lost their leak."""
        mapped = ", ".join(f"k {k} -> d {d}" + (f" ({count})" if count > 1 else "") for k, d, count in self.pairs)
        text = f"{self.field} <- {self.shift}: {mapped}"
        if self.lost:
            text += (f"; {self.lost} value{'s' if self.lost > 1 else ''} with 13 <= k <= 30 leaked 2**-k per step "
                     "in core model 1, less than the smallest factor 1/4096: now no decay")
        return text


def _shift_to_factor(k):
    """Core model 1's shift `k` (0..31) as a factor: `d = 4096 >> k`, and `k = 31` (no decay) as `d = 0`."""
    return np.where(k >= _SHIFT_RANGE[1], 0, DECAY_ONE >> np.minimum(k, _SHIFT_RANGE[1] - 1))


def convert_core_model_1(path: str | os.PathLike[str]) -> tuple[Network, list[Conversion]]:
    """Read a core model 1 network file and return it as a core model 2 `Network`, and what changed.

    Each decay shift `k` (0..31, 31 = no decay) becomes the decay factor
    `d = 4096 >> k` (`k = 31`: `d = 0`), as spec section 6 offers: `d / 4096 =
    2**-k`, the fraction core model 1 lost per step. The results are close to,
    not identical with, core model 1's: it rounded `x - (x >> k)` toward minus
    infinity (a small positive value never decayed away), core model 2 rounds
    toward zero, and shifts `13..30` leak less than the smallest factor (they
    become `d = 0`). Every other field and every extra is kept. Refuses a file
    that is not core model 1 (`NetworkError`, naming what it is).
    """
    shift_of = {factor: shift for shift, factor in CORE_MODEL_1_DECAYS.items()}
    neuron_fields = [shift_of.get(name, name) for name in NEURON_FIELDS]
    global_fields = [shift_of.get(name, name) for name in GLOBAL_FIELDS]
    arrays = read_npz(path, "network", lambda headers: _network_headers(headers, (neuron_fields, global_fields)))
    version = _prefixed(path, _core_model_of, arrays)
    if version not in (None, 1):
        raise NetworkError(f"{path}: core_model = {version}: not a core model 1 network, nothing to convert"
                           + (" (it already is the core model this neurofabric runs)"
                              if version == CORE_MODEL_VERSION else ""))
    arrays.pop("core_model", None)
    missing = [key for key in CORE_MODEL_1_DECAYS if key not in arrays]
    if missing:
        factors = [CORE_MODEL_1_DECAYS[key] for key in missing if CORE_MODEL_1_DECAYS[key] in arrays]
        raise NetworkError(f"{path}: not a core model 1 network: missing field{'s' if len(missing) > 1 else ''}: "
                           f"{', '.join(missing)}"
                           + (f" (it holds {', '.join(factors)}: a core model 2 network without its core_model "
                              "key?)" if factors else ""))
    conversions = []
    for shift, name in CORE_MODEL_1_DECAYS.items():
        if name in arrays:
            raise NetworkError(f"{path}: holds both {shift} (core model 1) and {name} (core model 2): "
                               "a network file is of one core model")
        k = _prefixed(path, check_integer_array, shift, arrays.pop(shift), None, *_SHIFT_RANGE,
                      f"{_SHIFT_RANGE[0]}..{_SHIFT_RANGE[1]} (core model 1's decay shift, 31 = no decay)")
        d = _shift_to_factor(k)
        arrays[name] = d
        ks, counts = np.unique(k, return_counts=True)
        conversions.append(Conversion(
            field=name, shift=shift, lost=int(((k >= 13) & (k < _SHIFT_RANGE[1])).sum()),
            pairs=tuple((int(kk), int(_shift_to_factor(kk)), int(c)) for kk, c in zip(ks, counts))))
    network = _prefixed(path, Network.from_arrays, arrays)
    _prefixed(path, _network_extras, network.extras, network.n, network.m)
    return network, conversions


#: A stimulus file's arrays: each one's dimensions for one run, and the name of each dimension.
_STIMULUS_AXES = {"spikes": ("steps", "m"), "rates": ("m",), "seed": (), "steps": ()}


def _stimulus_headers(headers, m=None):
    """Declared shapes of a stimulus file: spikes `(steps, m)`, rates `(m,)`, seed and steps 0-d;
    a trials axis in front of spikes, rates and seed, the same length on each."""
    trials = {}
    widths = {}
    for key, axes in _STIMULUS_AXES.items():
        if key not in headers:
            continue
        shape = headers[key][0]
        batched = len(shape) == len(axes) + 1 and key != "steps"
        if len(shape) != len(axes) and not batched:
            allowed = _shape_text(axes) + ("" if key == "steps" else f" or {_shape_text(('trials', *axes))}")
            raise NetworkError(f"{key}: shape {shape} is not {allowed}")
        if batched:
            trials[key] = shape[0]
        if "m" in axes:
            widths[key] = shape[-1]
    if m is not None:
        for key, width in widths.items():
            if width != m:
                axes = ("trials", *_STIMULUS_AXES[key]) if key in trials else _STIMULUS_AXES[key]
                want = "(" + ", ".join("m=" + str(m) if a == "m" else a for a in axes) + (",)" if len(axes) == 1
                                                                                        else ")")
                raise NetworkError(f"stimulus {key}: shape {headers[key][0]} does not match {want}")
    if len(set(widths.values())) > 1:
        raise NetworkError("stimulus: spikes and rates disagree on the inputs: "
                           + ", ".join(f"{k} has m = {v}" for k, v in widths.items()))
    if len(set(trials.values())) > 1:
        raise NetworkError("stimulus: the trials disagree: " + ", ".join(f"{k} has {v}" for k, v in trials.items()))


@dataclass(eq=False)
class Stimulus:
    """What a stimulus file holds (spec section 6), checked on construction.

    `spikes` are the host's inputs, bool `(steps, m)`, or `(trials, steps, m)`
    for a batch of trials; None when the generator makes every input (then
    `steps` says how long a run is). `rates` are the stimulus generator's
    `rate[k]`, int64 `(m,)` or `(trials, m)`, 0..65535 (None: all 0, the
    generator makes nothing); `seed` its seed, an int or int64 `(trials,)`,
    1..2**32-1 (None: 1). A trials axis on any of the three makes a batch of
    trials (`trials`), each run from the reset state; a value without it is
    the same for every trial. `steps` given with `spikes` cuts them or pads
    them with silence to that many steps.

    `run(device)` runs it on a device that holds a network: `Device.run` for
    one run, `Device.run_trials` for trials. `NetworkError` names the field,
    the index and the allowed range of a bad value.
    """

    spikes: np.ndarray | None = None
    rates: np.ndarray | None = None
    seed: int | np.ndarray | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (as on construction); raise `NetworkError` on the first problem."""
        if self.spikes is None and self.rates is None:
            raise NetworkError("stimulus: neither spikes (the host's inputs, (steps, m)) nor rates (the "
                               "generator's, (m,)): a stimulus needs one of them")
        steps = self.steps
        if steps is not None:
            steps = int(check_integer_array("steps", steps, (), 0, int(np.iinfo(np.int64).max), "0 or more"))
        counts = {}
        m = None
        if self.spikes is not None:
            spikes = np.asarray(self.spikes)
            if spikes.ndim == 2:
                self.spikes = check_stimulus(spikes, spikes.shape[1], steps)
            elif spikes.ndim == 3:
                checked = check_integer_array("stimulus spikes", spikes, None, 0, 1).astype(bool)
                if steps is not None and steps != checked.shape[1]:
                    padded = np.zeros((checked.shape[0], steps, checked.shape[2]), bool)
                    padded[:, :min(steps, checked.shape[1])] = checked[:, :steps]
                    checked = padded
                self.spikes = checked
                counts["spikes"] = checked.shape[0]
            else:
                raise NetworkError(f"stimulus spikes: shape {spikes.shape} is not (steps, m) or (trials, steps, m)")
            m = self.spikes.shape[-1]
            steps = self.spikes.shape[-2]
        elif steps is None:
            raise NetworkError("stimulus: steps is needed when there are no spikes (a run of the generator's "
                               "inputs only)")
        self.steps = steps
        if self.rates is not None:
            rates = np.asarray(self.rates)
            if rates.ndim not in (1, 2):
                raise NetworkError(f"stimulus rates: shape {rates.shape} is not (m,) or (trials, m)")
            self.rates = check_integer_array("rates", rates, None, *STIMULUS_FIELDS["rate"], RATE_TEXT)
            if m is not None and self.rates.shape[-1] != m:
                raise NetworkError(f"stimulus rates: shape {self.rates.shape} does not match the spikes' "
                                   f"m = {m} inputs")
            m = self.rates.shape[-1]
            if rates.ndim == 2:
                counts["rates"] = rates.shape[0]
        if self.seed is not None:
            seed = np.asarray(self.seed)
            if seed.ndim not in (0, 1):
                raise NetworkError(f"stimulus seed: shape {seed.shape} is not () or (trials,)")
            seed = check_integer_array("seed", seed, None, *STIMULUS_FIELDS["seed"], SEED_TEXT)
            if seed.ndim:
                counts["seed"] = seed.shape[0]
                self.seed = seed
            else:
                self.seed = int(seed)
        if len(set(counts.values())) > 1:
            raise NetworkError("stimulus: the trials disagree: " + ", ".join(f"{k} has {v}" for k, v in counts.items()))
        if counts and next(iter(counts.values())) < 1:
            raise NetworkError("stimulus: a batch of trials needs at least one trial")
        self._m = m
        self._trials = next(iter(counts.values())) if counts else None

    @property
    def m(self) -> int:
        """The inputs of the network the stimulus is for."""
        return self._m

    @property
    def trials(self) -> int | None:
        """The number of trials of a batch, or None for one run."""
        return self._trials

    def fit(self, m: int | None = None, steps: int | None = None) -> Stimulus:
        """This stimulus checked against a network of `m` inputs, cut or padded to `steps` (a new one)."""
        if m is not None and m != self.m:
            what = "spikes" if self.spikes is not None else "rates"
            shape = (self.spikes if self.spikes is not None else self.rates).shape
            axes = {"spikes": ("steps", "m"), "rates": ("m",)}[what]
            if self.trials is not None and len(shape) > len(axes):
                axes = ("trials", *axes)
            want = "(" + ", ".join(f"m={m}" if a == "m" else a for a in axes) + (",)" if len(axes) == 1 else ")")
            raise NetworkError(f"stimulus {what}: shape {shape} does not match {want}")
        if steps is None:
            return self
        return Stimulus(spikes=self.spikes, rates=self.rates, seed=self.seed, steps=steps)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of a stimulus file: spikes, rates and seed when set, steps when there are no spikes."""
        out = {}
        if self.spikes is not None:
            out["spikes"] = self.spikes.astype(np.uint8)
        else:
            out["steps"] = np.array(self.steps, np.int64)
        if self.rates is not None:
            out["rates"] = self.rates.astype(np.uint16)
        if self.seed is not None:
            out["seed"] = np.asarray(self.seed).astype(np.uint32)
        return out

    def run(self, device: Device, record: Iterable[str] = (), snapshot_every: int = 0,
            progress: Callable[[int, int], object] | None = None, *, record_neurons: ArrayLike | None = None,
            counts: bool = False) -> Recording:
        """Run on `device` (which holds the network) from the reset state, and return its `Recording`.

        One run: `device.reset_state()`, then `device.run(...)` with the rates
        and the seed (1 when none is given), `record` and `snapshot_every`
        as there. Trials: `device.run_trials(...)`, which resets before each
        trial; `progress` then counts trials, and weight snapshots are refused
        (`DeviceError`: a run of trials keeps none). `record_neurons` and
        `counts` are `Device.run`'s.
        """
        from .errors import DeviceError
        seed = 1 if self.seed is None else self.seed
        if self.trials is None:
            device.reset_state()
            return device.run(self.spikes, self.steps, record, snapshot_every, progress, rates=self.rates,
                              seed=seed, record_neurons=record_neurons, counts=counts)
        if snapshot_every:
            raise DeviceError(f"snapshot_every = {snapshot_every}: a run of {self.trials} trials keeps no weight "
                              "snapshots (its weights are those after the last trial); run a trial alone for them")
        spikes = self.spikes
        if spikes is not None and spikes.ndim == 2:
            spikes = np.broadcast_to(spikes, (self.trials, *spikes.shape))
        return device.run_trials(spikes, self.steps, record, rates=self.rates, seed=seed, progress=progress,
                                 record_neurons=record_neurons, counts=counts)

    @classmethod
    def load(cls, path: str | os.PathLike[str], m: int | None = None, steps: int | None = None) -> Stimulus:
        """Load and check a stimulus file (spec section 6): spikes, rates, seed, steps and trials.

        With `m`, every array must fit a network of `m` inputs; with `steps`,
        the spikes are cut or padded with silence to that many steps (and a
        run of the generator alone lasts `steps`). Shapes are checked from
        the headers, before any data is read.
        """
        arrays = read_npz(path, "stimulus", lambda headers: _stimulus_headers(headers, m))
        if "spikes" not in arrays and "rates" not in arrays:
            raise NetworkError(f"{path}: missing field: spikes (shape (steps, m), 0/1) or rates (shape (m,), "
                               f"the generator's); found: {', '.join(sorted(arrays)) or 'nothing'}")
        if "spikes" in arrays and "steps" in arrays:
            given = _prefixed(path, check_integer_array, "steps", arrays["steps"], (), 0,
                              int(np.iinfo(np.int64).max), "0 or more")
            if int(given) != arrays["spikes"].shape[-2]:
                raise NetworkError(f"{path}: steps = {int(given)}, but the spikes have "
                                   f"{arrays['spikes'].shape[-2]} steps (a file gives steps only without spikes)")
        stimulus = _prefixed(path, cls, spikes=arrays.get("spikes"), rates=arrays.get("rates"),
                             seed=arrays.get("seed"), steps=arrays.get("steps") if "spikes" not in arrays else None)
        return _prefixed(path, stimulus.fit, m, steps)

    def save(self, path: str | os.PathLike[str], *, inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
        """Write the stimulus file (atomically, as `save_network`)."""
        _write(path, self.to_arrays(), inputs)


def load_stimulus(path: str | os.PathLike[str], m: int | None = None, steps: int | None = None) -> np.ndarray:
    """Load the host's input spikes of a one-run stimulus file: a bool `(steps, m)` array.

    With `m`, the width must match the network's inputs; with `steps`, it is
    cut or padded with silence to that many steps. A file that also holds
    generator rates or a batch of trials is refused: its spikes alone would
    run differently; `Stimulus.load` reads all of it.
    """
    def headers_fit(headers):
        _stimulus_headers(headers, m)
        if "spikes" in headers and len(headers["spikes"][0]) != 2:
            raise NetworkError(f"spikes: shape {headers['spikes'][0]} is a batch of trials, not (steps, m): "
                               "load it with Stimulus.load (files.Stimulus)")

    arrays = read_npz(path, "stimulus", headers_fit)
    batched = [key for key in ("rates", "seed") if key in arrays and arrays[key].ndim == len(_STIMULUS_AXES[key]) + 1]
    if "rates" in arrays or batched:
        held = "a batch of trials" if batched else "the stimulus generator's rates"
        raise NetworkError(f"{path}: holds {held}, which its spikes alone would not run: load it with "
                           "Stimulus.load (files.Stimulus), which keeps them")
    if "spikes" not in arrays:
        raise NetworkError(f"{path}: missing field: spikes (shape (steps, m), 0/1); "
                           f"found: {', '.join(sorted(arrays)) or 'nothing'}")
    spikes = arrays["spikes"]
    return _prefixed(path, check_stimulus, spikes, spikes.shape[1] if m is None else m, steps)


def save_stimulus(spikes: ArrayLike | None, path: str | os.PathLike[str], *, rates: ArrayLike | None = None,
                  seed: ArrayLike | None = None, steps: int | None = None,
                  inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a stimulus file (atomically, as `save_network`).

    `spikes` are the host's inputs `(steps, m)` 0/1, or `(trials, steps, m)`;
    `rates` the generator's `(m,)` or `(trials, m)`, `seed` an int or `(trials,)`,
    `steps` the length of a run when there are no spikes (see `Stimulus`).
    """
    Stimulus(spikes=spikes, rates=rates, seed=seed, steps=steps).save(path, inputs=inputs)


def save_recording(recording: Recording, path: str | os.PathLike[str], *,
                   inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a recording file (atomically, as `save_network`)."""
    _write(path, recording.to_arrays(), inputs)


#: A recording's arrays with one row per step (a run of trials adds a leading trials axis to each), by the
#: size of their columns: "n" neurons or "m" inputs.
_PER_STEP = {"spikes": "n", "v": "n", "i": "n", "inputs": "m", "input_spikes": "m"}


def _recording_headers(headers):
    """Declared shapes of a recording: every array sized by the spikes (or counts) and the weights.

    `spikes` is `(steps, c)`, or `(trials, steps, c)` for a run of trials, where
    `c` is n, or the length of `neurons` when only some neurons were recorded;
    every per-step array has the same leading axes. A counts-only recording has
    `counts` `(c,)` or `(trials, c)` instead of `spikes`.
    """
    sizes = _weights_shape(headers)
    main = "spikes" if "spikes" in headers else "counts" if "counts" in headers else None
    rank = {"spikes": (2, 3), "counts": (1, 2)}
    if main and len(headers[main][0]) not in rank[main]:
        want = "(steps, n) or (trials, steps, n)" if main == "spikes" else "(n,) or (trials, n)"
        raise NetworkError(f"{main}: shape {headers[main][0]} does not match the expected {want}")
    _expect_shape(headers, "neurons", (None,))
    if sizes is None or main is None:
        return
    n, m = sizes
    c = headers["neurons"][0][0] if "neurons" in headers else n
    if main == "spikes":
        lead = headers["spikes"][0][:-1]       # (steps,) or (trials, steps)
    else:
        lead = headers["counts"][0][:-1] + ((headers["v"][0][-2],) if "v" in headers else
                                            (headers["i"][0][-2],) if "i" in headers else (None,))
    note = " (a run of trials)" if len(lead) == 2 else ""
    what = f" (n = {n} from the weights)" if c == n else f" ({c} recorded neurons)"
    _expect_shape(headers, main, (*lead, c) if main == "spikes" else (*lead[:-1], c), what)
    for key, width in _PER_STEP.items():
        if key != "spikes":
            _expect_shape(headers, key, (*lead, c if width == "n" else m), note)
    _expect_shape(headers, "weight_snapshots", (None, m + n, n))
    if "weight_snapshots" in headers:
        _expect_shape(headers, "snapshot_steps", (headers["weight_snapshots"][0][0],))


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Load and check a recording file (spec section 6).

    A run of trials has `spikes` of shape `(trials, steps, n)`: the `Recording`
    has `trials` set, and every per-step array (`v`, `i`, `inputs`,
    `input_spikes`) the same leading trials axis. A recording of some neurons
    has `neurons` (their columns); a counts-only one `counts` instead of `spikes`.
    """
    arrays = read_npz(path, "recording", _recording_headers)
    if "weights" not in arrays:
        raise NetworkError(f"{path}: missing field: weights")
    if "spikes" not in arrays and "counts" not in arrays:
        raise NetworkError(f"{path}: missing field: spikes (or counts, for a counts-only recording)")
    weights = _prefixed(path, check_integer_array, "weights", arrays.pop("weights"), (None, None))
    n = weights.shape[1]
    m = weights.shape[0] - n
    if m < 0:
        raise NetworkError(f"{path}: weights: shape {weights.shape} is not (m+n, n)")
    neurons = None
    if "neurons" in arrays:
        neurons = _prefixed(path, check_integer_array, "neurons", arrays.pop("neurons"), (None,), 0, n - 1,
                            f"0..{n - 1} (the network's neurons)")
        if neurons.size == 0 or (np.diff(neurons) <= 0).any():
            raise NetworkError(f"{path}: neurons: must list recorded neurons once each, ascending")
    c = n if neurons is None else neurons.size
    spikes = counts = None
    step_count = None
    if "spikes" in arrays:
        spikes = arrays.pop("spikes")
        spikes = _prefixed(path, check_integer_array, "spikes", spikes, (None,) * max(spikes.ndim, 2), 0, 1)
        if spikes.ndim not in (2, 3):
            raise NetworkError(f"{path}: spikes: shape {spikes.shape} does not match the expected (steps, n) or "
                               "(trials, steps, n)")
        if spikes.shape[-1] != c:
            raise NetworkError(f"{path}: spikes: {spikes.shape[-1]} columns, but {c} recorded neurons")
        lead = spikes.shape[:-1]
        trials = spikes.shape[0] if spikes.ndim == 3 else None
        spikes = spikes.astype(np.uint8)
    else:
        counts = arrays.pop("counts")
        counts = _prefixed(path, check_integer_array, "counts", counts, (None,) * max(counts.ndim, 1), 0,
                           int(np.iinfo(np.int64).max), "0 or more")
        if counts.ndim not in (1, 2) or counts.shape[-1] != c:
            raise NetworkError(f"{path}: counts: shape {counts.shape} does not match ({c},) or (trials, {c})")
        trials = counts.shape[0] if counts.ndim == 2 else None
        step_count = int(_prefixed(path, check_integer_array, "steps", arrays.pop("steps", 0), (), 0,
                                   int(np.iinfo(np.int64).max), "0 or more"))
        lead = (*counts.shape[:-1], step_count)
    fields = {}
    for key, width in _PER_STEP.items():
        if key in arrays and key != "spikes":
            binary = (0, 1) if width == "m" else ()
            fields[key] = _prefixed(path, check_integer_array, key, arrays.pop(key),
                                    (*lead, c if width == "n" else m), *binary)
            if binary:
                fields[key] = fields[key].astype(np.uint8)
    if "weight_snapshots" in arrays:
        snaps = _prefixed(path, check_integer_array, "weight_snapshots",
                          arrays.pop("weight_snapshots"), (None, *weights.shape))
        fields["weight_snapshots"] = snaps
        if "snapshot_steps" in arrays:
            fields["snapshot_steps"] = _prefixed(path, check_integer_array, "snapshot_steps",
                                                 arrays.pop("snapshot_steps"), (snaps.shape[0],), 0,
                                                 int(np.iinfo(np.int64).max))
    return Recording(spikes=spikes, weights=weights, trials=trials, neurons=neurons, counts=counts,
                     step_count=step_count, extras=arrays, **fields)


def _write(path, arrays, inputs=()):
    values = sum(np.asarray(a).size for a in arrays.values())
    if values > MAX_FILE_VALUES:
        logger.warning("%s holds %s values, more than the %s that loaders accept unless "
                       "files.MAX_FILE_VALUES is raised", path, f"{values:,}", f"{MAX_FILE_VALUES:,}")
    # np.savez appends .npz to names without it; writing to a file object
    # writes exactly the name given, atomically (see safe_io).
    with atomic_output(path, inputs=inputs, what="output file") as fh:
        np.savez_compressed(fh, **arrays)
