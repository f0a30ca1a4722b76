"""The digits demo with on-chip learning: the core's own STDP learns the classifier.

The off-chip variant (`digits.py`) trains a softmax in floating point and
loads its quantised weights. Here the weights start at 0 and the core learns
them with its pair-based STDP (spec section 5.5, learning on), supervised by
a teacher signal; nothing about the weights is computed off-chip. The same
split, pixels and readout as the off-chip variant are used, so the accuracies
compare.

Network: 64 pixel inputs (plastic), 3 teacher inputs per class (30, not
plastic, weight 127 onto their class's neuron), 10 class neurons (plastic)
with no memory from one step to the next (`decay_mem = decay_syn = 4096`:
the membrane is this step's input) and a refractory period of one step. A class
neuron therefore fires in a step exactly when the summed weights of the
pixels spiking in that step reach its threshold of 381 = 3 * 127: a threshold
unit, a perceptron.

A training sample is `TRAIN_FRAMES` frames of 4 steps. Each frame takes one
slice of the regular rate code of `digits.encode` (a pixel of intensity p is
on in p of every 16 frames) and plays it as:

    step 0  the frame's pixels spike. A class neuron whose weights from them
            reach the threshold fires: its own answer. It fires in the step
            its inputs arrive, so STDP potentiates those synapses by
            (a_plus * x) >> stdp_shift = (2 * 255) >> 8 = 1.
    step 1  the same pixels spike again, one step after the neuron's spike:
            depression by (a_minus * y) >> stdp_shift = (3 * 255) >> 8 = 2.
            The refractory step keeps the neuron from answering twice.
    step 2  the label's 3 teacher inputs spike: 3 * 127 reaches the threshold,
            so the label's neuron fires. The pixel traces of step 1 have
            about halved (decay_pre = 2032 keeps 2064 / 4096 of them, rounded
            toward zero: 255 -> 128): potentiation by (2 * 128) >> 8 = 1. An
            exact halving, 2048, would leave 127, and (2 * 127) >> 8 = 0.
    step 3  quiet. The post traces are gone (decay_post = 4096) and the
            pixel traces are down to 64, then 32 as the next frame starts:
            (2 * 64) >> 8 = 0, so the next frame starts with nothing left
            over from this one.

So for every pixel that spikes in a frame, the synapse onto class j changes
by teacher(j) - own answer(j): +1 when the label's neuron stayed silent, -1
when a wrong neuron fired, 0 when the answer was right. That is the
perceptron rule, carried out by the core's STDP with the learning registers
in `LEARNING` (exactly so inside the weight bounds; at w_max the +1 of step 0
is clipped, and a wrong answer there costs 2). As no state outlives a frame, the whole training set runs as
one continuous stimulus, with no reset between samples, on any device.

Testing loads the learned weights with learning off and plays the test
images, without teacher spikes, for `TEST_FRAMES` frames each, all of them in
one call as a batch of trials (`Device.run_trials`); the prediction is
`digits.predict` of the class neurons' spikes (most spikes, then the first to
fire; a silent network answers 0).
"""

import logging
import time

import numpy as np

from . import digits
from .builder import NetworkBuilder
from .device import open_device
from .progress import Progress

__all__ = ["onchip_network", "training_stimulus", "test_stimulus", "own_answers", "onchip_digits_demo",
           "save_onchip_results", "summary_lines", "FRAME_STEPS", "TEACHER_ROWS", "LEARNING", "OUTPUT_FILES"]

logger = logging.getLogger(__name__)

CLASSES = 10
PIXELS = 64
FRAME_STEPS = 4
#: Teacher inputs per class: one input's weight is at most 127 (8-bit
#: weights), and the threshold has to be high next to the learning step of 1
#: for the perceptron to settle (381 tested better than 127 or 254 on a
#: validation part of the training split); 3 inputs make 381.
TEACHER_ROWS = 3
TEACHER_WEIGHT = 127
THRESHOLD = TEACHER_ROWS * TEACHER_WEIGHT
#: Learning registers: the frame timeline in the module docstring depends on
#: every one of them (the +1, -2, +1 per frame and the clean frame ends).
LEARNING = dict(a_plus=2, a_minus=3, stdp_shift=8, decay_pre=2032, decay_post=4096, inc_pre=255, inc_post=255,
                trace_mode=1, w_min=-128, w_max=127)
