"""The demo: a neuron learns a spike pattern hidden in noise with on-chip STDP.

After Masquelier, Guyonneau and Thorpe (2008): a fixed spatio-temporal
pattern over some of the inputs repeats at random times inside Poisson noise
on every input. Before learning the neuron fires at random; STDP strengthens
the synapses whose spikes come just before its own, which are the pattern's,
and weakens the rest, so after learning it fires when the pattern comes.
"""

import json
import logging
from pathlib import Path

import numpy as np

from .builder import NetworkBuilder
from .device import open_device
from .files import save_recording
from .golden import GoldenModel
from .progress import Progress
from .safe_io import atomic_output, check_output_folder

__all__ = ["PatternTask", "make_pattern_task", "pattern_network", "pattern_scores", "pattern_demo",
           "OUTPUT_FILES", "DEFAULT_OUT_DIR"]

logger = logging.getLogger(__name__)

#: The pictures `pattern_demo` draws when matplotlib is installed.
PICTURES = ("raster_before.png", "raster_after.png", "weights.png", "weight_evolution.png")
#: Every file `pattern_demo` writes into its folder.
OUTPUT_FILES = ("summary.json", "training.npz", *PICTURES)
#: The folder `pattern_demo` writes to when none is named (made with its parents).
DEFAULT_OUT_DIR = Path("out/demo")


class PatternTask:
    """A stimulus with a hidden repeated pattern, and where the pattern sits."""

    def __init__(self, spikes, onsets, pattern_len, pattern_inputs):
        self.spikes = spikes                  # (steps, m) bool
        self.onsets = onsets                  # steps where a pattern starts
        self.pattern_len = pattern_len
        self.pattern_inputs = pattern_inputs  # the inputs the pattern uses


def make_pattern_task(rng, steps, m=64, pattern_inputs=24, pattern_len=12, noise_p=0.02,
                      gap=(30, 70), pattern=None):
    """Poisson noise on `m` inputs with a pattern inserted every `gap` steps.

    The pattern makes each of `pattern_inputs` inputs spike once at a fixed
    offset; during a pattern those inputs carry only the pattern, so the pattern
    is not visible in the rates, only in the timing.
    """
    if pattern is None:
        chosen = rng.choice(m, pattern_inputs, replace=False)
        offsets = rng.integers(0, pattern_len, pattern_inputs)
        pattern = (chosen, offsets)
    chosen, offsets = pattern
    spikes = rng.random((steps, m)) < noise_p
    onsets = []
    t = int(rng.integers(*gap))
    while t + pattern_len < steps:
        spikes[t:t + pattern_len, chosen] = False
        spikes[t + offsets, chosen] = True
        onsets.append(t)
        t += pattern_len + int(rng.integers(*gap))
    return PatternTask(spikes, np.array(onsets), pattern_len, pattern), pattern


def pattern_network(m=64, w_init=30, learn=1):
    """One LIF neuron listening to every input through plastic synapses."""
    b = NetworkBuilder()
    inputs = b.add_inputs(m, "afferents")
    neuron = b.add_neurons(1, "detector", threshold=1200, tau_mem_steps=8, tau_syn_steps=2,
                            refractory=4, v_reset=0)
    b.connect(inputs, neuron, weights=w_init, plastic=True)
    b.set_learning(learn=learn, a_plus=16, a_minus=20, stdp_shift=8, tau_pre_steps=8, tau_post_steps=8,
                   inc_pre=255, inc_post=255, trace_mode=1, w_min=0, w_max=127)
    return b.build()


def pattern_scores(spikes, task, latency_slack=3):
    """Hit rate, false alarms per 1000 steps and mean latency of one neuron."""
    fired = np.flatnonzero(spikes[:, 0])
    inside = np.zeros(len(spikes), bool)
    hits, latencies = 0, []
    for t in task.onsets:
        window = slice(t, t + task.pattern_len + latency_slack)
        inside[window] = True
        in_window = fired[(fired >= window.start) & (fired < window.stop)]
        if in_window.size:
            hits += 1
            latencies.append(int(in_window[0] - t))
    outside = int((~inside[fired]).sum())
    free_steps = int((~inside).sum())
    return {
        "hit_rate": hits / max(len(task.onsets), 1),
        "false_alarms_per_1000_steps": 1000.0 * outside / max(free_steps, 1),
        "latency_steps": float(np.mean(latencies)) if latencies else None,
        "patterns": int(len(task.onsets)),
    }


