#!/usr/bin/env python3
"""Fidelity benchmark: snnTorch-style NIR graphs of a digits classifier, float against the core.

A network is trained in numpy on scikit-learn's 8x8 digits, written as a NIR
graph the way snnTorch's `export_to_nir` writes it, imported with
`neurofabric.import_nir` at the default tolerance and widths, and run on the
golden model; the same graph runs in a float simulation of NIR's equations on
the same input spikes. The figures are the two accuracies and how often the
two agree on the predicted class, over held-out samples run in one call
(`Device.run_trials`, the samples as a batch of trials).

    .venv/bin/python benchmarks/nir_fidelity.py                   # 600 held-out samples, both graphs
    .venv/bin/python benchmarks/nir_fidelity.py --json out.json   # also write the figures as JSON
    .venv/bin/python benchmarks/nir_fidelity.py --graph lif --nir-dir out   # one graph, kept as out/lif.nir

The network, as snnTorch would build it:

    Linear(64, hidden) -> neuron -> Linear(hidden, 10) -> neuron

with `Synaptic(alpha=0.75, beta=0.875)` neurons (NIR `CubaLIF`) or snnTorch's
`Leaky` defaults at `beta = 0.9` (NIR `LIF`), threshold 1, reset to zero,
inputs rate-coded over 25 steps (each pixel spikes in each step with
probability intensity / 16, snnTorch's `spikegen.rate`). The graph carries
snnTorch's conventions: dt = 0.1 ms recorded nowhere, scalar (0-d)
parameters, `tau = dt / (1 - beta)`, `r = tau_mem / dt`, `w_in = tau_syn /
dt`, `v_leak = 0`, `v_reset` left to nir's default of 0, `Affine` for a Linear
layer with a bias (`Linear` without).

Training: backpropagation through time with a surrogate gradient (the fast
sigmoid, slope 5), in numpy, of the network NIR's equations describe at 0.1
ms: per step `I <- alpha I + W x + b`, `v <- beta v + I` (`Leaky`: `v <- beta
v + W x + b`), a spike when `v > 1`, then `v <- 0`, and one step of delay from
the hidden layer's spikes to the output layer (NIR's edges out of a spiking
node, and the core's). The loss is the cross-entropy of the output spike
counts; Adam, fresh Poisson spikes every epoch. The prediction is the output
neuron with the most spikes, ties to the one that fired first, then to the
lowest index, for the float simulation and the core alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DT = 1e-4            # what snnTorch's exporter assumes
STEPS = 25
TEST_SIZE = 600
CLASSES = 10
THRESHOLD = 1.0
#: The two graphs: snnTorch's `Synaptic(alpha=0.75, beta=0.875)` and `Leaky(beta=0.9)`.
GRAPHS = {"cubalif": {"alpha": 0.75, "beta": 0.875}, "lif": {"beta": 0.9}}
#: The acceptance (issue 15): within this many points of the float accuracy, and at least this agreement.
MAX_ACCURACY_GAP = 0.03
MIN_AGREEMENT = 0.90
SURROGATE_SLOPE = 5.0
#: The initial weights' scale (standard deviation times sqrt(fan_in)): a `Synaptic` neuron's current sums
#: about 1 / (1 - alpha) = 4 steps of input, so its weights start smaller. 0.25, 0.5 and 1 were tried;
#: these trained best in 10 epochs.
INIT_SCALE = {"cubalif": 0.25, "lif": 0.5}


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def load_data(seed=0, test_size=TEST_SIZE):
    """`(x_train, y_train, x_test, y_test)` of the 8x8 digits, intensities 0..1, the demo's split at `test_size`."""
    from neurofabric.host.digits import INTENSITY_MAX, load_split
    xtr, ytr, xte, yte = load_split(seed, test_size)
    return xtr / INTENSITY_MAX, ytr, xte / INTENSITY_MAX, yte


def rate_code(x, steps=STEPS, seed=0):
    """Poisson spikes, `(samples, steps, 64)` uint8: pixel k spikes in each step with probability x[k]."""
    import neurofabric as nf
    return nf.poisson(x, steps, seed=seed)


# ---------------------------------------------------------------------------
# Training (numpy, BPTT with a surrogate gradient)
# ---------------------------------------------------------------------------