#: Frames per training sample, passes over the training split, frames per
#: test sample: 8 frames and 3 epochs were chosen on a validation part of the
#: training split (more frames per sample helped less than more epochs).
TRAIN_FRAMES = 8
EPOCHS = 3
TEST_FRAMES = 16
#: The pictures `save_onchip_results` draws when matplotlib is installed.
PICTURES = ("learned_weights.png", "learning_curve.png")
#: Every file `save_onchip_results` writes: check them before the work with
#: `safe_io.check_output_folder(folder, OUTPUT_FILES)`.
OUTPUT_FILES = ("learned_network.npz", "result.json", *PICTURES)


def onchip_network(learn=1):
    """The untrained network: weights 0 from the pixels, teacher weights fixed.

    Sources: pixels 0..63, then the teacher inputs, `TEACHER_ROWS` per class
    (class c at 64 + 3c .. 64 + 3c + 2); neurons: the 10 classes.
    """
    b = NetworkBuilder()
    pixels = b.add_inputs(PIXELS, "pixels")
    teacher = b.add_inputs(CLASSES * TEACHER_ROWS, "teacher")
    classes = b.add_neurons(CLASSES, "classes", threshold=THRESHOLD, decay_mem=4096, decay_syn=4096,
                             refractory=1)
    b.connect(pixels, classes, weights=0, plastic=True)
    teacher_weights = np.zeros((CLASSES * TEACHER_ROWS, CLASSES), np.int64)
    teacher_weights[np.arange(CLASSES * TEACHER_ROWS), np.arange(CLASSES * TEACHER_ROWS) // TEACHER_ROWS] = \
        TEACHER_WEIGHT
    b.connect(teacher, classes, weights=teacher_weights)
    b.set_learning(learn=learn, **LEARNING)
    return b.build()


def _frames(x, frames):
    """`(samples, frames, FRAME_STEPS, m)` stimulus with the pixels on steps 0 and 1."""
    bursts = digits.encode(x, frames)
    stim = np.zeros((len(x), frames, FRAME_STEPS, PIXELS + CLASSES * TEACHER_ROWS), bool)
    stim[:, :, 0, :PIXELS] = bursts
    stim[:, :, 1, :PIXELS] = bursts
    return stim


def training_stimulus(x, y, frames=TRAIN_FRAMES):
    """Pixels and teacher spikes of the samples, one after the other: `(steps, m)` bool."""
    stim = _frames(x, frames)
    rows = PIXELS + TEACHER_ROWS * np.asarray(y)[:, None] + np.arange(TEACHER_ROWS)
    stim[np.arange(len(x))[:, None], :, 2, rows] = True
    return stim.reshape(-1, stim.shape[-1])


def test_stimulus(x, frames=TEST_FRAMES):
    """The pixels alone, as in training but with no teacher: `(steps, m)` bool."""
    stim = _frames(x, frames)
    return stim.reshape(-1, stim.shape[-1])


def own_answers(spikes, frames):
    """The class neurons' spikes of step 0 of every frame: `(samples, frames, 10)`.

    During training these are the network's own answers (the teacher's
    spikes fall on step 2).
    """
    per_sample = np.asarray(spikes).reshape(-1, frames, FRAME_STEPS, CLASSES)
    return per_sample[:, :, 0, :]


def _predict(spikes, frames):
    answers = own_answers(spikes, frames)
    return digits.predict(answers, np.zeros((len(answers), CLASSES), np.int64))


def _evaluate(device, network, x, frames, progress=None):
    """Predictions and `(samples * steps, 10)` spikes of `network` (learning off) on images `x`.

    The images run as one batch of trials (`Device.run_trials`), each from the
    reset state: no state outlives a frame, so this is what one continuous run
    of them gives. `progress(done, total)` counts images.
    """
    device.load(network)
    trials = test_stimulus(x, frames).reshape(len(x), frames * FRAME_STEPS, -1)
    rec = device.run_trials(trials, progress=progress)
    spikes = rec.spikes.reshape(-1, CLASSES)
    return _predict(spikes, frames), spikes


def onchip_digits_demo(device="golden", seed=0, epochs=EPOCHS, train_frames=TRAIN_FRAMES,
                       test_frames=TEST_FRAMES, train_samples=None, test_samples=None, subset=50,
                       show_progress=False, compare_offchip=True):
    """Learn on the golden model with STDP, test with learning off; return a result dict.

    The first epoch presents the training split in its order, later ones in
    a permutation drawn from `seed`. `train_samples`/`test_samples` cut the
    split (for quick checks). With a device other than "golden", the
    learning of the first `subset` training samples and the test of the
    first `subset` test samples run there too and are compared with the
    golden model, spike for spike and weight for weight. `show_progress`
    prints progress lines on a terminal.
    """
    start = time.monotonic()
    xtr, ytr, xte, yte = digits.load_split(seed)
    xtr, ytr = xtr[:train_samples], ytr[:train_samples]
    xte, yte = xte[:test_samples], yte[:test_samples]
    rng = np.random.default_rng(seed)
    orders = [np.arange(len(xtr))] + [rng.permutation(len(xtr)) for _ in range(epochs - 1)]
    order = np.concatenate(orders)
    untrained = onchip_network(learn=1)
    frozen = untrained.copy()
    frozen.learn = 0
    with open_device("golden") as golden:
        untrained_pred, _ = _evaluate(golden, frozen, xte, test_frames)
        golden.load(untrained)
        rec = golden.run(training_stimulus(xtr[order], ytr[order], train_frames),
                         progress=Progress("learning (steps)", enabled=show_progress))
        learned = frozen.copy()
        learned.weights = golden.read_weights()
        pred, test_spikes = _evaluate(golden, learned, xte, test_frames,
                                      Progress("testing (samples)", enabled=show_progress))
    train_right = _predict(rec.spikes, train_frames) == ytr[order]
    last = train_right[-len(xtr):]
    result = {
        "learning": "on-chip", "device": device, "seed": seed, "epochs": epochs,
        "train_samples": int(len(xtr)), "test_samples": int(len(yte)),
        "train_frames": train_frames, "test_frames": test_frames, "frame_steps": FRAME_STEPS,
        "training_steps": int(rec.steps),
        "test_accuracy": float(np.mean(pred == yte)),
        "untrained_test_accuracy": float(np.mean(untrained_pred == yte)),
        "last_epoch_train_accuracy": float(last.mean()),
        "train_answers_right": train_right,
        "weights_changed": int((learned.weights != untrained.weights).sum()),
        "class_means": np.array([xtr[ytr == c].mean(axis=0) for c in range(CLASSES)]),
        "spikes_per_test_sample": float(test_spikes.sum() / max(len(yte), 1)),
        "network": learned, "untrained_network": untrained,
    }
    if compare_offchip:
        off = digits.digits_demo(seed=seed)
        result.update(offchip_test_accuracy=off["test_accuracy"], offchip_float_accuracy=off["float_accuracy"])
    if device != "golden":
        result.update(_check_device(device, untrained, learned, xtr, ytr, xte, yte, train_frames, test_frames,
                                    subset))
    result["run_s"] = time.monotonic() - start
    return result


def _check_device(device, untrained, learned, xtr, ytr, xte, yte, train_frames, test_frames, count):
    """Replay the first `count` training samples and test samples on `device` and on the golden model."""
    train_stim = training_stimulus(xtr[:count], ytr[:count], train_frames)
    runs = {}
    for name in ("golden", device):
        with open_device(name) as dev:
            dev.load(untrained)
            rec = dev.run(train_stim)
            pred, spikes = _evaluate(dev, learned, xte[:count], test_frames)
            runs[name] = (rec.spikes, rec.weights, pred, spikes)
    (g_train, g_w, g_pred, g_spikes), (d_train, d_w, d_pred, d_spikes) = runs["golden"], runs[device]
    learning_agrees = bool(np.array_equal(g_train, d_train) and np.array_equal(g_w, d_w))
    test_agrees = bool(np.array_equal(g_pred, d_pred) and np.array_equal(g_spikes, d_spikes))
    return {"device_samples": int(count), "device_training_steps": int(len(train_stim)),
            "device_weights_changed": int((d_w != untrained.weights).sum()),
            "device_accuracy": float(np.mean(d_pred == yte[:count])),
            "device_learning_agrees": learning_agrees, "device_test_agrees": test_agrees,
            "device_agrees": learning_agrees and test_agrees}


def summary_lines(result):
    """What the command line prints about an `onchip_digits_demo` result."""
    r = result
    lines = [
        f"digits, on-chip learning: the core's own STDP learned the weights from 0 on the golden model, "
        f"supervised by teacher spikes: {r['train_samples']} training samples x {r['epochs']} epochs, "
        f"{r['train_frames']} frames of {r['frame_steps']} steps per sample ({r['training_steps']} steps)",
        f"  while learning, the network's own answers were right for {r['last_epoch_train_accuracy']:.3f} of "
        f"the training samples of the last epoch; {r['weights_changed']} of {PIXELS * CLASSES} weights changed",
        f"test accuracy: {r['test_accuracy']:.3f} ({r['test_samples']} samples), weights learned on-chip by STDP, "
        f"tested on the golden model with learning off; before learning: {r['untrained_test_accuracy']:.3f} "
        f"(silent, answers 0)",
    ]
    if "offchip_test_accuracy" in r:
        lines.append(f"  compare: the off-chip softmax, quantised, on the same samples: "
                     f"{r['offchip_test_accuracy']:.3f} ({r['offchip_float_accuracy']:.3f} in floating point)")
    if "device_samples" in r:
        verdict = "identical to the golden model" if r["device_agrees"] else "DIFFERENT from the golden model"
        lines.append(f"on {r['device']}: learning from the first {r['device_samples']} training samples "
                     f"({r['device_training_steps']} steps, {r['device_weights_changed']} weights changed) and "
                     f"the test of the first {r['device_samples']} test samples (accuracy "
                     f"{r['device_accuracy']:.3f}): spikes, weights and predictions {verdict}")
    return lines


def save_onchip_results(result, out_dir):
    """Write the learned network, result.json and the pictures; return the paths written.

    Every file is written atomically, and all of them (`OUTPUT_FILES`) are
    checked before the first is written (`safe_io.check_output_folder`; a
    missing `out_dir` whose parent exists is made), so a refused name costs
    none of the others. Call `check_output_folder(out_dir, OUTPUT_FILES)`
    before `onchip_digits_demo` to have it refused before the learning.
    """
    import json

    from .files import save_network
    from .safe_io import atomic_output, check_output_folder
    out = check_output_folder(out_dir, OUTPUT_FILES, what="digits demo")
    network_file, result_file = (out / name for name in OUTPUT_FILES[:2])
    save_network(result["network"], network_file)
    plain = {k: v for k, v in result.items()
             if k not in ("network", "untrained_network", "train_answers_right", "class_means")}
    with atomic_output(result_file, mode="w", what="digits demo results") as fh:
        fh.write(json.dumps(plain, indent=2) + "\n")
    return [network_file, result_file] + _pictures(out, result)


def _pictures(out, result):
    try:
        from . import plot
        plt = plot._plt()
    except Exception:
        return []
    paths = []
    w = result["network"].weights[:PIXELS, :CLASSES]
    lim = max(1, int(np.abs(w).max()))
    fig, axes = plt.subplots(2, CLASSES, figsize=(13, 3.6), layout="constrained")
    for c in range(CLASSES):
        axes[0, c].imshow(result["class_means"][c].reshape(8, 8), cmap="gray_r", vmin=0,
                          vmax=digits.INTENSITY_MAX, interpolation="nearest")
        axes[0, c].set_title(f"digit {c}", fontsize=10)
        image = axes[1, c].imshow(w[:, c].reshape(8, 8), cmap="RdBu_r", vmin=-lim, vmax=lim,
                                  interpolation="nearest")
        for ax in axes[:, c]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("mean training\nimage", fontsize=9)
    axes[1, 0].set_ylabel("weights into\nits neuron", fontsize=9)
    fig.suptitle("weights learned on-chip by STDP, pixel by pixel, into each class neuron (bottom), "
                 "under the average image of the class (top)\n"
                 "red: a lit pixel pushes the neuron towards firing; blue: away from it", fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="weight (integer)", shrink=0.45, anchor=(0, 0.1))
    weights_png, curve_png = PICTURES
    plot.save(fig, out / weights_png)
    paths.append(out / weights_png)

    right = result["train_answers_right"]
    n, block = result["train_samples"], max(1, result["train_samples"] // 20)
    ends = np.arange(block, len(right) + 1, block)
    acc = [right[e - block:e].mean() for e in ends]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(ends, acc, marker=".", label=f"own answers while learning (blocks of {block} samples)")
    ax.axhline(result["test_accuracy"], color="tab:green", ls="--",
               label=f"test accuracy after learning ({result['test_samples']} held-out samples)")
    if "offchip_test_accuracy" in result:
        ax.axhline(result["offchip_test_accuracy"], color="tab:gray", ls=":",
                   label="off-chip softmax, quantised (test)")
    for e in range(1, result["epochs"]):
        ax.axvline(e * n, color="black", lw=0.6)
    ax.set_xlabel(f"training samples presented (epochs of {n} separated by lines)")
    ax.set_ylabel("fraction answered right")
    ax.set_ylim(0, 1.02)
    ax.set_title("on-chip STDP learning: the network's own answers get better as it learns")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plot.save(fig, out / curve_png)
    paths.append(out / curve_png)
    return paths