def pattern_demo(device="golden", out_dir=None, seed=1, train_steps=6000,
                 test_steps=2000, progress=None):
    """Test, train with STDP on the device, test again; return summary lines.

    The files (`OUTPUT_FILES`) go to `out_dir` (default `DEFAULT_OUT_DIR`),
    each written atomically. The folder is checked before the run
    (`safe_io.check_output_folder`): a path that is a file, a named folder
    whose parent is missing, or a FIFO, device node, symlink or folder where
    one of the files goes is refused (`NetworkError`) before any work; a
    missing folder is made.
    """
    if out_dir is None:
        out_dir = check_output_folder(DEFAULT_OUT_DIR, OUTPUT_FILES, what="demo", parents=True)
    else:
        out_dir = check_output_folder(out_dir, OUTPUT_FILES, what="demo")
    say = progress or (lambda *_: None)
    rng = np.random.default_rng(seed)
    test_task, pattern = make_pattern_task(rng, test_steps)
    train_task, _ = make_pattern_task(rng, train_steps, pattern=pattern)
    net = pattern_network()
    frozen = net.copy()
    frozen.learn = 0
    with open_device(device) as dev:
        say(f"[1/3] testing before learning on {device} ({test_steps} steps)")
        dev.load(frozen)
        rec_before = dev.run(test_task.spikes, record=("v",))
        before = pattern_scores(rec_before.spikes, test_task)
        say(f"[2/3] learning with on-chip STDP ({train_steps} steps)")
        dev.load(net)
        trained = dev.run(train_task.spikes, snapshot_every=50,
                          progress=Progress("learning", enabled=progress is not None))
        learned = frozen.copy()
        learned.weights = dev.read_weights()
        say(f"[3/3] testing after learning ({test_steps} steps)")
        dev.load(learned)
        rec_after = dev.run(test_task.spikes, record=("v",))
        after = pattern_scores(rec_after.spikes, test_task)
    exact = None
    if device != "golden":
        # The same three phases on the golden model, to show the device is bit-exact.
        reference = GoldenModel(net).run(train_task.spikes, snapshot_every=50)
        exact = bool(np.array_equal(reference.spikes, trained.spikes)
                     and np.array_equal(reference.weight_snapshots, trained.weight_snapshots))
    chosen = pattern[0]
    w = learned.weights[:net.m, 0]
    others = np.setdiff1d(np.arange(net.m), chosen)
    result = {"device": device, "seed": seed, "before": before, "after": after, "bit_exact_with_golden": exact,
              "mean_weight_pattern_inputs": float(w[chosen].mean()),
              "mean_weight_other_inputs": float(w[others].mean())}
    with atomic_output(out_dir / "summary.json", mode="w", what="demo summary") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    save_recording(trained, out_dir / "training.npz")
    by_time = chosen[np.argsort(pattern[1], kind="stable")]
    pictures = _pictures(out_dir, net, test_task, rec_before, rec_after, trained, by_time, others)

    def fmt(s):
        lat = "-" if s["latency_steps"] is None else f"{s['latency_steps']:.1f} steps"
        return (f"hit rate {s['hit_rate']:.2f}, false alarms {s['false_alarms_per_1000_steps']:.1f} "
                f"per 1000 steps, latency {lat}")
    return [
        f"pattern detection on {device}: 1 neuron, {net.m} inputs, pattern over "
        f"{len(chosen)} inputs repeated {before['patterns']} times in {test_steps} test steps",
        f"  before learning: {fmt(before)}",
        f"  after learning:  {fmt(after)}",
        *([f"  learning on {device} was bit-exact with the golden model (every spike and every weight "
             f"snapshot): {'yes' if exact else 'NO'}"] if exact is not None else []),
        f"  weights of pattern inputs {result['mean_weight_pattern_inputs']:.1f}, "
        f"of the others {result['mean_weight_other_inputs']:.1f} (started at {int(net.weights[0, 0])})",
        f"  wrote {out_dir / 'summary.json'}, {out_dir / 'training.npz'}"
        + (f" and {len(pictures)} pictures ({', '.join(p.name for p in pictures)})" if pictures else
           " (no pictures: matplotlib is not installed)"),
    ]


def _pictures(out_dir, net, task, rec_before, rec_after, trained, chosen, others):
    """Rasters before and after, the weights before and after, their evolution."""
    try:
        from . import plot
    except ImportError:
        return []
    try:
        plt = plot._plt()
    except Exception:
        return []
    paths = []
    window = (0, 300)
    spans = [(t, t + task.pattern_len) for t in task.onsets]
    before_png, after_png, weights_png, evolution_png = PICTURES
    for name, rec, label in ((before_png, rec_before, "before"), (after_png, rec_after, "after")):
        fig = plot.raster(rec, title=f"test stimulus {label} learning: the pattern (shaded) hides in noise",
                          window=window, highlight=spans)
        plot.save(fig, out_dir / name)
        paths.append(out_dir / name)
    order = np.concatenate([chosen, others])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    x = np.arange(len(order))
    ax.bar(x, net.weights[order, 0], color="lightgray", label="before learning")
    colors = ["tab:orange"] * len(chosen) + ["tab:blue"] * len(others)
    ax.scatter(x, trained.weights[order, 0], c=colors, s=14, zorder=3, label="after learning")
    ax.axvline(len(chosen) - 0.5, color="black", lw=0.8)
    ax.set_xticks([len(chosen) / 2, len(chosen) + len(others) / 2],
                  [f"{len(chosen)} pattern inputs, in the order they spike in the pattern",
                   f"{len(others)} other inputs"])
    ax.set_ylabel("weight into the detector (integer)")
    ax.set_title("weights before (bars) and after (dots) learning")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    plot.save(fig, out_dir / weights_png)
    paths.append(out_dir / weights_png)
    third = len(chosen) // 3
    groups = {}
    for label, rows in ((f"the first {third} pattern inputs to spike", chosen[:third]),
                        ("the later pattern inputs", chosen[third:]), ("the other inputs", others)):
        mask = np.zeros(net.weights.shape, bool)
        mask[rows, 0] = True
        groups[label] = mask
    fig = plot.evolution(trained, groups,
                         title="weights into the detector during learning")
    plot.save(fig, out_dir / evolution_png)
    paths.append(out_dir / evolution_png)
    return paths