def _layer_forward(u, alpha, beta):
    """One layer over time: `u` (T, B, n) input per step. Returns spikes and the membrane before reset."""
    steps = u.shape[0]
    cur = np.zeros(u.shape[1:])
    v = np.zeros(u.shape[1:])
    spikes = np.zeros(u.shape)
    v_pre = np.zeros(u.shape)
    for t in range(steps):
        if alpha is None:
            cur = u[t]
        else:
            cur = alpha * cur + u[t]
        v = beta * v + cur
        v_pre[t] = v
        spikes[t] = v > THRESHOLD
        v = np.where(spikes[t] > 0, 0.0, v)
    return spikes, v_pre


def _layer_backward(g_spikes, spikes, v_pre, alpha, beta):
    """The gradient of the loss on each step's input `u`, from the one on each step's spikes (reset detached)."""
    surrogate = 1.0 / (1.0 + SURROGATE_SLOPE * np.abs(v_pre - THRESHOLD)) ** 2
    du = np.zeros(g_spikes.shape)
    dv_post = np.zeros(g_spikes.shape[1:])
    d_cur_next = np.zeros(g_spikes.shape[1:])
    for t in range(g_spikes.shape[0] - 1, -1, -1):
        dv = g_spikes[t] * surrogate[t] + dv_post * (1.0 - spikes[t])
        d_cur = dv if alpha is None else dv + alpha * d_cur_next
        du[t] = d_cur
        dv_post = beta * dv
        d_cur_next = d_cur
    return du


def forward(params, x, alpha, beta):
    """`x` (B, T, 64) spikes. Returns (hidden spikes, hidden v, output spikes, output v), each (T, B, n)."""
    xt = np.swapaxes(x, 0, 1).astype(float)
    s1, v1 = _layer_forward(xt @ params["w1"].T + params.get("b1", 0.0), alpha, beta)
    delayed = np.concatenate([np.zeros_like(s1[:1]), s1[:-1]])    # one step of delay out of a spiking node
    s2, v2 = _layer_forward(delayed @ params["w2"].T + params.get("b2", 0.0), alpha, beta)
    return xt, s1, v1, delayed, s2, v2


def train(kind, x, y, hidden=64, epochs=30, batch=50, lr=2e-3, seed=0, init=None, bias=True, log=None):
    """Train the network of graph `kind` ("cubalif", "lif"); returns its parameters (snnTorch's layout).

    `w1` (hidden, 64), `b1` (hidden,), `w2` (10, hidden), `b2` (10,), as
    `torch.nn.Linear` holds them. The weights start normal with a standard
    deviation of `init / sqrt(fan_in)` (None: `INIT_SCALE[kind]`), the biases at
    0; `bias=False` keeps them there (`Linear(bias=False)`: no `b1`, `b2`).
    """
    alpha, beta = GRAPHS[kind].get("alpha"), GRAPHS[kind]["beta"]
    init = INIT_SCALE[kind] if init is None else init
    rng = np.random.default_rng(seed)
    params = {"w1": rng.normal(0.0, init / np.sqrt(x.shape[1]), (hidden, x.shape[1])),
              "b1": np.zeros(hidden),
              "w2": rng.normal(0.0, init / np.sqrt(hidden), (CLASSES, hidden)),
              "b2": np.zeros(CLASSES)}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    onehot = np.eye(CLASSES)[y]
    step = 0
    for epoch in range(epochs):
        spikes = rate_code(x, STEPS, seed=int(rng.integers(1 << 31)))
        order = rng.permutation(len(x))
        right = 0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xt, s1, v1, delayed, s2, v2 = forward(params, spikes[idx], alpha, beta)
            counts = s2.sum(axis=0)
            z = counts - counts.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            right += int((predict(np.swapaxes(s2, 0, 1)) == y[idx]).sum())
            g_counts = (p - onehot[idx]) / len(idx)
            du2 = _layer_backward(np.broadcast_to(g_counts, s2.shape), s2, v2, alpha, beta)
            grads = {"w2": np.einsum("tbo,tbh->oh", du2, delayed), "b2": du2.sum(axis=(0, 1))}
            g_s1 = np.zeros_like(s1)
            g_s1[:-1] = du2[1:] @ params["w2"]
            du1 = _layer_backward(g_s1, s1, v1, alpha, beta)
            grads["w1"] = np.einsum("tbh,tbi->hi", du1, xt)
            grads["b1"] = du1.sum(axis=(0, 1))
            step += 1
            for key, grad in grads.items():
                if not bias and key in ("b1", "b2"):
                    continue
                m, v = moments[key]
                m[:] = 0.9 * m + 0.1 * grad
                v[:] = 0.999 * v + 0.001 * grad * grad
                params[key] -= lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        if log is not None:
            log(f"  {kind} epoch {epoch + 1}/{epochs}: training accuracy {right / len(x):.3f}")
    if not bias:
        del params["b1"], params["b2"]
    return params


