"""NIR import and export (the Neuromorphic Intermediate Representation).

Import flattens a NIR graph onto the all-to-all core: every `Input` node
becomes a group of input channels, every spiking node (`LIF`, `CubaLIF`,
`IF`) a population of neurons, and the weight nodes (`Affine`, `Linear`,
chains of them) between them the weight matrix. The semantics are forward
Euler at `dt` with spikes as 0/1 per step and one step of delay on every edge
that leaves a spiking node (which is what the core does with its neurons'
spikes); see `neurofabric.host.units` for the neuron equations and how they
are quantised. An `Affine` bias is a constant input added every step.

Export writes the integer network as a NIR graph in the core's own units
(one volt = one integer step of v), so the weights are the integers the device
holds, including weights learned on the device:

    Input "input" -> Linear "input_weights" -> CubaLIF "neurons" -> Output "output"
                                    neurons -> Linear "recurrent_weights" -> neurons

with `tau = dt * 2**k` (`k = 31`, no decay, as `2**31 * dt`), `r = tau_mem / dt`
so that a unit of current adds a unit to v, `v_threshold = threshold - 0.5`
(the core fires on `>=`, NIR on `>`), `v_leak = bias * 2**k_mem`. Refractory
periods, reset by subtraction and the plasticity settings have no NIR
equivalent: they go into the graph's metadata, and export says so.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from neurofabric.contract.model import Widths

from . import files
from .errors import NetworkError
from .network import Network
from .safe_io import atomic_output_path
from .units import PhysicalNetwork, QuantisationReport, check_time_step, check_tolerance

__all__ = ["import_nir", "export_nir", "read_nir", "write_nir", "nir_to_physical", "check_nir_file",
           "MAX_NIR_OBJECTS", "NIRGraphLike"]

logger = logging.getLogger(__name__)

#: The most groups and datasets a NIR file may hold: a graph the core can hold
#: has a few nodes of about ten datasets each; the walk that checks a file
#: before reading it stays short.
MAX_NIR_OBJECTS = 1 << 16

SPIKING = ("LIF", "CubaLIF", "IF")
WEIGHTS = ("Affine", "Linear")


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

    The file is checked first (`check_nir_file`): nothing but a regular HDF5
    file whose declared sizes are within the limits is read.
    """
    nir = _nir()
    check_nir_file(path)
    try:
        return nir.read(str(path))
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


def _node_size(name, node):
    kind = _kind(node)
    if kind in ("Input", "Output"):
        shapes = list(getattr(node, "input_type" if kind == "Input" else "output_type").values())
        shape = _floats(shapes[0], name, "shape").reshape(-1) if shapes else np.array([0.0])
        if not (np.isfinite(shape).all() and (shape == np.round(shape)).all() and (shape >= 0).all()):
            raise NetworkError(f"NIR node {name!r}: shape {shape.tolist()} is not a list of whole numbers, "
                               "0 or more")
        # In Python integers: a product in int64 could wrap round to a small size.
        return math.prod(int(d) for d in shape)
    if kind in SPIKING:
        return int(np.asarray(node.v_threshold).size)
    raise NetworkError(f"NIR node {name!r}: size of a {kind} node is not defined here")


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
    _check_sizes(nodes)
    phys = PhysicalNetwork(dt)
    for name, node in nodes.items():
        if _kind(node) == "Input":
            phys.add_inputs(_node_size(name, node), name)
    for name, node in nodes.items():
        kind = _kind(node)
        if kind not in SPIKING:
            continue
        size = _node_size(name, node)
        f = lambda field, node=node, size=size, name=name: _flat(getattr(node, field), size, name, field)  # noqa: E731
        v_reset = f("v_reset") if getattr(node, "v_reset", None) is not None else np.zeros(size)
        common = dict(v_threshold=f("v_threshold"), v_reset=v_reset, r=f("r"))
        if kind == "CubaLIF":
            phys.add_population(name, size, model="cubalif", tau_mem=f("tau_mem"), tau_syn=f("tau_syn"),
                                v_leak=f("v_leak"), w_in=f("w_in"), **common)
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
                rows = _node_size(source, nodes[source]) if w is None else w.shape[0]
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
        size = _node_size(name, node)
        total_bias = np.zeros(size)
        for pred in preds[name]:
            for source, w, b in affine_from(pred):
                rows = _node_size(source, nodes[source]) if w is None else w.shape[0]
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


