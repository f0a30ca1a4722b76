"""NIR import and export (the Neuromorphic Intermediate Representation).

Import flattens a NIR graph onto the all-to-all core: every `Input` node
becomes a group of input channels, every spiking node (`LIF`, `CubaLIF`,
`IF`) a population of neurons, and the weight nodes (`Affine`, `Linear`,
chains of them) between them the weight matrix. The semantics are NIR's
equations, forward Euler at `dt` with spikes as 0/1 per step and one step of
delay on every edge that leaves a spiking node (which is what the core does
with its neurons' spikes); see `neurofabric.host.units` for how they are
quantised. An `Affine` bias is a constant input added every step.

NIR's `CubaLIF` is `tau_syn dI/dt = -I + w_in S`: each step adds
`(dt / tau_syn) * w_in * x` to `I`, so one spike delivers a charge of
`dt * w_in` whatever `tau_syn` is (snnTorch's exporter writes
`w_in = tau_syn / dt` so that one spike adds its weight). The importer hands
the units layer, whose `w_in` is added per step, `w_in * dt / tau_syn` with
the realised `tau_syn`: the core runs the node with the realised time
constants and NIR's charge per spike.

Parameters may be scalars (0-d arrays) or arrays that broadcast: a spiking
node's size is its largest parameter's, or, when every parameter is a
scalar, the size its edges give it (a weight matrix, an `Input`, an
`Output`).

`dt` is NIR's blind spot: graphs do not record it. neurofabric's export
writes it in the graph's metadata (`metadata["neurofabric"]["dt"]`), which
import reads when no `dt` is given; snnTorch assumes 0.1 ms and writes it
nowhere.

Export writes the integer network as a NIR graph in the core's own units
(one volt = one integer step of v), so the weights are the integers the device
holds, including weights learned on the device:

    Input "input" -> Linear/Affine "input_weights" -> CubaLIF "neurons" -> Output "output"
                                    neurons -> Linear "recurrent_weights" -> neurons

with `tau = 4096 * dt / d` for each decay factor `d` (inf for 0, no decay),
`r = tau_mem / dt` and `w_in = tau_syn / dt` (one spike adds its weight,
snnTorch's convention; both inf with their time constant, the limit import
reads back as a gain of 1), `v_threshold = threshold - 0.5` (the core fires
on `>=`, NIR on `>`). A neuron's bias is the `Affine` bias of the weights into
it when its current lasts one step (`decay_syn = 4096`: the same thing, and
`v_leak` stays 0, which is all snnTorch's importer reads), else
`v_leak = bias * 4096 / decay_mem`. Refractory periods, reset by
subtraction, the plasticity masks, the learning registers, the bit widths,
the scale, and the bias of a neuron with no leak whose current decays (its
`v_leak` would be infinite) have no NIR field: they go into the metadata of
the nodes (`metadata["neurofabric"]`) and the graph, which import reads back,
so export then import gives back the same integer network.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from neurofabric.contract.model import DECAY_ONE, GLOBAL_FIELDS, WIDTH_FIELDS, Widths

from . import files
from .errors import NetworkError
from .builder import decay_for_steps
from .network import Network, check_whole_numbers
from .safe_io import atomic_output_path
from .units import (PhysicalNetwork, QuantisationReport, check_time_step, check_tolerance, decay_for, euler_gain,
                    realised_tau)

__all__ = ["import_nir", "export_nir", "read_nir", "write_nir", "nir_to_physical", "check_nir_file",
           "graph_dt", "MAX_NIR_OBJECTS", "NIRGraphLike", "METADATA_KEY"]

logger = logging.getLogger(__name__)

#: The most groups and datasets a NIR file may hold: a graph the core can hold
#: has a few nodes of about ten datasets each; the walk that checks a file
#: before reading it stays short.
MAX_NIR_OBJECTS = 1 << 16

SPIKING = ("LIF", "CubaLIF", "IF")
WEIGHTS = ("Affine", "Linear")
#: The metadata key (of the graph and of its nodes) under which neurofabric
#: keeps what NIR has no field for.
METADATA_KEY = "neurofabric"
#: The parameters of each spiking node, as NIR names them.
PARAMETERS = {
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
}


class NIRGraphLike(Protocol):
    """What this module reads of a NIR graph, and what export returns: a `nir.NIRGraph` is one.

    Named by its attributes because `nir` is an optional dependency (the
    'nir' extra), which the host does not import until a graph is read or made.
    """

    @property
    def nodes(self) -> Mapping[str, Any]:
        """The graph's nodes by name (`nir.Input`, `nir.CubaLIF`, `nir.Linear`...)."""

    @property
    def edges(self) -> Sequence[tuple[str, str]]:
        """The `(source, target)` node names of every edge."""