# ---------------------------------------------------------------------------
# The NIR graph, as snnTorch's export_to_nir writes it
# ---------------------------------------------------------------------------

def snntorch_neuron(kind):
    """snnTorch's neuron node: scalar (0-d) parameters, snnTorch's conventions at dt = 0.1 ms."""
    import nir
    beta = np.asarray(GRAPHS[kind]["beta"])
    tau_mem = DT / (1 - beta)
    common = dict(v_threshold=np.asarray(THRESHOLD), v_leak=np.zeros_like(beta), r=tau_mem / DT)
    if kind == "lif":
        return nir.LIF(tau=tau_mem, **common)
    tau_syn = DT / (1 - np.asarray(GRAPHS[kind]["alpha"]))
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, w_in=tau_syn / DT, **common)


def snntorch_graph(kind, params):
    """`Sequential(Linear, neuron, Linear, neuron)` as snnTorch's exporter writes it (nodes named as nirtorch does).

    A layer with a bias is an `Affine`, one without (no `b1`/`b2`) a `Linear`.
    """
    import nir
    hidden, inputs = params["w1"].shape

    def linear(w, b):
        return nir.Linear(weight=w.copy()) if b is None else nir.Affine(weight=w.copy(), bias=b.copy())

    nodes = {
        "input": nir.Input(input_type={"input": np.array([inputs])}),
        "0": linear(params["w1"], params.get("b1")),
        "1": snntorch_neuron(kind),
        "2": linear(params["w2"], params.get("b2")),
        "3": snntorch_neuron(kind),
        "output": nir.Output(output_type={"output": np.array([CLASSES])}),
    }
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    # nir's own type check refuses the scalar parameters snnTorch writes (NIR allows them).
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


# ---------------------------------------------------------------------------
# The float simulation of the graph (NIR's equations), batched over samples
# ---------------------------------------------------------------------------

def simulate(graph, dt, spikes):
    """Run a feed-forward chain `Input -> (Affine|Linear) -> neuron -> ... -> Output` in floats.

    NIR's equations, forward Euler at `dt` with spikes as 0/1 per step, per step

        CubaLIF  I <- I + (dt / tau_syn) (-I + w_in x)
                 v <- v + (dt / tau_mem) (v_leak - v + r I)
        LIF      v <- v + (dt / tau) (v_leak - v + r x)

    a spike when `v > v_threshold`, then `v <- v_reset` (0 when absent), one
    step of delay on an edge out of a spiking node. `spikes` is `(B, T, m)`;
    returns `{spiking node: (B, T, n) spikes}` in the chain's order.
    """
    nodes, edges = graph.nodes, list(graph.edges)
    after = dict(edges)
    name = next(n for n, node in nodes.items() if type(node).__name__ == "Input")
    layers = []        # (weights node, neuron node) along the chain
    weights = None
    while name in after:
        name = after[name]
        kind = type(nodes[name]).__name__
        if kind in ("Affine", "Linear"):
            weights = nodes[name]
        elif kind in ("CubaLIF", "LIF"):
            layers.append((weights, name))
            weights = None
    x = np.swapaxes(np.asarray(spikes, float), 0, 1)
    out = {}
    for weights, name in layers:
        node = nodes[name]
        u = x @ np.asarray(weights.weight, float).T
        if type(weights).__name__ == "Affine":
            u = u + np.asarray(weights.bias, float)
        p = {key: np.asarray(getattr(node, key), float) for key in
             ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "w_in") if hasattr(node, key)}
        v_reset = np.asarray(getattr(node, "v_reset", None) if getattr(node, "v_reset", None) is not None else 0.0,
                             float)
        v = np.zeros(u.shape[1:])
        cur = np.zeros(u.shape[1:])
        s = np.zeros(u.shape)
        for t in range(u.shape[0]):
            if "tau_syn" in p:
                cur = cur + dt / p["tau_syn"] * (-cur + p["w_in"] * u[t])
                v = v + dt / p["tau_mem"] * (p["v_leak"] - v + p["r"] * cur)
            else:
                v = v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * u[t])
            s[t] = v > p["v_threshold"]
            v = np.where(s[t] > 0, v_reset, v)
        out[name] = np.swapaxes(s, 0, 1).astype(np.uint8)
        x = np.concatenate([np.zeros_like(s[:1]), s[:-1]])     # one step of delay into the next layer
    return out