def _check_sizes(nodes):
    """Refuse a graph whose network would hold more weights than a file may (`files.MAX_FILE_VALUES`).

    The sizes come from the nodes' declared shapes, which a few bytes can set
    to anything: checked before any matrix is made.
    """
    m = sum(_node_size(name, node) for name, node in nodes.items() if _kind(node) == "Input")
    n = sum(_node_size(name, node) for name, node in nodes.items() if _kind(node) in SPIKING)
    if (m + n) * n > files.MAX_FILE_VALUES:
        raise NetworkError(f"NIR graph: {m:,} inputs and {n:,} neurons make ({m + n:,}, {n:,}) weights, "
                           f"beyond the limit of {files.MAX_FILE_VALUES:,} values (files.MAX_FILE_VALUES)")


def import_nir(graph_or_path: NIRGraphLike | str | os.PathLike[str], dt: float, widths: Widths | None = None,
               tolerance: float = 0.1) -> tuple[Network, QuantisationReport]:
    """Import a NIR graph (object or file) at step `dt` seconds: `(Network, report)`.

    `dt` must be positive and finite and `tolerance` finite and 0 or more
    (`NetworkError`), checked before the graph is read.
    """
    dt, tolerance = check_time_step(dt), check_tolerance(tolerance)
    graph = graph_or_path
    if not hasattr(graph_or_path, "nodes"):
        graph = read_nir(graph_or_path)
    phys = nir_to_physical(graph, dt)
    network, report = phys.compile(widths=widths, tolerance=tolerance)
    outputs = [s for s, d in graph.edges if _kind(graph.nodes[d]) == "Output"]
    network.extras["nir_outputs"] = np.array(outputs if outputs else [""])
    return network, report


def export_nir(network: Network, dt: float = 1e-3) -> NIRGraphLike:
    """The integer network as a `nir.NIRGraph` (see the module docstring for the mapping).

    `dt` (seconds) must be positive and finite: every time constant is a
    multiple of it, so NaN, infinity or a negative step would be written as
    NaN or negative time constants.
    """
    dt = check_time_step(dt)
    network.validate()
    nir = _nir()
    n, m = network.n, network.m
    k_mem = network.k_mem.astype(float)
    k_syn = network.k_syn.astype(float)
    tau_mem = dt * 2.0 ** k_mem
    tau_syn = dt * 2.0 ** k_syn
    dropped = []
    if np.any(network.refractory):
        dropped.append("refractory periods")
    if np.any(network.reset_mode == 1):
        dropped.append("reset by subtraction (exported as reset to v_reset)")
    if network.learn or np.any(network.plastic_pre) or np.any(network.plastic_post):
        dropped.append("plasticity (masks and learning registers)")
    if dropped:
        logger.warning("NIR has no equivalent of: %s; they are kept in the graph metadata only",
                       ", ".join(dropped))
    neurons = nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt,
        v_leak=network.bias * 2.0 ** k_mem, v_threshold=network.threshold - 0.5,
        v_reset=network.v_reset.astype(float), w_in=np.ones(n))
    nodes = {"neurons": neurons, "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("neurons", "output")]
    if m:
        nodes["input"] = nir.Input(input_type={"input": np.array([m])})
        nodes["input_weights"] = nir.Linear(weight=network.weights[:m].T.astype(float))
        edges += [("input", "input_weights"), ("input_weights", "neurons")]
    nodes["recurrent_weights"] = nir.Linear(weight=network.weights[m:].T.astype(float))
    edges += [("neurons", "recurrent_weights"), ("recurrent_weights", "neurons")]
    metadata = {
        "neurofabric_dt": float(dt),
        "neurofabric_refractory": network.refractory.astype(np.int64),
        "neurofabric_reset_mode": network.reset_mode.astype(np.int64),
        "neurofabric_plastic_pre": network.plastic_pre.astype(np.int64),
        "neurofabric_plastic_post": network.plastic_post.astype(np.int64),
        "neurofabric_widths": np.array([network.state_bits, network.weight_bits, network.trace_bits]),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
