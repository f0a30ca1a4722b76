"""Handwritten digits on the core: the task NeuroCoreX demonstrates, done properly.

scikit-learn's 8x8 digits (1,797 images shipped inside scikit-learn, no
download) are split once into a training set and a held-out test set of 500.
A softmax (multinomial logistic) regression is trained off-chip in floating
point; its weights become a one-layer spiking network through the
physical-units layer (`units.PhysicalNetwork`), which quantises them to the
device's weight bits and reports what that cost.

Encoding: each of the 64 pixels drives one input channel with a regular spike
train whose rate is its intensity (0..16 of 16 spikes per 16 steps), for
`steps` steps; the test set runs in one call, as a batch of trials each from
the reset state (`Device.run_trials`). Readout: 10 integrate-and-fire
neurons, one per class, with reset by subtraction; the prediction is the
neuron with the most spikes, ties going to the one that fired first, and a
silent layer to the highest membrane potential at the end.
"""

import numpy as np

from .errors import NetworkError
from .units import PhysicalNetwork

__all__ = ["load_split", "train_softmax", "encode", "digits_network", "predict", "digits_demo",
           "save_digits_results", "TEST_SIZE", "OUTPUT_FILES"]

TEST_SIZE = 500
INTENSITY_MAX = 16
#: Every file `save_digits_results` writes: check them before the work with
#: `safe_io.check_output_folder(folder, OUTPUT_FILES)`.
OUTPUT_FILES = ("digits_network.npz", "quantisation_report.txt", "result.json")


