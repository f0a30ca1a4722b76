"""Pictures of recordings: rasters, v/i traces, weight maps, weight evolution.

Every function takes a `Recording` (or arrays) and returns a matplotlib
`Figure`; `save(fig, path)` writes it. `ascii_raster` draws a raster in the
terminal, for machines with no display. matplotlib is an optional extra
(`neurofabric[plot]`) and is imported only here, with the Agg backend.
"""

import numpy as np

from .errors import NeurofabricError

__all__ = ["raster", "traces", "weights", "evolution", "ascii_raster", "save", "KINDS"]

KINDS = ("raster", "traces", "weights", "evolution")


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NeurofabricError("plots need matplotlib: pip install 'neurofabric[plot]'") from None
    return plt


def _spike_panel(ax, spikes, title, ylabel, color, step0=0):
    t, idx = np.nonzero(spikes)
    ax.scatter(t + step0, idx, s=4 if len(t) < 20000 else 1, marker="|", color=color, linewidths=1)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def raster(rec, title="spikes", step_ms=None, window=None, highlight=None):
    """Input and output rasters, one above the other, sharing the time axis.

    `window=(start, stop)` shows those steps; `highlight` is a list of
    (start, stop) step ranges to shade (for example where a pattern was).
    """
    plt = _plt()
    spikes = np.asarray(rec.spikes)
    inputs = getattr(rec, "input_spikes", None)
    start, stop = window or (0, spikes.shape[0])
    rows = 2 if inputs is not None and inputs.shape[1] else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.2 + 2.2 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1][:rows] if rows == 2 else [1]})
    axes = np.atleast_1d(axes)
    if rows == 2:
        _spike_panel(axes[0], inputs[start:stop], f"input spikes ({inputs.shape[1]} channels)", "input",
                     "tab:gray", start)
    _spike_panel(axes[-1], spikes[start:stop], f"output spikes ({spikes.shape[1]} neurons)", "neuron",
                 "tab:blue", start)
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


def traces(rec, neurons=None, title="membrane and current"):
    """v and i of chosen neurons over time (needs a recording made with --record v,i)."""
    plt = _plt()
    have = [key for key in ("v", "i") if getattr(rec, key, None) is not None]
    if not have:
        raise NeurofabricError("the recording has no v or i: run with --record v,i")
    n = rec.spikes.shape[1]
    neurons = list(range(min(n, 4))) if neurons is None else list(neurons)
    for j in neurons:
        if not 0 <= j < n:
            raise NeurofabricError(f"neuron {j} is out of range: the recording has neurons 0..{n - 1}")
    fig, axes = plt.subplots(len(have), 1, figsize=(10, 2.8 * len(have)), sharex=True)
    axes = np.atleast_1d(axes)
    steps = np.arange(rec.spikes.shape[0])
    for ax, key in zip(axes, have):
        data = getattr(rec, key)
        for j in neurons:
            line, = ax.plot(steps, data[:, j], lw=1, label=f"neuron {j}")
            if key == "v":
                fired = np.flatnonzero(rec.spikes[:, j])
                ax.plot(fired, data[fired, j], "v", color=line.get_color(), ms=4)
        ax.set_ylabel("membrane v (integer)" if key == "v" else "current i (integer)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=min(len(neurons), 4))
    axes[-1].set_xlabel("time (step); triangles mark spikes")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def weights(w, m=None, title="weights", before=None):
    """Heatmap of a weight matrix `(m+n, n)`, sources down, neurons across.

    With `before`, shows before and after side by side with one colour scale.
    """
    plt = _plt()
    w = np.asarray(w)
    mats = [("before", np.asarray(before)), ("after", w)] if before is not None else [("", w)]
    lim = max(1, int(max(np.abs(x).max() for _, x in mats)))
    fig, axes = plt.subplots(1, len(mats), figsize=(4 + 3.5 * len(mats), 5), squeeze=False)
    for ax, (label, mat) in zip(axes[0], mats):
        image = ax.imshow(mat, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        if m is not None and 0 < m < mat.shape[0]:
            ax.axhline(m - 0.5, color="black", lw=0.8)
            ax.text(mat.shape[1] - 0.5, m - 0.5, " inputs above, neurons below", va="bottom", ha="right",
                    fontsize=7)
        ax.set_xlabel("target neuron j")
        ax.set_ylabel("source k (inputs 0..m-1, then neurons)")
        ax.set_title(f"{title} {label}".strip(), fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), label="weight (integer)")
    return fig


def evolution(rec, groups=None, title="weight evolution"):
    """Mean (and interquartile range) of weight groups over the snapshots of a run.

    `groups` maps a label to a boolean mask `(m+n, n)` or a list of (k, j)
    synapses; by default, the mean of each target neuron's incoming weights.
    """
    plt = _plt()
    snaps = getattr(rec, "weight_snapshots", None)
    if snaps is None or len(snaps) == 0:
        raise NeurofabricError("the recording has no weight snapshots: run with --snapshot-every K")
    steps = getattr(rec, "snapshot_steps", None)
    steps = np.arange(1, len(snaps) + 1) if steps is None else np.asarray(steps)
    fig, ax = plt.subplots(figsize=(9, 4))
    if groups is None:
        n = snaps.shape[2]
        groups = {f"into neuron {j}": np.zeros(snaps.shape[1:], bool) for j in range(min(n, 8))}
        for j, mask in enumerate(groups.values()):
            mask[:, j] = True
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
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ascii_raster(spikes, width=100, rows=None, mark="|"):
    """A raster as text: one line per neuron, time binned to `width` columns."""
    spikes = np.asarray(spikes)
    steps, n = spikes.shape
    width = max(1, min(width, steps)) if steps else 1
    rows = range(n) if rows is None else rows
    edges = np.linspace(0, steps, width + 1).astype(int)
    label_w = len(str(max(n - 1, 0)))
    lines = [f"{'':>{label_w}} time 0..{steps} steps, {steps / width:.1f} steps per column"]
    for j in rows:
        cells = [mark if spikes[lo:hi, j].any() else "." for lo, hi in zip(edges[:-1], edges[1:])]
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
