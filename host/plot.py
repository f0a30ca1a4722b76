"""Pictures of recordings: rasters, v/i traces, weight maps, weight evolution.

Every function takes a `Recording` (or arrays) and returns a matplotlib
`Figure`; `save(fig, path)` writes it. `ascii_raster` draws a raster in the
terminal, for machines with no display. matplotlib is an optional extra
(`neurofabric[plot]`) and is imported only here, with the Agg backend.

A picture says what it shows: which neurons (`neurons=`; when a plot draws
only the first few by default, its title says how many of how many), which
steps (`window=(start, stop)`), and, for the weight evolution, which synapses
(the plastic ones: absent and fixed synapses are never averaged in).
`parse_neurons("0-9,20")` and `parse_window("1000:2000")` read the forms the
command line takes. A recording of trials (a leading trials axis) is drawn one
trial at a time: `select_trial(rec, k)` is trial `k` as a recording of one run.
The input raster draws the set U of each step (host and generated inputs)
when the run recorded it (`--record inputs`), else the host's input spikes.
"""

import dataclasses

import numpy as np

from .errors import NeurofabricError, NetworkError

__all__ = ["raster", "traces", "weights", "evolution", "ascii_raster", "save", "KINDS", "parse_neurons",
           "expand_neurons", "ranges_text", "parse_window", "picture_format", "DEFAULT_TRACES", "DEFAULT_EVOLUTION",
           "GROUP_KEYS", "groups", "select_trial"]

KINDS = ("raster", "traces", "weights", "evolution")

#: Neurons drawn when none are chosen: more lines than this cannot be told apart.
DEFAULT_TRACES = 4
DEFAULT_EVOLUTION = 8


#: The builder's description of the groups (network extras), carried into recordings by `neurofabric run`.
GROUP_KEYS = ("group_names", "group_kinds", "group_starts", "group_sizes")


def groups(rec, kind):
    """The groups of `kind` ("inputs" or "neurons") a recording names: `[(name, start, size), ...]`.

    Read from the recording's extras (`GROUP_KEYS`); empty when it has none,
    or when they do not describe its sizes (then the picture is unlabelled).
    """
    from .files import _groups_problem
    extras = getattr(rec, "extras", None) or {}
    if not all(key in extras for key in GROUP_KEYS):
        return []
    n = np.asarray(rec.spikes).shape[-1]
    m = np.asarray(rec.weights).shape[0] - n
    arrays = {key: np.asarray(extras[key]) for key in GROUP_KEYS}
    if _groups_problem(arrays, GROUP_KEYS, n, m):
        return []
    names, kinds, starts, sizes = (arrays[key].tolist() for key in GROUP_KEYS)
    return [(str(name), int(start), int(size)) for name, k, start, size in zip(names, kinds, starts, sizes)
            if k == kind]


def expand_neurons(rec):
    """A recording of some neurons (`rec.neurons`) with full-width spikes, v and i: the
    unrecorded neurons' columns are zero, so draw only the recorded ones (`neurons=`)."""
    if rec.neurons is None:
        return rec
    n = rec.weights.shape[1]
    fields = {}
    for key in ("spikes", "v", "i"):
        value = getattr(rec, key)
        if value is not None:
            full = np.zeros((*value.shape[:-1], n), value.dtype)
            full[..., rec.neurons] = value
            fields[key] = full
    return dataclasses.replace(rec, neurons=None, **fields)


def select_trial(rec, trial):
    """Trial `trial` of a recording of trials, as a `Recording` of one run (its spikes, probes and inputs).

    Its `weights` are the recording's, those after the last trial.
    `NeurofabricError` when the recording has no trials or `trial` is not one
    of them.
    """
    from dataclasses import replace
    trials = getattr(rec, "trials", None)
    if trials is None:
        raise NeurofabricError(f"trial {trial}: the recording is of one run, not of trials")
    if not 0 <= int(trial) < trials:
        raise NeurofabricError(f"trial {trial} is out of range: the recording has trials 0..{trials - 1}")
    t = int(trial)
    per_step = {key: None if getattr(rec, key) is None else np.asarray(getattr(rec, key))[t]
                for key in ("spikes", "v", "i", "inputs", "input_spikes")}
    return replace(rec, trials=None, extras=dict(rec.extras), **per_step)