def load_split(seed=0, test_size=TEST_SIZE):
    """`(x_train, y_train, x_test, y_test)`, pixels 0..16, a fixed random split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NetworkError("the digits demo needs scikit-learn: pip install 'neurofabric[demo]'") from None
    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    x, y = data.data[order].astype(float), data.target[order]
    return x[test_size:], y[test_size:], x[:test_size], y[:test_size]


def train_softmax(x, y, classes=10, epochs=300, lr=0.5, l2=1e-3, seed=0):
    """Full-batch gradient descent on the cross-entropy; returns `(W (64, 10), b (10,))`."""
    rng = np.random.default_rng(seed)
    xs = x / INTENSITY_MAX
    w = rng.normal(0, 0.01, (x.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(epochs):
        z = xs @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        w -= lr * (xs.T @ grad + l2 * w)
        b -= lr * grad.sum(axis=0)
    return w, b


def float_accuracy(w, b, x, y):
    return float(np.mean(np.argmax((x / INTENSITY_MAX) @ w + b, axis=1) == y))


def encode(x, steps):
    """Regular spike trains: pixel value p spikes in p of every 16 steps, evenly spread.

    Returns a bool `(len(x), steps, 64)` array.
    """
    t = np.arange(steps)[:, None]
    p = x.astype(np.int64)[:, None, :]
    # Spike when floor((t+1) * p / 16) steps past floor(t * p / 16).
    return ((t + 1) * p // INTENSITY_MAX - t * p // INTENSITY_MAX) > 0


def digits_network(w, b, dt=1e-3, threshold=1.0, widths=None, tolerance=0.1):
    """The trained classifier as a spiking network: `(Network, QuantisationReport)`.

    Each class neuron integrates `sum_k W[k, j] * s_k + b_j / 16` per step (IF,
    no leak), so after T steps its potential is about T/16 times the float score.
    """
    phys = PhysicalNetwork(dt=dt)
    phys.add_inputs(w.shape[0], "pixels")
    phys.add_population("classes", w.shape[1], model="if", r=1.0 / dt, v_threshold=threshold,
                        v_reset=0.0, reset="subtract", i_bias=b / INTENSITY_MAX)
    phys.connect("pixels", "classes", w)
    return phys.compile(widths=widths, tolerance=tolerance)


def predict(spikes, v_final):
    """Class per sample from `(samples, steps, 10)` spikes and `(samples, 10)` final v."""
    counts = spikes.sum(axis=1)
    steps = spikes.shape[1]
    first = np.where(spikes.any(axis=1), spikes.argmax(axis=1), steps)
    # Most spikes; then earliest first spike; then highest final potential.
    key = counts * (steps + 1) * 2 - first * 2
    best = key.max(axis=1, keepdims=True)
    tied = key == best
    v_masked = np.where(tied, v_final, np.iinfo(np.int64).min)
    return v_masked.argmax(axis=1)


def run_samples(device, network, samples, steps, progress=None):
    """Run the samples as one batch of trials (`Device.run_trials`), each from the reset state.

    `samples` is `(s, steps, m)`; returns `(spikes (s, steps, n), v_final (s, n))`.
    `progress(done, total)` counts samples.
    """
    device.load(network)
    rec = device.run_trials(samples, steps, record=("v",), progress=progress)
    return rec.spikes.astype(np.uint8), rec.v[:, -1].astype(np.int64)


#: Steps per sample and threshold (volts of the float score scale) of the demo:
#: chosen on the training split's behaviour, they give about 6 spikes per sample
#: per active class.
DEMO_STEPS = 32
DEMO_THRESHOLD = 4.0


def digits_demo(device="golden", seed=0, steps=DEMO_STEPS, threshold=DEMO_THRESHOLD, subset=None,
                progress=None):
    """Train off-chip, quantise, evaluate on the device; return a result dict.

    With a device other than "golden", `subset` test samples (default 50) run
    on it and their predictions are checked against the golden model's.
    """
    from .device import open_device
    xtr, ytr, xte, yte = load_split(seed)
    w, b = train_softmax(xtr, ytr, seed=seed)
    # The class biases are about one integer step per time step, so rounding
    # moves them by up to a third: the demo accepts that (tolerance 0.5), and
    # the report shows it. The accuracy it costs is in the result, next to
    # the float classifier's.
    network, report = digits_network(w, b, threshold=threshold, tolerance=0.5)
    stimuli = encode(xte, steps)
    with open_device("golden") as golden:
        spikes, v_final = run_samples(golden, network, stimuli, steps, progress)
    pred = predict(spikes, v_final)
    result = {
        "device": device, "test_samples": int(len(yte)), "train_samples": int(len(ytr)), "steps": steps,
        "test_accuracy": float(np.mean(pred == yte)), "float_accuracy": float_accuracy(w, b, xte, yte),
        "spikes_per_sample": float(spikes.sum(axis=(1, 2)).mean()), "report": report, "network": network,
    }
    if device != "golden":
        count = subset or 50
        with open_device(device) as dev:
            sub_spikes, sub_v = run_samples(dev, network, stimuli[:count], steps, progress)
        sub_pred = predict(sub_spikes, sub_v)
        result.update(device_samples=count, device_accuracy=float(np.mean(sub_pred == yte[:count])),
                      device_agrees=bool(np.array_equal(sub_pred, pred[:count])
                                         and np.array_equal(sub_spikes, spikes[:count])))
    return result


def save_digits_results(result, out_dir):
    """Write a `digits_demo` result: the network, the quantisation report and result.json.

    Returns the paths written (`OUTPUT_FILES`, in order). Every file is
    written atomically, and all of them are checked before the first is
    written (`safe_io.check_output_folder`; a missing `out_dir` whose parent
    exists is made), so a refused name costs none of the others.
    """
    import json

    from .files import save_network
    from .safe_io import atomic_output, check_output_folder
    out = check_output_folder(out_dir, OUTPUT_FILES, what="digits demo")
    network_file, report_file, result_file = (out / name for name in OUTPUT_FILES)
    save_network(result["network"], network_file)
    with atomic_output(report_file, mode="w", what="quantisation report") as fh:
        fh.write("\n".join(result["report"].lines()) + "\n")
    plain = {k: v for k, v in result.items() if k not in ("network", "report")}
    with atomic_output(result_file, mode="w", what="digits demo results") as fh:
        fh.write(json.dumps(plain, indent=2) + "\n")
    return [network_file, report_file, result_file]