# ---------------------------------------------------------------------------
# Readout and evaluation
# ---------------------------------------------------------------------------

def predict(spikes):
    """Class per sample from `(B, T, 10)` spikes: most spikes, then the first to fire, then the lowest index."""
    spikes = np.asarray(spikes)
    steps = spikes.shape[1]
    counts = spikes.sum(axis=1).astype(np.int64)
    first = np.where(spikes.any(axis=1), spikes.argmax(axis=1), steps)
    return np.argmax(counts * (steps + 1) - first, axis=1)


def population_columns(report, name):
    """The columns of population `name` in the network's neurons (populations in the graph's order)."""
    start = 0
    for pop in report["populations"]:
        if pop["name"] == name:
            return slice(start, start + pop["size"])
        start += pop["size"]
    raise KeyError(name)


def evaluate(graph, spikes, labels, tolerance=0.1, widths=None, path=None):
    """Float simulation and golden model of `graph` on `spikes` (B, T, m): a dict of figures.

    The graph goes through a NIR file (`nir.write`, then `import_nir` of the
    file, as a user's would; `path`, else a temporary file) at dt = 0.1 ms and
    `tolerance`; the samples run in one `run_trials` call on the golden device.
    """
    import nir

    import neurofabric as nf
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.nir" if path is None else Path(path)
        nir.write(str(path), graph, compression=None)     # h5py cannot compress the 0-d parameters
        net, report = nf.import_nir(path, DT, widths=widths, tolerance=tolerance)
    ref = simulate(graph, DT, spikes)
    start = time.monotonic()
    with nf.open_device("golden") as dev:
        dev.load(net)
        rec = dev.run_trials(spikes)
    run_s = time.monotonic() - start
    out_name = [src for src, dst in graph.edges if type(graph.nodes[dst]).__name__ == "Output"][0]
    names = list(ref)
    float_pred = predict(ref[out_name])
    core_pred = predict(rec.spikes[:, :, population_columns(report, out_name)])
    result = {
        "samples": int(len(labels)), "steps": int(spikes.shape[1]),
        "float_accuracy": float(np.mean(float_pred == labels)),
        "neurofabric_accuracy": float(np.mean(core_pred == labels)),
        "agreement": float(np.mean(float_pred == core_pred)),
        "golden_run_trials_s": run_s,
        "decay_mem": sorted({int(d) for d in net.decay_mem}), "decay_syn": sorted({int(d) for d in net.decay_syn}),
        "populations": {},
    }
    for name in names:
        pop = next(p for p in report["populations"] if p["name"] == name)
        core = rec.spikes[:, :, population_columns(report, name)]
        result["populations"][name] = {
            "size": pop["size"], "scale": pop["scale"],
            "threshold": next(p["integer"] for p in pop["parameters"] if p["name"] == "v_threshold"),
            "weight_range_used": pop["weights"]["range_used"],
            "weights_rounded_to_zero": pop["weights"]["rounded_to_zero"],
            "float_spikes_per_sample": float(ref[name].sum() / len(labels)),
            "neurofabric_spikes_per_sample": float(core.sum() / len(labels)),
        }
    result["gap"] = result["neurofabric_accuracy"] - result["float_accuracy"]
    result["meets_acceptance"] = bool(abs(result["gap"]) <= MAX_ACCURACY_GAP and result["agreement"] >= MIN_AGREEMENT)
    result["report"] = report.lines()
    return result