def _one_run(rec):
    """Refuse a recording of trials where a picture draws one run."""
    trials = getattr(rec, "trials", None)
    if trials is not None:
        raise NeurofabricError(f"the recording holds {trials} trials: draw one at a time "
                               "(select_trial(rec, k); neurofabric plot --trial K)")


def _label_groups(ax, named, ids):
    """Name the groups on the y axis of a raster of rows `ids`: a tick at each group's middle, lines between."""
    ids = np.asarray(ids)
    ticks, labels = [], []
    for name, start, size in named:
        shown = ids[(ids >= start) & (ids < start + size)]
        if not len(shown):
            continue
        ticks.append((shown.min() + shown.max()) / 2)
        labels.append(name)
        if start > ids.min():
            ax.axhline(start - 0.5, color="black", lw=0.6, alpha=0.5)
    if ticks:
        ax.set_yticks(ticks, labels, fontsize=8)


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NeurofabricError("plots need matplotlib: pip install 'neurofabric[plot]'") from None
    return plt


# -- choosing what to draw ------------------------------------------------------------

def parse_neurons(text, n=None):
    """Neuron numbers from text such as ``"0-9,20"`` (ranges inclusive): a sorted list, no repeats.

    With `n`, every number must be a neuron of `n`. Raises `NeurofabricError`
    naming the item that is wrong.
    """
    chosen = set()
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(item), int(item))
        except ValueError:
            raise NeurofabricError(f"neurons: {item!r} is not a neuron number or a range "
                                   "(for example 0-9,20)") from None
        if first < 0 or last < first:
            raise NeurofabricError(f"neurons: {item!r} is not a range from a neuron to a later one "
                                   "(for example 0-9)")
        if n is not None and last >= n:
            raise NeurofabricError(f"neuron {last} is out of range: the recording has neurons 0..{n - 1}")
        if last - first >= 1 << 20:
            raise NeurofabricError(f"neurons: {item!r} names more than {1 << 20} neurons")
        chosen.update(range(first, last + 1))
    if not chosen:
        raise NeurofabricError(f"neurons: {text!r} names no neuron (for example 0-9,20)")
    return sorted(chosen)


def parse_window(text):
    """``"1000:2000"`` -> ``(1000, 2000)``: steps 1000 to 1999. Either side may be
    left out (``":500"``, ``"1000:"``; None for the end). Raises `NeurofabricError`."""
    start, sep, stop = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        first = int(start) if start.strip() else 0
        last = int(stop) if stop.strip() else None
    except ValueError:
        raise NeurofabricError(f"window: {text!r} is not START:STOP in steps (for example 1000:2000)") from None
    if first < 0 or (last is not None and last <= first):
        raise NeurofabricError(f"window: {text!r} needs 0 <= START < STOP (for example 1000:2000)")
    return first, last


def _steps_window(window, steps):
    """`window` checked against a recording of `steps` steps: ``(start, stop)``."""
    if window is None:
        return 0, steps
    start, stop = window
    stop = steps if stop is None else stop
    if not 0 <= start < stop <= steps:
        raise NeurofabricError(f"window {start}:{stop} is outside the recording: it has steps 0..{steps - 1} "
                               f"(START < STOP <= {steps})")
    return start, stop