def _nir():
    try:
        import nir
    except ImportError:
        raise NetworkError("NIR support needs the 'nir' package: pip install 'neurofabric[nir]'") from None
    return nir


def read_nir(path: str | os.PathLike[str]) -> NIRGraphLike:
    """Read a NIR graph file, with a clear error when it cannot be read.

    Node types are not checked against each other by the `nir` package (which
    would refuse scalar parameters); `import_nir` checks every size. The file
    is checked first (`check_nir_file`): nothing but a regular HDF5
    file whose declared sizes are within the limits is read.
    """
    nir = _nir()
    check_nir_file(path)
    try:
        # Without nir's own type check: it refuses scalar parameters, which NIR
        # allows (they broadcast); `nir_to_physical` checks every size itself.
        return nir.read(str(path), type_check=False)
    except FileNotFoundError:
        raise NetworkError(f"NIR file {str(path)!r} does not exist") from None
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError, ...
        raise NetworkError(f"NIR file {str(path)!r} cannot be read ({type(exc).__name__}: "
                           f"{_first_line(exc)})") from None


def check_nir_file(path: str | os.PathLike[str]) -> None:
    """Refuse (`NetworkError`, one line) a NIR file that reading could hang on or exhaust memory with.

    From the file's HDF5 metadata alone, before any dataset is read: the file
    must be a regular file (a FIFO would block the reader) and HDF5; every
    object must sit under one name, by hard links only (soft and external
    links, which could read another file or read one dataset many times,
    and datasets stored in other files are refused); there are at most
    `MAX_NIR_OBJECTS` objects; and the datasets' declared shapes hold at most
    `files.MAX_FILE_VALUES` values and `files.MAX_FILE_BYTES` bytes in all,
    the limits of the `.npz` loaders (read when a file is checked, so a
    program can raise them). A compressed dataset of a few kilobytes on disk
    can declare terabytes.
    """
    _nir()   # h5py comes with nir: one message for both when they are missing
    import h5py
    shown = str(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NetworkError(f"NIR file {shown!r} does not exist") from None
    except OSError as exc:
        raise NetworkError(f"NIR file {shown!r} cannot be read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if stat.S_ISDIR(mode):
        raise NetworkError(f"NIR file {shown!r} is a folder, not a NIR (HDF5) file")
    if not stat.S_ISREG(mode):
        raise NetworkError(f"NIR file {shown!r} is not a regular file")
    try:
        hdf5 = h5py.is_hdf5(str(path))
    except OSError as exc:
        raise NetworkError(f"NIR file {shown!r} cannot be read: {exc.strerror or exc}") from None
    if not hdf5:
        raise NetworkError(f"NIR file {shown!r} cannot be read: it is not an HDF5 file, which NIR graph "
                           "files are")
    try:
        with h5py.File(str(path), "r") as fh:
            _check_hdf5_tree(fh, shown, h5py)
    except NetworkError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ... for corrupt files
        raise NetworkError(f"NIR file {shown!r} cannot be read ({type(exc).__name__}: "
                           f"{_first_line(exc)})") from None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


def _check_hdf5_tree(fh, shown, h5py):
    """Walk the file's links from the root: counts, kinds and declared sizes (see `check_nir_file`)."""
    seen = {hash(fh["/"].id)}
    groups = [("", fh)]
    objects = values = size = 0
    while groups:
        prefix, group = groups.pop()
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
                raise NetworkError(f"NIR file {shown!r}: {where} is {kind}; NIR files hold no links "
                                   "(following one could read another file)")
            objects += 1
            if objects > MAX_NIR_OBJECTS:
                raise NetworkError(f"NIR file {shown!r} holds more than {MAX_NIR_OBJECTS:,} groups and "
                                   "datasets (nir_io.MAX_NIR_OBJECTS)")
            obj = group[name]
            key = hash(obj.id)
            if key in seen:
                raise NetworkError(f"NIR file {shown!r}: {where} is a second name of an object already in "
                                   "the file; in a NIR file every object has one name")
            seen.add(key)
            if isinstance(obj, h5py.Group):
                groups.append((where, obj))
                continue
            if not isinstance(obj, h5py.Dataset):
                raise NetworkError(f"NIR file {shown!r}: {where} is a {type(obj).__name__}, "
                                   "neither a group nor a dataset")
            if obj.is_virtual or obj.external:
                raise NetworkError(f"NIR file {shown!r}: dataset {where} keeps its data in other files; "
                                   "refused")
            shape = obj.shape or ()   # None for a dataset with no data space
            count = math.prod(int(d) for d in shape)
            values += count
            size += count * obj.dtype.itemsize
            if values > files.MAX_FILE_VALUES or size > files.MAX_FILE_BYTES:
                raise NetworkError(f"NIR file {shown!r}: dataset {where} declares shape {tuple(shape)} of "
                                   f"{obj.dtype} ({count:,} values, {count * obj.dtype.itemsize:,} bytes), "
                                   f"beyond the limit of {files.MAX_FILE_VALUES:,} values "
                                   f"(files.MAX_FILE_VALUES) and {files.MAX_FILE_BYTES:,} bytes "
                                   "(files.MAX_FILE_BYTES) for all the datasets of a file")


def write_nir(graph: Any, path: str | os.PathLike[str], *,
              inputs: Collection[str | os.PathLike[str] | None] = ()) -> None:
    """Write `graph`, a `nir.NIRGraph` (what `nir.write` takes), to a NIR file atomically.

    `nir.write` takes a file name, so the graph goes to a fresh temporary file
    in the target's folder, renamed onto `path` once written; the target is
    checked first as `safe_io.check_output_path` does (a regular file or
    nothing, not one of `inputs`, in a writable folder).
    """
    nir = _nir()
    with atomic_output_path(path, inputs=inputs, what="NIR file") as tmp:
        try:
            nir.write(str(tmp), graph)
        except OSError as exc:
            raise NetworkError(f"cannot write NIR file {str(path)!r}: {exc.strerror or exc}") from None


def _kind(node):
    return type(node).__name__


def _floats(value, node_name, field):
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise NetworkError(f"NIR node {node_name!r}: {field} is not an array of numbers") from None


def _flat(arr, size, node_name, field):
    arr = _floats(arr, node_name, field)
    if arr.ndim == 0:
        return np.full(size, float(arr))
    arr = arr.reshape(-1)
    if arr.size == 1:
        return np.full(size, float(arr[0]))
    if arr.size != size:
        raise NetworkError(f"NIR node {node_name!r}: {field} has {arr.size} values for {size} neurons")
    return arr


def _shape_size(name, shape, what="shape"):
    shape = _floats(shape, name, what).reshape(-1)
    if not (np.isfinite(shape).all() and (shape == np.round(shape)).all() and (shape >= 0).all()):
        raise NetworkError(f"NIR node {name!r}: {what} {shape.tolist()} is not a list of whole numbers, "
                           "0 or more")
    # In Python integers: a product in int64 could wrap round to a small size.
    return math.prod(int(d) for d in shape)


def _declared_size(name, node, field):
    """The size an `Input`/`Output` (or any node's) `input_type`/`output_type` declares, or None."""
    types = getattr(node, field, None)
    shapes = list(types.values()) if isinstance(types, Mapping) else []
    if not shapes or np.asarray(shapes[0]).size == 0:   # no type, or a scalar's: declares nothing
        return None
    return _shape_size(name, shapes[0])


def _own_size(name, node):
    """A spiking node's size from its own declarations: its largest parameter or declared type.

    1 when every parameter is a scalar (or of one value), which the edges may
    then broadcast (see `_node_sizes`).
    """
    sizes = [1]
    for field in PARAMETERS[_kind(node)]:
        value = getattr(node, field, None)
        if value is not None:
            sizes.append(int(_floats(value, name, field).size))
    for field in ("input_type", "output_type"):
        declared = _declared_size(name, node, field)
        if declared is not None:
            sizes.append(declared)
    return max(sizes)


def _node_sizes(nodes, edges):
    """The size of every `Input`, `Output` and spiking node: {name: size}.

    A spiking node whose parameters are all scalars takes the size of what it
    is connected to (the rows of the weight matrix into it, the columns of one
    out of it, or an input, output or neuron node on a direct edge); with no
    such edge, it is one neuron.
    """
    sizes, scalar = {}, []
    for name, node in nodes.items():
        kind = _kind(node)
        if kind in ("Input", "Output"):
            declared = _declared_size(name, node, "input_type" if kind == "Input" else "output_type")
            sizes[name] = 0 if declared is None else declared
        elif kind in SPIKING:
            own = _own_size(name, node)
            if own > 1:
                sizes[name] = own
            else:
                scalar.append(name)

    def from_edges(name):
        for src, dst in edges:
            if dst == name and src in nodes:
                other, axis = src, 0
            elif src == name and dst in nodes:
                other, axis = dst, 1
            else:
                continue
            if _kind(nodes[other]) in WEIGHTS:
                weight = np.shape(getattr(nodes[other], "weight", None))
                if len(weight) == 2:
                    return int(weight[axis])
            elif other in sizes:
                return sizes[other]
        return None

    # A chain of scalar nodes on direct edges resolves one node per pass.
    while scalar:
        found = {name: size for name in scalar if (size := from_edges(name)) is not None}
        if not found:
            break
        sizes.update(found)
        scalar = [name for name in scalar if name not in found]
    sizes.update({name: 1 for name in scalar})
    return sizes


def _node_metadata(name, node):
    """The `metadata["neurofabric"]` of a node (what neurofabric's export keeps there), or {}."""
    metadata = getattr(node, "metadata", None)
    ours = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if ours is None:
        return {}
    if not isinstance(ours, Mapping):
        raise NetworkError(f"NIR node {name!r}: metadata {METADATA_KEY!r} is not a group of values")
    return ours


def _metadata_ints(where, ours, key, size):
    """An integer array of `size` values from neurofabric's metadata, or None when absent."""
    if key not in ours:
        return None
    value = check_whole_numbers(f"{where}: metadata {METADATA_KEY}.{key}", ours[key])
    if value.ndim == 0:
        value = np.full(size, int(value))
    if value.shape != (size,):
        raise NetworkError(f"{where}: metadata {METADATA_KEY}.{key} has shape {value.shape}, "
                           f"expected ({size},)")
    return value


def _synaptic_gain(tau_syn, w_in, dt):
    """`(dt / tau_syn) * w_in` with the realised `tau_syn`, per neuron: NIR's CubaLIF input per step.

    The realised fraction is `decay_syn / 4096`; a current of one step or
    less (4096) takes the spike's whole charge in one step. No decay (0)
    keeps the requested `dt / tau_syn`, and `tau_syn = inf` with `w_in = inf`
    is the limit of `w_in = tau_syn / dt`, a gain of 1 (`units.euler_gain`).
    Values the units layer refuses (NaN, 0 or less) get a gain of `w_in` for it to name.
    """
    rate = np.ones(tau_syn.shape)
    for j, tau in enumerate(tau_syn):
        if tau > 0:
            d = decay_for(float(tau), dt)
            rate[j] = d / DECAY_ONE if d else dt / tau
    return euler_gain(rate, w_in, tau_syn)


def nir_to_physical(graph: NIRGraphLike, dt: float) -> PhysicalNetwork:
    """Flatten a NIR graph into a `PhysicalNetwork` (floats, not yet quantised)."""
    dt = check_time_step(dt)
    nodes, edges = graph.nodes, list(graph.edges)
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in (*SPIKING, *WEIGHTS, "Input", "Output"):
            raise NetworkError(f"NIR node {name!r} of type {kind} is not supported; supported: "
                               "Input, Output, Affine, Linear, LIF, CubaLIF, IF")
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                raise NetworkError(f"NIR edge {src!r} -> {dst!r} names no node {end!r}")
    preds = {name: [s for s, d in edges if d == name] for name in nodes}
    node_sizes = _node_sizes(nodes, edges)
    _check_sizes(nodes, node_sizes)
    phys = PhysicalNetwork(dt)
    for name, node in nodes.items():
        if _kind(node) == "Input":
            phys.add_inputs(node_sizes[name], name)
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in SPIKING:
            continue
        size = node_sizes[name]
        f = lambda field, node=node, size=size, name=name: _flat(getattr(node, field), size, name, field)  # noqa: E731
        v_reset = f("v_reset") if getattr(node, "v_reset", None) is not None else np.zeros(size)
        common = dict(v_threshold=f("v_threshold"), v_reset=v_reset, r=f("r"), **_population_metadata(
            name, node, size, dt))
        if kind == "CubaLIF":
            tau_syn = f("tau_syn")
            # NIR adds (dt / tau_syn) * w_in * x per step; the units layer adds its w_in * x.
            w_in = _synaptic_gain(tau_syn, f("w_in") if getattr(node, "w_in", None) is not None else np.ones(size),
                                  dt)
            phys.add_population(name, size, model="cubalif", tau_mem=f("tau_mem"), tau_syn=tau_syn,
                                v_leak=f("v_leak"), w_in=w_in, **common)
        elif kind == "LIF":
            phys.add_population(name, size, model="lif", tau_mem=f("tau"), v_leak=f("v_leak"), **common)
        else:
            phys.add_population(name, size, model="if", **common)

    def affine_from(name, seen=()):
        """Resolve what feeds spiking node inputs through `name`: [(source, W (out,in) or None, b)].

        None stands for the identity (and a zero bias): an input group may be
        far larger than a population, too large for its identity matrix.
        """
        node = nodes[name]
        kind = _kind(node)
        if kind == "Input" or kind in SPIKING:
            return [(name, None, 0.0)]
        if kind not in WEIGHTS:
            raise NetworkError(f"NIR node {name!r} of type {kind} cannot feed a neuron")
        if name in seen:
            raise NetworkError(f"NIR graph has a loop of weight nodes through {name!r} with no neuron in it")
        weight = _floats(node.weight, name, "weight")
        if not np.isfinite(weight).all():
            raise NetworkError(f"NIR node {name!r}: weight holds NaN or infinity")
        if weight.ndim != 2:
            raise NetworkError(f"NIR node {name!r}: weight of shape {weight.shape} is not a matrix")
        bias = _flat(node.bias, weight.shape[0], name, "bias") if kind == "Affine" else np.zeros(weight.shape[0])
        if not np.isfinite(bias).all():
            raise NetworkError(f"NIR node {name!r}: bias holds NaN or infinity")
        if not preds[name]:
            raise NetworkError(f"NIR node {name!r} has no input edge")
        out = []
        for pred in preds[name]:
            for source, w, b in affine_from(pred, (*seen, name)):
                rows = node_sizes[source] if w is None else w.shape[0]
                if rows != weight.shape[1]:
                    raise NetworkError(f"NIR node {name!r}: weight expects {weight.shape[1]} inputs, "
                                       f"{pred!r} gives {rows}")
                out.append((source, weight if w is None else weight @ w,
                            np.zeros(weight.shape[0]) if w is None else weight @ b))
        # The bias counts once, not once per incoming path.
        if out:
            out[0] = (out[0][0], out[0][1], out[0][2] + bias)
        return out

    weights = {}
    bias = {}
    for name, node in nodes.items():
        if _kind(node) not in SPIKING:
            continue
        size = node_sizes[name]
        total_bias = np.zeros(size)
        for pred in preds[name]:
            for source, w, b in affine_from(pred):
                rows = node_sizes[source] if w is None else w.shape[0]
                if rows != size:
                    raise NetworkError(f"NIR edge {pred!r} -> {name!r}: {rows} values into "
                                       f"{size} neurons")
                if w is None:   # a direct edge: size is a population's, bounded by _check_sizes
                    w = np.eye(size)
                key = (source, name)
                weights[key] = weights.get(key, 0) + w.T  # (pre, post)
                total_bias += b
        bias[name] = total_bias
    for (source, post), w in weights.items():
        phys.connect(source, post, w)
    for name, b in bias.items():
        if np.any(b != 0):
            phys.populations[name].i_bias = b
    return phys


def _population_metadata(name, node, size, dt):
    """The `Population` settings neurofabric's export kept in a spiking node's metadata."""
    ours = _node_metadata(name, node)
    out = {}
    if "scale" in ours:
        out["scale"] = ours["scale"]
    steps = _metadata_ints(f"NIR node {name!r}", ours, "refractory_steps", size)
    if steps is not None:
        if (steps < 0).any():
            raise NetworkError(f"NIR node {name!r}: metadata {METADATA_KEY}.refractory_steps holds "
                               f"{int(steps.min())}; allowed 0..255")
        out["refractory"] = steps * dt
    return out


def _check_sizes(nodes, sizes):
    """Refuse a graph whose network would hold more weights than a file may (`files.MAX_FILE_VALUES`).

    The sizes come from the nodes' declared shapes, which a few bytes can set
    to anything: checked before any matrix is made.
    """
    m = sum(sizes[name] for name, node in nodes.items() if _kind(node) == "Input")
    n = sum(sizes[name] for name, node in nodes.items() if _kind(node) in SPIKING)
    if (m + n) * n > files.MAX_FILE_VALUES:
        raise NetworkError(f"NIR graph: {m:,} inputs and {n:,} neurons make ({m + n:,}, {n:,}) weights, "
                           f"beyond the limit of {files.MAX_FILE_VALUES:,} values (files.MAX_FILE_VALUES)")


def _graph_metadata(graph):
    metadata = getattr(graph, "metadata", None)
    if not isinstance(metadata, Mapping):
        return {}, {}
    ours = metadata.get(METADATA_KEY, {})
    if not isinstance(ours, Mapping):
        raise NetworkError(f"NIR graph: metadata {METADATA_KEY!r} is not a group of values")
    return metadata, ours


def graph_dt(graph: NIRGraphLike) -> float | None:
    """The time step (seconds) a graph records, or None: NIR has no field for it.

    neurofabric's export writes `metadata["neurofabric"]["dt"]` (earlier
    versions `metadata["neurofabric_dt"]`); snnTorch's writes none (it assumes
    0.1 ms). A recorded value must be positive and finite (`NetworkError`).
    """
    metadata, ours = _graph_metadata(graph)
    value = ours.get("dt", metadata.get("neurofabric_dt"))
    if value is None:
        return None
    return check_time_step(np.asarray(value).item() if np.ndim(value) == 0 else value,
                           f"NIR graph metadata {METADATA_KEY}.dt")


def _graph_widths(ours):
    if not all(name in ours for name in WIDTH_FIELDS):
        return None
    return Widths(*(int(check_whole_numbers(f"NIR graph: metadata {METADATA_KEY}.{name}", ours[name], ()))
                    for name in WIDTH_FIELDS))


def import_nir(graph_or_path: NIRGraphLike | str | os.PathLike[str], dt: float | None = None,
               widths: Widths | None = None, tolerance: float = 0.1) -> tuple[Network, QuantisationReport]:
    """Import a NIR graph (object or file) at step `dt` seconds: `(Network, report)`.

    `dt` None takes the step the graph records (`graph_dt`; neurofabric's
    export writes it); a graph that records none needs `dt` (snnTorch's graphs
    assume 0.1 ms). A `dt` that differs from the recorded one wins, with a
    warning. `widths` None takes the graph's recorded widths, else the
    defaults. What neurofabric's export keeps in metadata (refractory periods,
    reset modes, plasticity masks, learning registers, scale) is applied, so
    its graphs import as the network they came from.

    `dt` must be positive and finite and `tolerance` finite and 0 or more
    (`NetworkError`), checked before the graph is read.
    """
    dt = None if dt is None else check_time_step(dt)
    tolerance = check_tolerance(tolerance)
    graph = graph_or_path
    if not hasattr(graph_or_path, "nodes"):
        graph = read_nir(graph_or_path)
    recorded = graph_dt(graph)
    if dt is None:
        if recorded is None:
            raise NetworkError("NIR graph records no time step (NIR has no field for it): give dt; "
                               "snnTorch's exporter assumes dt = 0.1 ms")
        dt = recorded
    elif recorded is not None and not math.isclose(dt, recorded, rel_tol=1e-9):
        logger.warning("NIR graph records dt = %g s (metadata %s.dt); importing at dt = %g s instead, "
                       "which scales every time constant by %.4g in steps", recorded, METADATA_KEY, dt,
                       recorded / dt)
    _, ours = _graph_metadata(graph)
    if widths is None:
        widths = _graph_widths(ours)
    phys = nir_to_physical(graph, dt)
    network, report = phys.compile(widths=widths, tolerance=tolerance)
    if _apply_metadata(graph, network, ours):
        report["notes"].append("refractory periods, reset modes, plasticity, learning registers and biases "
                               f"NIR has no field for read from the graph's metadata[{METADATA_KEY!r}]")
        network.extras["quantisation_report"] = np.array(report.to_json())
    outputs = [s for s, d in graph.edges if _kind(graph.nodes[d]) == "Output"]
    network.extras["nir_outputs"] = np.array(outputs if outputs else [""])
    return network, report


def _apply_metadata(graph, network, ours):
    """Set the fields neurofabric's export kept in metadata; True when there were any.

    Sources and neurons are numbered as `nir_to_physical` adds them: the
    `Input` nodes, then the spiking nodes, in the graph's order.
    """
    nodes = graph.nodes
    sizes = _node_sizes(nodes, list(graph.edges))
    found = False
    source, neuron = 0, 0
    pre = network.plastic_pre.copy()
    for name, node in nodes.items():
        if _kind(node) == "Input":
            values = _metadata_ints(f"NIR node {name!r}", _node_metadata(name, node), "plastic_pre", sizes[name])
            if values is not None:
                pre[source:source + sizes[name]] = values
                found = True
            source += sizes[name]
    fields = {key: getattr(network, key).copy() for key in ("reset_mode", "plastic_post", "bias")}
    for name, node in nodes.items():
        if _kind(node) not in SPIKING:
            continue
        size, ours_node = sizes[name], _node_metadata(name, node)
        found = found or "refractory_steps" in ours_node or "scale" in ours_node
        values = _metadata_ints(f"NIR node {name!r}", ours_node, "plastic_pre", size)
        if values is not None:
            pre[network.m + neuron:network.m + neuron + size] = values
            found = True
        for key, arr in fields.items():
            values = _metadata_ints(f"NIR node {name!r}", ours_node, key, size)
            if values is not None:
                arr[neuron:neuron + size] = values
                found = True
        neuron += size
    network.plastic_pre = pre
    for key, arr in fields.items():
        setattr(network, key, arr)
    for key in GLOBAL_FIELDS:
        if key in ours:
            setattr(network, key, int(check_whole_numbers(f"NIR graph: metadata {METADATA_KEY}.{key}",
                                                          ours[key], ())))
            found = True
    found = _core_model_1_traces(network, ours) or found
    network.validate()   # the ranges of every field, named
    return found


#: The trace decay shifts a graph exported under core model 1 keeps in its metadata.
_OLD_TRACE_SHIFTS = {"k_pre": "decay_pre", "k_post": "decay_post"}


def _core_model_1_traces(network, ours):
    """Trace decays of a graph exported under core model 1: the shift `k` as the factor of `2**k` steps.

    Its time constants are `dt * 2**k` in the nodes, which import takes as
    any other; its trace shifts sit in the graph's metadata. They become
    `round(4096 / 2**k)` (31, none, is 0), with a warning: close to, not
    the same as, core model 1's decay. True when there were any.
    """
    old = {shift: factor for shift, factor in _OLD_TRACE_SHIFTS.items() if shift in ours and factor not in ours}
    for shift, factor in old.items():
        k = int(check_whole_numbers(f"NIR graph: metadata {METADATA_KEY}.{shift}", ours[shift], (), 0, 31))
        setattr(network, factor, 0 if k == 31 else int(decay_for_steps(2.0 ** k)))
    if old:
        logger.warning("NIR graph metadata %s holds core model 1's trace shifts (%s); taken as decay factors "
                       "round(4096 / 2**k): %s", METADATA_KEY, ", ".join(f"{k} = {int(ours[k])}" for k in old),
                       ", ".join(f"{f} = {getattr(network, f)}" for f in old.values()))
    return bool(old)


def export_nir(network: Network, dt: float = 1e-3) -> NIRGraphLike:
    """The integer network as a `nir.NIRGraph` (see the module docstring for the mapping).

    `dt` (seconds) must be positive and finite: every time constant is
    `4096 * dt / d`, so NaN, infinity or a negative step would be written as
    NaN or negative time constants.
    """
    dt = check_time_step(dt)
    network.validate()
    nir = _nir()
    n, m = network.n, network.m
    tau_mem = np.array([realised_tau(int(d), dt) for d in network.decay_mem])
    tau_syn = np.array([realised_tau(int(d), dt) for d in network.decay_syn])
    # A current of one step (decay_syn = 4096) makes a bias on the input the same as one on the membrane:
    # there it is the Affine bias, and v_leak stays 0, all that snnTorch's importer reads. Elsewhere it is
    # v_leak = bias * 4096 / decay_mem, which a membrane without leak cannot hold (metadata instead).
    on_input = network.decay_syn == DECAY_ONE
    unheld = ~on_input & (network.decay_mem == 0) & (network.bias != 0)
    kept = []
    if np.any(network.refractory):
        kept.append("refractory periods")
    if np.any(network.reset_mode == 1):
        kept.append("reset by subtraction (NIR readers other than neurofabric reset to v_reset)")
    if network.learn or np.any(network.plastic_pre) or np.any(network.plastic_post):
        kept.append("plasticity (masks and learning registers)")
    if unheld.any():
        kept.append("the bias of neurons without leak whose current decays (v_leak would be infinite)")
    if kept:
        logger.warning("NIR has no field for: %s; written to the metadata[%r] of the graph and its nodes, "
                       "which only neurofabric reads", ", ".join(kept), METADATA_KEY)
    affine_bias = np.where(on_input, network.bias, 0).astype(float)
    on_membrane = ~on_input & ~unheld & (network.bias != 0)
    v_leak = np.zeros(n)
    v_leak[on_membrane] = network.bias[on_membrane] * (DECAY_ONE / network.decay_mem[on_membrane])
    ours_node = {
        "scale": 1.0,   # integer steps per volt: the graph is in the core's own units
        "refractory_steps": network.refractory.astype(np.int64),
        "reset_mode": network.reset_mode.astype(np.int64),
        "plastic_post": network.plastic_post.astype(np.int64),
        "plastic_pre": network.plastic_pre[m:].astype(np.int64),
    }
    if unheld.any():
        ours_node["bias"] = network.bias.astype(np.int64)
    neurons = nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=v_leak, v_threshold=network.threshold - 0.5,
        v_reset=network.v_reset.astype(float), w_in=tau_syn / dt, metadata={METADATA_KEY: ours_node})
    nodes = {"neurons": neurons, "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("neurons", "output")]

    def weights(rows, with_bias):
        weight = network.weights[rows].T.astype(float)
        if with_bias and affine_bias.any():
            return nir.Affine(weight=weight, bias=affine_bias)
        return nir.Linear(weight=weight)

    if m:
        nodes["input"] = nir.Input(input_type={"input": np.array([m])},
                                   metadata={METADATA_KEY: {"plastic_pre": network.plastic_pre[:m].astype(np.int64)}})
        nodes["input_weights"] = weights(slice(0, m), True)
        edges += [("input", "input_weights"), ("input_weights", "neurons")]
    nodes["recurrent_weights"] = weights(slice(m, None), not m)
    edges += [("neurons", "recurrent_weights"), ("recurrent_weights", "neurons")]
    ours = {"dt": float(dt), **{name: int(getattr(network, name)) for name in WIDTH_FIELDS},
            **{name: int(getattr(network, name)) for name in GLOBAL_FIELDS}}
    # nir's type inference starts at an Input node: a network without inputs has none.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={METADATA_KEY: ours}, type_check=m > 0)
