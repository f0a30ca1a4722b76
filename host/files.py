"""Network, stimulus and recording files (spec section 6): NumPy `.npz` archives.

Every loader refuses bad input with a `NetworkError` that names the file, the
field, the index and the allowed range; a truncated or non-npz file is an
error with a message, never a traceback.
"""

import zipfile
from pathlib import Path

import numpy as np

from .errors import NetworkError
from .golden import Recording, check_stimulus
from .network import Network, check_integer_array
from .safe_io import atomic_output

__all__ = ["load_network", "save_network", "load_stimulus", "save_stimulus",
           "load_recording", "save_recording", "read_npz"]


def read_npz(path, what):
    """Read every array of an `.npz` file into a dict, or raise `NetworkError`."""
    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{what} file {str(path)!r} does not exist")
    if path.is_dir():
        raise NetworkError(f"{what} file {str(path)!r} is a folder, not an .npz file")
    try:
        # Open the file ourselves: np.load leaks its handle when parsing fails.
        with open(path, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise NetworkError(f"{what} file {str(path)!r} is a single .npy array, "
                                   "not an .npz archive of named arrays")
            with archive:
                return {key: archive[key] for key in archive.files}
    except NetworkError:
        raise
    except PermissionError:
        raise NetworkError(f"{what} file {str(path)!r} cannot be read: permission denied") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        # np.load raises ValueError for pickles and unknown formats, BadZipFile
        # and EOFError for truncated archives, OSError for the rest.
        raise NetworkError(f"{what} file {str(path)!r} is not a readable NumPy .npz archive "
                           f"({type(exc).__name__}: {exc})") from None


def _prefixed(path, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except NetworkError as exc:
        raise NetworkError(f"{path}: {exc}") from None


def load_network(path) -> Network:
    """Load and check a network file."""
    arrays = read_npz(path, "network")
    return _prefixed(path, Network.from_arrays, arrays)


def save_network(network: Network, path, *, inputs=()):
    """Write a network file (every spec key, plus the network's extras).

    The write is atomic and refuses to replace anything but a regular file,
    or any of `inputs` (see `safe_io.atomic_output`).
    """
    _write(path, network.to_arrays(), inputs)


def load_stimulus(path, m=None, steps=None):
    """Load a stimulus file: a bool `(steps, m)` array of input spikes.

    With `m`, the width must match the network's inputs; with `steps`, it is
    cut or padded with silence to that many steps.
    """
    arrays = read_npz(path, "stimulus")
    if "spikes" not in arrays:
        raise NetworkError(f"{path}: missing field: spikes (shape (steps, m), 0/1); "
                           f"found: {', '.join(sorted(arrays)) or 'nothing'}")
    spikes = arrays["spikes"]
    if spikes.ndim != 2:
        raise NetworkError(f"{path}: spikes: shape {spikes.shape} is not (steps, m)")
    return _prefixed(path, check_stimulus, spikes, spikes.shape[1] if m is None else m, steps)


def save_stimulus(spikes, path, *, inputs=()):
    """Write a stimulus file from a `(steps, m)` 0/1 array (atomically, as `save_network`)."""
    spikes = np.asarray(spikes)
    check_stimulus(spikes, spikes.shape[1] if spikes.ndim == 2 else -1)
    _write(path, {"spikes": spikes.astype(np.uint8)}, inputs)


def save_recording(recording: Recording, path, *, inputs=()):
    """Write a recording file (atomically, as `save_network`)."""
    _write(path, recording.to_arrays(), inputs)


def load_recording(path) -> Recording:
    """Load and check a recording file."""
    arrays = read_npz(path, "recording")
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
        fields["weight_snapshots"] = _prefixed(path, check_integer_array, "weight_snapshots",
                                               arrays.pop("weight_snapshots"), (None, *weights.shape))
        fields["snapshot_steps"] = arrays.pop("snapshot_steps", None)
    return Recording(spikes=spikes.astype(np.uint8), weights=weights, extras=arrays, **fields)


def _write(path, arrays, inputs=()):
    # np.savez appends .npz to names without it; writing to a file object
    # writes exactly the name given, atomically (see safe_io).
    with atomic_output(path, inputs=inputs, what="output file") as fh:
        np.savez_compressed(fh, **arrays)