def ranges_text(ids):
    """``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``."""
    parts, ids = [], list(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ", ".join(parts)


def _which(ids, n, noun="neurons"):
    """What a picture draws: "all 8 neurons" or "neurons 0-3 (4 of 8)"."""
    if list(ids) == list(range(n)):
        return f"all {n} {noun}"
    return f"{noun} {ranges_text(ids)} ({len(ids)} of {n})"


def _chosen(neurons, n, default=None):
    """The neurons to draw: `neurons` checked against `n`, else the first `default` (all when None)."""
    if neurons is None:
        return list(range(n if default is None else min(n, default)))
    ids = sorted(set(int(j) for j in neurons))
    for j in ids:
        if not 0 <= j < n:
            raise NeurofabricError(f"neuron {j} is out of range: the recording has neurons 0..{n - 1}")
    if not ids:
        raise NeurofabricError("no neuron chosen to draw")
    return ids


def picture_format(path):
    """The picture format `path`'s suffix names (png without a suffix), or `NetworkError` listing the formats."""
    from pathlib import Path
    _plt()
    from matplotlib.backend_bases import FigureCanvasBase
    fmt = Path(path).suffix[1:].lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        raise NetworkError(f"plot file {str(path)!r}: format {fmt!r} is not supported; "
                           f"allowed: {', '.join(sorted(formats))}")
    return fmt


# -- pictures ---------------------------------------------------------------------------

def _spike_panel(ax, spikes, title, ylabel, color, step0=0, ids=None):
    ids = np.arange(spikes.shape[1]) if ids is None else np.asarray(ids)
    t, idx = np.nonzero(spikes)
    ax.scatter(t + step0, ids[idx], s=4 if len(t) < 20000 else 1, marker="|", color=color, linewidths=1)
    if len(ids):
        ax.set_ylim(ids.min() - 0.5, ids.max() + 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def raster(rec, title="spikes", step_ms=None, window=None, highlight=None, neurons=None):
    """Input and output rasters, one above the other, sharing the time axis.

    `window=(start, stop)` shows those steps; `highlight` is a list of
    (start, stop) step ranges to shade (for example where a pattern was);
    `neurons` the output neurons to draw (default: all). A recording that
    names its groups (`groups`, from a network built by `NetworkBuilder`) has
    them labelled on the y axes, with a line between two groups.
    """
    _one_run(rec)
    plt = _plt()
    spikes = np.asarray(rec.spikes)
    n = spikes.shape[1]
    ids = _chosen(neurons, n)
    inputs = getattr(rec, "inputs", None)
    what = "inputs U, host and generated"
    if inputs is None:
        inputs, what = getattr(rec, "input_spikes", None), "input spikes"
    start, stop = _steps_window(window, spikes.shape[0])
    rows = 2 if inputs is not None and inputs.shape[1] else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.2 + 2.2 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1][:rows] if rows == 2 else [1]})
    axes = np.atleast_1d(axes)
    if rows == 2:
        _spike_panel(axes[0], inputs[start:stop], f"{what} ({inputs.shape[1]} channels)", "input",
                     "tab:gray", start)
        _label_groups(axes[0], groups(rec, "inputs"), range(inputs.shape[1]))
    _spike_panel(axes[-1], spikes[start:stop][:, ids], f"output spikes ({_which(ids, n)})", "neuron",
                 "tab:blue", start, ids)
    _label_groups(axes[-1], groups(rec, "neurons"), ids)
    for lo, hi in highlight or ():
        if hi > start and lo < stop:
            for ax in axes:
                ax.axvspan(max(lo, start) - 0.5, min(hi, stop) - 0.5, color="tab:orange", alpha=0.15, lw=0)
    unit = "step" if step_ms is None else f"step ({step_ms:g} ms each)"
    axes[-1].set_xlabel(f"time ({unit})")
    axes[-1].set_xlim(start - 0.5, stop - 0.5)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def traces(rec, neurons=None, title="membrane and current", window=None):
    """v and i of chosen neurons over time (needs a recording made with --record v,i).

    Without `neurons`, the first `DEFAULT_TRACES` are drawn and the title says so.
    """
    _one_run(rec)
    plt = _plt()
    have = [key for key in ("v", "i") if getattr(rec, key, None) is not None]
    if not have:
        raise NeurofabricError("the recording has no v or i: run with --record v,i")
    n = rec.spikes.shape[1]
    neurons = _chosen(neurons, n, DEFAULT_TRACES)
    start, stop = _steps_window(window, rec.spikes.shape[0])
    fig, axes = plt.subplots(len(have), 1, figsize=(10, 2.8 * len(have)), sharex=True)
    axes = np.atleast_1d(axes)
    steps = np.arange(start, stop)
    for ax, key in zip(axes, have):
        data = getattr(rec, key)
        for j in neurons:
            line, = ax.plot(steps, data[start:stop, j], lw=1, label=f"neuron {j}")
            if key == "v":
                fired = start + np.flatnonzero(rec.spikes[start:stop, j])
                ax.plot(fired, data[fired, j], "v", color=line.get_color(), ms=4)
        ax.set_ylabel("membrane v (integer)" if key == "v" else "current i (integer)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=min(len(neurons), 4))
    axes[-1].set_xlabel("time (step); triangles mark spikes")
    fig.suptitle(f"{title}: {_which(neurons, n)}")
    fig.tight_layout()
    return fig


def weights(w, m=None, title="weights", before=None, neurons=None):
    """Heatmap of a weight matrix `(m+n, n)`, sources down, neurons across.

    With `before`, shows before and after side by side with one colour scale;
    `neurons` the target neurons (columns) to show (default: all).
    """
    plt = _plt()
    w = np.asarray(w)
    n = w.shape[1]
    ids = _chosen(neurons, n)
    mats = [("before", np.asarray(before)), ("after", w)] if before is not None else [("", w)]
    mats = [(label, mat[:, ids]) for label, mat in mats]
    lim = max(1, int(max(np.abs(x).max() for _, x in mats)))
    fig, axes = plt.subplots(1, len(mats), figsize=(4 + 3.5 * len(mats), 5), squeeze=False)
    for ax, (label, mat) in zip(axes[0], mats):
        image = ax.imshow(mat, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        if m is not None and 0 < m < mat.shape[0]:
            ax.axhline(m - 0.5, color="black", lw=0.8)
            ax.text(mat.shape[1] - 0.5, m - 0.5, " inputs above, neurons below", va="bottom", ha="right",
                    fontsize=7)
        if ids != list(range(n)) and len(ids) <= 32:
            ax.set_xticks(range(len(ids)), [str(j) for j in ids], fontsize=7)
        ax.set_xlabel(f"target neuron j ({_which(ids, n)})")
        ax.set_ylabel("source k (inputs 0..m-1, then neurons)")
        ax.set_title(f"{title} {label}".strip(), fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), label="weight (integer)")
    return fig


def _plastic_synapses(rec, snaps, plastic):
    """The synapses the evolution follows, `(m+n, n)` bool, and the word that names them.

    `plastic` (a mask, or a network's plastic_pre/plastic_post in the
    recording's extras) gives the plastic synapses; without either, the
    synapses whose weight changed between the snapshots are the only ones
    known to learn.
    """
    shape = snaps.shape[1:]
    if plastic is None and {"plastic_pre", "plastic_post"} <= set(getattr(rec, "extras", {})):
        plastic = np.outer(np.asarray(rec.extras["plastic_pre"]) != 0, np.asarray(rec.extras["plastic_post"]) != 0)
    if plastic is not None:
        mask = np.asarray(plastic).astype(bool)
        if mask.shape != shape:
            raise NetworkError(f"plastic synapses: shape {mask.shape} does not match the recording's weights {shape}")
        return mask, "plastic"
    changed = (snaps != snaps[:1]).any(axis=0) | (np.asarray(rec.weights) != snaps[0])
    return changed, "changing"


def evolution(rec, groups=None, title="weight evolution", neurons=None, plastic=None, window=None):
    """Mean (and interquartile range) of weight groups over the snapshots of a run.

    `groups` maps a label to a boolean mask `(m+n, n)` or a list of (k, j)
    synapses. By default, one group per target neuron: its plastic synapses
    only (`plastic`, a `(m+n, n)` mask such as `Network.plastic_mask()`; or
    the recording's plastic_pre/plastic_post extras; else the synapses whose
    weight changed between snapshots, labelled so), for `neurons` or the first
    `DEFAULT_EVOLUTION` neurons that have any. `window=(start, stop)` keeps
    the snapshots taken within those steps.
    """
    plt = _plt()
    snaps = getattr(rec, "weight_snapshots", None)
    if snaps is None or len(snaps) == 0:
        raise NeurofabricError("the recording has no weight snapshots: run with --snapshot-every K")
    snaps = np.asarray(snaps)
    steps = getattr(rec, "snapshot_steps", None)
    steps = np.arange(1, len(snaps) + 1) if steps is None else np.asarray(steps)
    if window is not None:
        start, stop = _steps_window(window, rec.spikes.shape[0])
        keep = (steps >= start) & (steps <= stop)
        if not keep.any():
            raise NeurofabricError(f"no weight snapshot in the window {start}:{stop} (snapshots after steps "
                                   f"{int(steps[0])}..{int(steps[-1])})")
        snaps, steps = snaps[keep], steps[keep]
    fig, ax = plt.subplots(figsize=(9, 4))
    if groups is None:
        mask, kind = _plastic_synapses(rec, snaps, plastic)
        n = snaps.shape[2]
        having = [j for j in range(n) if mask[:, j].any()]
        if not having:
            raise NeurofabricError(f"no {kind} synapses to follow in the recording"
                                   + ("" if kind == "plastic" else " (no weight changed between snapshots)"))
        chosen = having[:DEFAULT_EVOLUTION] if neurons is None else _chosen(neurons, n)
        drawn = [j for j in chosen if mask[:, j].any()]
        if not drawn:
            raise NeurofabricError(f"neurons {ranges_text(chosen)} have no {kind} synapses "
                                   f"(neurons with some: {ranges_text(having)})")
        groups = {}
        for j in drawn:
            column = np.zeros(mask.shape, bool)
            column[:, j] = mask[:, j]
            groups[f"{kind} synapses into neuron {j}"] = column
        if neurons is not None:
            which = f"neurons {ranges_text(drawn)}"
        elif drawn == having:
            which = f"all {len(having)} neurons with {kind} synapses ({ranges_text(having)})"
        else:
            which = f"neurons {ranges_text(drawn)} ({len(drawn)} of the {len(having)} with {kind} synapses)"
        missing = [j for j in chosen if j not in drawn]
        title = (f"{title}: {which}" + (f"; no {kind} synapses into {ranges_text(missing)}" if missing else "")
                 + ("" if kind == "plastic" else " (synapses whose weight changed between snapshots)"))
    for label, mask in groups.items():
        if not isinstance(mask, np.ndarray):
            sel = np.zeros(snaps.shape[1:], bool)
            for k, j in mask:
                sel[k, j] = True
            mask = sel
        values = snaps[:, mask]
        mean = values.mean(axis=1)
        q25, q75 = np.percentile(values, [25, 75], axis=1)
        line, = ax.plot(steps, mean, lw=1.5, label=f"{label} ({int(mask.sum())} synapses)")
        ax.fill_between(steps, q25, q75, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("time (step)")
    ax.set_ylabel("weight (integer): mean, quartiles shaded")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ascii_raster(spikes, width=100, rows=None, mark="|", window=None):
    """A raster as text: one line per neuron (`rows`, default all), time binned to `width` columns.

    `window=(start, stop)` draws those steps only.
    """
    spikes = np.asarray(spikes)
    total, n = spikes.shape
    start, stop = _steps_window(window, total)
    spikes = spikes[start:stop]
    steps = stop - start
    width = max(1, min(width, steps)) if steps else 1
    rows = list(range(n)) if rows is None else _chosen(rows, n)
    edges = start + np.linspace(0, steps, width + 1).astype(int)
    label_w = len(str(max(n - 1, 0)))
    who = "" if rows == list(range(n)) else f", {_which(rows, n)}"
    lines = [f"{'':>{label_w}} time {start}..{stop} steps, {steps / width:.1f} steps per column{who}"]
    for j in rows:
        cells = [mark if spikes[lo - start:hi - start, j].any() else "." for lo, hi in zip(edges[:-1], edges[1:])]
        lines.append(f"{j:>{label_w}} {''.join(cells)}")
    return "\n".join(lines)


def save(fig, path, dpi=120, *, inputs=()):
    """Write a figure and close it, in the format its name's suffix says (png without one).

    The write is atomic and checked as `safe_io.atomic_output` does (never
    replacing anything but a regular file, nor one of `inputs`); an unknown
    format is a `NetworkError` naming the formats there are, before anything
    is written.
    """
    from pathlib import Path

    from .errors import NetworkError
    from .safe_io import atomic_output, check_output_path
    plt = _plt()
    try:
        check_output_path(path, inputs=inputs, what="plot file")
        fmt = Path(path).suffix[1:].lower() or "png"
        formats = fig.canvas.get_supported_filetypes()
        if fmt not in formats:
            raise NetworkError(f"plot file {str(path)!r}: format {fmt!r} is not supported; "
                               f"allowed: {', '.join(sorted(formats))}")
        with atomic_output(path, inputs=inputs, what="plot file") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
