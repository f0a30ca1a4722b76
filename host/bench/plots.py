"""The bench's pictures (matplotlib, the `plot` extra)."""

from pathlib import Path

__all__ = ["plot_core"]


def _legend(ax):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _log2_axis(ax, values):
    values = sorted(set(values))
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.minorticks_off()


def plot_core(core, path):
    """Cycles per step against size, activity and lanes, and synaptic events
    per cycle against the memory's limit, in one PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, ref = core["runs"], core["reference"]
    act = ref["activity"]
    color = {0: "C0", 1: "C3"}
    learning = {0: "learning off", 1: "learning on"}

    def pick(**want):
        return [r for r in rows if all(abs(r[k] - v) < 1e-9 if isinstance(v, float) else r[k] == v
                                       for k, v in want.items())]

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    families = [("n = m", lambda r: r["n"] == r["m"], "n", "o", "-"),
                (f"n, m = {ref['m']}", lambda r: r["m"] == ref["m"], "n", "s", "--"),
                (f"m, n = {ref['n']}", lambda r: r["n"] == ref["n"], "m", "^", ":")]
    sizes = []
    for label, keep, x, marker, style in families:
        for learn in (0, 1):
            pts = sorted((r[x], r["cycles"]) for r in pick(lanes=ref["lanes"], weight_memory=ref["weight_memory"],
                                                          activity=act, learn=learn) if keep(r))
            if len(pts) >= 2:
                ax.plot(*zip(*pts), style, marker=marker, color=color[learn], label=f"{label}, {learning[learn]}")
                sizes += [p[0] for p in pts]
    if sizes:
        _log2_axis(ax, sizes)
    ax.set(yscale="log", xlabel="neurons n (or inputs m)", ylabel="cycles per step",
           title=f"size ({ref['lanes']} lanes, activity {act:g})")
    _legend(ax)

    ax = axes[0][1]
    for learn in (0, 1):
        pts = sorted((r["activity"], r["cycles"]) for r in pick(n=ref["n"], m=ref["m"], lanes=ref["lanes"],
                                                                weight_memory=ref["weight_memory"], learn=learn))
        if pts:
            ax.plot(*zip(*pts), marker="o", color=color[learn], label=learning[learn])
    for learn, key in ((0, "learn_off"), (1, "learn_on")):
        target = core["targets"][key]
        ax.axhline(target, color=color[learn], lw=0.8, ls=":")
        ax.annotate(f"target, {learning[learn]}", (0, target), fontsize=7, va="bottom", color=color[learn])
    ax.set(xlabel="activity (inputs and neurons spiking per step)", ylabel="cycles per step",
           title=f"activity (n = {ref['n']}, m = {ref['m']}, {ref['lanes']} lanes)")
    _legend(ax)

    ax = axes[1][0]
    dual = pick(weight_memory="dual", activity=act)
    groups = sorted({(r["n"], r["m"]) for r in dual})
    lanes_seen = []
    for marker, (n, m) in zip("os^vD<>", groups):
        for learn in (0, 1):
            pts = sorted((r["lanes"], r["cycles"]) for r in dual if (r["n"], r["m"], r["learn"]) == (n, m, learn))
            if len(pts) >= 2:
                ax.plot(*zip(*pts), marker=marker, color=color[learn], label=f"n = {n}, m = {m}, {learning[learn]}")
                lanes_seen += [p[0] for p in pts]
    if lanes_seen:
        _log2_axis(ax, lanes_seen)
    ax.set(ylim=(0, None), xlabel="lanes (weights per memory word)", ylabel="cycles per step",
           title=f"lanes (activity {act:g})")
    _legend(ax)

    ax = axes[1][1]
    for learn in (0, 1):
        pts = [(r["lanes"], r["events_per_cycle"]) for r in dual if r["learn"] == learn]
        if pts:
            ax.scatter(*zip(*pts), color=color[learn], s=18, label=f"{learning[learn]} (every n, m)")
    lanes = sorted({r["lanes"] for r in dual})
    if lanes:
        ax.plot(lanes, lanes, ":", color="grey", label="memory limit: lanes weights read per cycle")
        _log2_axis(ax, lanes)
    ax.set(xlabel="lanes", ylabel="synaptic events per cycle", ylim=(0, None),
           title=f"synaptic events per cycle (activity {act:g})")
    _legend(ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