def measure(graphs=tuple(GRAPHS), test_size=TEST_SIZE, hidden=64, epochs=30, seed=0, train_size=None, log=None,
            nir_dir=None, bias=True, widths=None):
    """Train, export, import and evaluate each graph; returns `{graph: figures}`.

    The held-out samples are the first `test_size` of the demo's shuffle;
    training takes the rest, or its first `train_size`. `nir_dir`: keep each
    graph there as `<graph>.nir` (for `neurofabric import-nir --dt 0.1ms`).
    `bias=False` trains layers without biases; `widths` (None: the defaults)
    are the core's the graph is imported at.
    """
    xtr, ytr, xte, yte = load_data(seed, test_size)
    xtr, ytr = xtr[:train_size], ytr[:train_size]
    test_spikes = rate_code(xte, STEPS, seed=seed + 1)
    results = {}
    for kind in graphs:
        start = time.monotonic()
        params = train(kind, xtr, ytr, hidden=hidden, epochs=epochs, seed=seed, bias=bias, log=log)
        train_s = time.monotonic() - start
        path = None if nir_dir is None else Path(nir_dir) / f"{kind}.nir"
        result = evaluate(snntorch_graph(kind, params), test_spikes, yte, widths=widths, path=path)
        result.update(train_samples=int(len(ytr)), hidden=hidden, epochs=epochs, train_s=train_s, bias=bias,
                      widths=list(net_widths(widths)),
                      training="numpy BPTT, fast-sigmoid surrogate gradient, cross-entropy of spike counts, Adam",
                      **{k: v for k, v in GRAPHS[kind].items()})
        results[kind] = result
    return results


def net_widths(widths):
    """`(state_bits, weight_bits, trace_bits)` of `widths`, None for the defaults."""
    from neurofabric.contract.model import Widths
    widths = widths or Widths()
    return widths.state_bits, widths.weight_bits, widths.trace_bits


def parse_widths(text):
    """`Widths` from "S,W,T" (the command line's --widths)."""
    from neurofabric.contract.model import WIDTH_LIMITS, Widths
    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        widths = Widths(*(int(part) for part in parts))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not S,W,T (three whole numbers, such as 16,8,8)") from None
    for name, (lo, hi) in WIDTH_LIMITS.items():
        if not lo <= getattr(widths, name) <= hi:
            raise argparse.ArgumentTypeError(f"{name} = {getattr(widths, name)} is out of range: allowed {lo}..{hi}")
    return widths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=TEST_SIZE, help="held-out samples [600]")
    parser.add_argument("--hidden", type=int, default=64, help="hidden neurons [64]")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs [30]")
    parser.add_argument("--train-samples", type=int, help="training samples [all 1,197 not held out]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graph", choices=list(GRAPHS), action="append", help="only this graph (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--nir-dir", type=Path, help="keep the graphs in this folder (cubalif.nir, lif.nir)")
    parser.add_argument("--no-bias", action="store_true", help="layers without biases (Linear, not Affine)")
    parser.add_argument("--widths", type=parse_widths, metavar="S,W,T",
                        help="the core's state, weight and trace bits to import at [16,8,8]")
    args = parser.parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    results = measure(tuple(args.graph or GRAPHS), args.samples, args.hidden, args.epochs, args.seed,
                      args.train_samples, log, args.nir_dir, not args.no_bias, args.widths)
    for kind, r in results.items():
        verdict = "meets" if r["meets_acceptance"] else "MISSES"
        print(f"{kind}: float accuracy {r['float_accuracy']:.3f}, neurofabric {r['neurofabric_accuracy']:.3f} "
              f"({r['gap'] * 100:+.1f} points), agreement {r['agreement']:.3f} on {r['samples']} samples; "
              f"{verdict} the acceptance (within {MAX_ACCURACY_GAP * 100:.0f} points, agreement >= "
              f"{MIN_AGREEMENT:.2f})")
        for name, pop in r["populations"].items():
            print(f"  population {name}: {pop['size']} neurons, scale {pop['scale']:.4g}, threshold "
                  f"{pop['threshold']}, weight range used {pop['weight_range_used']:.0%}, "
                  f"spikes per sample {pop['float_spikes_per_sample']:.2f} float, "
                  f"{pop['neurofabric_spikes_per_sample']:.2f} neurofabric")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["meets_acceptance"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
