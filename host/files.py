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
from collections.abc import Collection
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import GLOBAL_FIELDS, NEURON_FIELDS, SOURCE_FIELDS, WIDTH_FIELDS

from .errors import NetworkError
from .golden import Recording, check_stimulus
from .network import Network, check_integer_array
from .safe_io import atomic_output

__all__ = ["load_network", "save_network", "load_stimulus", "save_stimulus",
           "load_recording", "save_recording", "read_npz", "read_npz_headers",
           "MAX_FILE_VALUES", "MAX_FILE_BYTES"]

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


def _network_headers(headers):
    """Declared shapes of a network file: every field sized by n and m from the weights."""
    sizes = _weights_shape(headers)
    if sizes is None:
        return
    n, m = sizes
    note = f" (n = {n} neurons and m = {m} inputs, from the shape ({m + n}, {n}) of weights)"
    for name in NEURON_FIELDS:
        _expect_shape(headers, name, (n,), note)
    for name in SOURCE_FIELDS:
        _expect_shape(headers, name, (m + n,), note)
    for name in (*GLOBAL_FIELDS, *WIDTH_FIELDS):
        _expect_shape(headers, name, ())


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
    """Load and check a network file."""
    arrays = read_npz(path, "network", _network_headers)
    network = _prefixed(path, Network.from_arrays, arrays)
    _prefixed(path, _network_extras, network.extras, network.n, network.m)
    return network


def save_network(network: Network, path: str | os.PathLike[str], *,
                 inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a network file (every spec key, plus the network's extras).

    The write is atomic and refuses to replace anything but a regular file,
    or any of `inputs` (see `safe_io.atomic_output`).
    """
    _write(path, network.to_arrays(), inputs)


def load_stimulus(path: str | os.PathLike[str], m: int | None = None, steps: int | None = None) -> np.ndarray:
    """Load a stimulus file: a bool `(steps, m)` array of input spikes.

    With `m`, the width must match the network's inputs; with `steps`, it is
    cut or padded with silence to that many steps.
    """
    def headers_fit(headers):
        if "spikes" in headers:
            shape = headers["spikes"][0]
            if len(shape) != 2:
                raise NetworkError(f"spikes: shape {shape} is not (steps, m)")
            if m is not None and shape[1] != m:
                raise NetworkError(f"stimulus spikes: shape {shape} does not match (steps, m={m})")

    arrays = read_npz(path, "stimulus", headers_fit)
    if "spikes" not in arrays:
        raise NetworkError(f"{path}: missing field: spikes (shape (steps, m), 0/1); "
                           f"found: {', '.join(sorted(arrays)) or 'nothing'}")
    spikes = arrays["spikes"]
    return _prefixed(path, check_stimulus, spikes, spikes.shape[1] if m is None else m, steps)


def save_stimulus(spikes: ArrayLike, path: str | os.PathLike[str], *,
                  inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a stimulus file from a `(steps, m)` 0/1 array (atomically, as `save_network`)."""
    spikes = np.asarray(spikes)
    check_stimulus(spikes, spikes.shape[1] if spikes.ndim == 2 else -1)
    _write(path, {"spikes": spikes.astype(np.uint8)}, inputs)


def save_recording(recording: Recording, path: str | os.PathLike[str], *,
                   inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write a recording file (atomically, as `save_network`)."""
    _write(path, recording.to_arrays(), inputs)


def _recording_headers(headers):
    """Declared shapes of a recording: every array sized by the spikes and the weights."""
    sizes = _weights_shape(headers)
    if "spikes" in headers and len(headers["spikes"][0]) != 2:
        raise NetworkError(f"spikes: shape {headers['spikes'][0]} does not match the expected (any, any)")
    if sizes is None or "spikes" not in headers:
        return
    n, m = sizes
    steps = headers["spikes"][0][0]
    _expect_shape(headers, "spikes", (steps, n), f" (n = {n} from the weights)")
    for key in ("v", "i"):
        _expect_shape(headers, key, (steps, n))
    _expect_shape(headers, "input_spikes", (steps, m))
    _expect_shape(headers, "weight_snapshots", (None, m + n, n))
    if "weight_snapshots" in headers:
        _expect_shape(headers, "snapshot_steps", (headers["weight_snapshots"][0][0],))


def load_recording(path: str | os.PathLike[str]) -> Recording:
    """Load and check a recording file."""
    arrays = read_npz(path, "recording", _recording_headers)
    for key in ("spikes", "weights"):
        if key not in arrays:
            raise NetworkError(f"{path}: missing field: {key}")
    spikes = _prefixed(path, check_integer_array, "spikes", arrays.pop("spikes"), (None, None), 0, 1)
    weights = _prefixed(path, check_integer_array, "weights", arrays.pop("weights"), (None, None))
    steps, n = spikes.shape
    if weights.shape[1] != n:
        raise NetworkError(f"{path}: weights: shape {weights.shape} does not match (m+n, n={n})")
    fields = {}
    for key in ("v", "i"):
        if key in arrays:
            fields[key] = _prefixed(path, check_integer_array, key, arrays.pop(key), (steps, n))
    if "input_spikes" in arrays:
        fields["input_spikes"] = _prefixed(path, check_integer_array, "input_spikes",
                                           arrays.pop("input_spikes"), (steps, weights.shape[0] - n), 0, 1)
    if "weight_snapshots" in arrays:
        snaps = _prefixed(path, check_integer_array, "weight_snapshots",
                          arrays.pop("weight_snapshots"), (None, *weights.shape))
        fields["weight_snapshots"] = snaps
        if "snapshot_steps" in arrays:
            fields["snapshot_steps"] = _prefixed(path, check_integer_array, "snapshot_steps",
                                                 arrays.pop("snapshot_steps"), (snaps.shape[0],), 0,
                                                 int(np.iinfo(np.int64).max))
    return Recording(spikes=spikes.astype(np.uint8), weights=weights, extras=arrays, **fields)


def _write(path, arrays, inputs=()):
    values = sum(np.asarray(a).size for a in arrays.values())
    if values > MAX_FILE_VALUES:
        logger.warning("%s holds %s values, more than the %s that loaders accept unless "
                       "files.MAX_FILE_VALUES is raised", path, f"{values:,}", f"{MAX_FILE_VALUES:,}")
    # np.savez appends .npz to names without it; writing to a file object
    # writes exactly the name given, atomically (see safe_io).
    with atomic_output(path, inputs=inputs, what="output file") as fh:
        np.savez_compressed(fh, **arrays)
