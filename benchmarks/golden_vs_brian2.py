#!/usr/bin/env python3
"""Speed benchmark: the golden model against Brian2 on the same-sized network.

Not a test: it prints times, so that "is the golden model at least as fast as
Brian2?" can be answered on the machine at hand. See benchmarks/README.md.

    .venv/bin/python benchmarks/golden_vs_brian2.py            # 1024 x 1024, 1000 steps
    .venv/bin/python benchmarks/golden_vs_brian2.py --json out.json

The golden part runs in the interpreter that runs this file (the project's
venv). Brian2 runs in a venv of its own, bench-brian2-venv in neurofabric's
cache folder (`neurofabric.paths.cache_dir()`; the checkout's build/ under
./dev.sh), made and filled once (Brian2 may need an older numpy than the project): this file runs
itself there with `--brian2-only`, once per code-generation target, and reads
one line of JSON from its stdout.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from neurofabric.paths import cache_dir
except ImportError:  # in Brian2's venv (--brian2-only), which needs neither neurofabric nor these paths
    BRIAN2_VENV = READY_MARK = None
else:
    BRIAN2_VENV = cache_dir() / "bench-brian2-venv"
    READY_MARK = BRIAN2_VENV / ".neurofabric-ready"

# The integer network. Time constants are decay factors: d / 4096 of a value is lost per step, so
# tau = 4096 / d steps (forward Euler; 512: 8 steps, 1024: 4, 256: 16).
DECAY_MEM, DECAY_SYN, REFRACTORY = 512, 1024, 2
DECAY_PRE = DECAY_POST = 256
INC_PRE = INC_POST = 64
A_PLUS = A_MINUS = 1
STDP_SHIFT = 6
W_MIN, W_MAX = -128, 127


# ---------------------------------------------------------------------------
# The golden model (project venv)
# ---------------------------------------------------------------------------

def build_network(n, m, activity, seed, threshold):
    """A 1-population network: all-to-all excitatory inputs, mixed recurrent weights.

    Input weights are scaled so that the mean drive does not depend on `m` or
    `activity`; the threshold (one for all neurons) is what `calibrate` tunes.
    """
    import numpy as np
    from neurofabric.host.network import Network

    rng = np.random.default_rng(seed)
    expected_inputs = max(m * activity, 1.0)
    w_in_hi = int(np.clip(round(8 * 51.2 / expected_inputs), 1, W_MAX))
    weights = np.empty((m + n, n), np.int64)
    weights[:m] = rng.integers(0, w_in_hi + 1, (m, n))
    weights[m:] = rng.integers(-8, 9, (n, n))
    full = lambda value: np.full(n, value, np.int64)  # noqa: E731
    return Network(
        weights=weights, threshold=full(threshold), v_reset=full(0), reset_mode=full(0),
        decay_mem=full(DECAY_MEM), decay_syn=full(DECAY_SYN), refractory=full(REFRACTORY), bias=full(0),
        plastic_post=full(1), plastic_pre=np.ones(m + n, np.int64),
        learn=1, a_plus=A_PLUS, a_minus=A_MINUS, stdp_shift=STDP_SHIFT,
        decay_pre=DECAY_PRE, decay_post=DECAY_POST, inc_pre=INC_PRE, inc_post=INC_POST, trace_mode=0,
        w_min=W_MIN, w_max=W_MAX,
    )


def calibrate(n, m, activity, seed, stim, steps=300):
    """Bisect the common threshold so that about `activity` of the neurons spike
    per step (short runs with learning off; not timed)."""
    from neurofabric.host.golden import GoldenModel

    lo, hi = 1, (1 << 15) - 1
    probe = stim[:steps]
    while hi - lo > 8:
        mid = (lo + hi) // 2
        net = build_network(n, m, activity, seed, mid)
        net.learn = 0
        rate = GoldenModel(net).run(probe).spikes.mean()
        if rate > activity:
            lo = mid
        else:
            hi = mid
    return hi


def run_golden(args):
    import numpy as np
    from neurofabric.host.golden import GoldenModel

    rng = np.random.default_rng(args.seed + 1)
    stim = rng.random((args.steps, args.inputs)) < args.activity
    t0 = time.perf_counter()
    threshold = calibrate(args.neurons, args.inputs, args.activity, args.seed, stim)
    calib_s = time.perf_counter() - t0
    net = build_network(args.neurons, args.inputs, args.activity, args.seed, threshold)
    w0 = net.weights.copy()

    t0 = time.perf_counter()
    model = GoldenModel(net)
    rec = model.run(stim)
    golden_s = time.perf_counter() - t0

    per_step = rec.spikes.mean(axis=1)
    tenth = max(args.steps // 10, 1)
    changed = int((model.weights != w0).sum())
    return net, {
        "golden_s": golden_s,
        "golden_input_activity": float(stim.mean()),
        "golden_activity": float(rec.spikes.mean()),
        "golden_activity_first_10pct": float(per_step[:tenth].mean()),
        "golden_activity_last_10pct": float(per_step[-tenth:].mean()),
        "golden_threshold": int(threshold),
        "golden_calibration_s": calib_s,
        "golden_weights_changed": changed,
        "golden_mean_w_in": [float(w0[:args.inputs].mean()), float(model.weights[:args.inputs].mean())],
        "golden_mean_w_rec": [float(w0[args.inputs:].mean()), float(model.weights[args.inputs:].mean())],
        "numpy": np.__version__,
    }


# ---------------------------------------------------------------------------
# Brian2 (its own venv, subprocess)
# ---------------------------------------------------------------------------

def _pip(*pkgs):
    cmd = [str(BRIAN2_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *pkgs]
    print(f"[bench] {' '.join(cmd[2:])}", file=sys.stderr)
    subprocess.run(cmd, check=True)


def _brian2_import_ok():
    code = "import brian2, numpy; print(brian2.__version__, numpy.__version__)"
    res = subprocess.run([str(BRIAN2_VENV / "bin" / "python"), "-c", code],
                         capture_output=True, text=True)
    return res.returncode == 0, (res.stdout.strip() or res.stderr.strip().splitlines()[-1:])


def ensure_brian2_venv():
    """Make the Brian2 venv (`BRIAN2_VENV`) once; return its python."""
    python = BRIAN2_VENV / "bin" / "python"
    if READY_MARK.exists() and python.exists():
        return python
    print(f"[bench] creating {BRIAN2_VENV} (once)", file=sys.stderr)
    if BRIAN2_VENV.exists():
        shutil.rmtree(BRIAN2_VENV)
    BRIAN2_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", "-m", "venv", str(BRIAN2_VENV)], check=True)
    # The newest Brian2 pip finds for this Python (2.10+ need Python 3.12+),
    # plus what its Cython target compiles with.
    _pip("brian2", "setuptools", "cython")
    ok, info = _brian2_import_ok()
    if not ok:
        # Brian2 2.9.0 fails to import with numpy 2.3+ (ndarray.ptp is gone).
        print(f"[bench] brian2 does not import ({info}); trying numpy<2.3", file=sys.stderr)
        _pip("numpy>=2.2,<2.3")
        ok, info = _brian2_import_ok()
        if not ok:
            raise SystemExit(f"Brian2 does not import in {BRIAN2_VENV}: {info}")
    READY_MARK.write_text(f"{info}\n")
    return python


def brian2_only(args):
    """Run the network of `args.network` in Brian2 with one target; print JSON."""
    import numpy as np

    t_import = time.perf_counter()
    import brian2 as b2
    import_s = time.perf_counter() - t_import

    data = np.load(args.network)
    w = data["weights"].astype(float)
    m, n = w.shape[0] - w.shape[1], w.shape[1]
    target = args.target
    if target == "cython" and args.cython_cache:
        b2.prefs.codegen.runtime.cython.cache_dir = args.cython_cache
    b2.prefs.codegen.target = target
    b2.set_device("runtime")
    b2.prefs.logging.console_log_level = "ERROR"
    b2.defaultclock.dt = 1 * b2.ms

    ms = b2.ms

    def tau(d):
        # Decay factor d <-> tau = 4096 dt / d: with forward Euler and dt = 1 ms,
        # x += -x * dt / tau is exactly the golden model's x - x * d / 4096 (in floats; the
        # golden model rounds each decay toward zero).
        return 4096 / int(d) * ms

    ns = {
        "tau_m": tau(data["decay_mem"][0]),
        "tau_s": tau(data["decay_syn"][0]),
        "tau_pre": tau(data["decay_pre"]),
        "tau_post": tau(data["decay_post"]),
        "unit_step": 1 * ms,
        "v_th": float(data["threshold"][0]),
        "v_rst": float(data["v_reset"][0]),
        "bias": float(data["bias"][0]),
        "p_in": float(args.activity),
        "inc_pre": float(data["inc_pre"]),
        "inc_post": float(data["inc_post"]),
        "tmax": float((1 << int(data["trace_bits"])) - 1),
        "a_plus_s": float(data["a_plus"]) / 2 ** int(data["stdp_shift"]),
        "a_minus_s": float(data["a_minus"]) / 2 ** int(data["stdp_shift"]),
        "w_min": float(data["w_min"]),
        "w_max": float(data["w_max"]),
    }
    refractory = int(data["refractory"][0]) * ms

    t_setup = time.perf_counter()
    net = b2.Network()
    # Inputs: Bernoulli per step at the matching rate, with their pre trace.
    inp = b2.NeuronGroup(m, "dxpre/dt = -xpre / tau_pre : 1",
                         threshold="rand() < p_in",
                         reset="xpre = clip(xpre + inc_pre, 0, tmax)",
                         method="euler", namespace=ns, name="inputs")
    # LIF with an exponential current synapse; neuron-side pre and post traces.
    eqs = """
    dv/dt = -v / tau_m + (I + bias) / unit_step : 1 (unless refractory)
    dI/dt = -I / tau_s : 1
    dxpre/dt = -xpre / tau_pre : 1
    dxpost/dt = -xpost / tau_post : 1
    """
    neurons = b2.NeuronGroup(n, eqs, threshold="v >= v_th",
                             reset="""v = v_rst
                             xpre = clip(xpre + inc_pre, 0, tmax)
                             xpost = clip(xpost + inc_post, 0, tmax)""",
                             refractory=refractory, method="euler", namespace=ns,
                             name="neurons")
    # Additive pair-based STDP (all pairs, traces on the neurons). The change is
    # floored to whole weight units as in the integer model; without the floor
    # Brian2 learns by fractions of a unit and its activity falls to about 2 %.
    model = "w : 1"
    on_pre = """I_post += w
    w = clip(w - floor(a_minus_s * xpost_post), w_min, w_max)"""
    on_post = "w = clip(w + floor(a_plus_s * xpre_pre), w_min, w_max)"
    s_in = b2.Synapses(inp, neurons, model, on_pre=on_pre, on_post=on_post,
                       namespace=ns, name="s_in")
    s_rec = b2.Synapses(neurons, neurons, model, on_pre=on_pre, on_post=on_post,
                        namespace=ns, name="s_rec")
    s_in.connect()
    s_rec.connect()
    s_in.w[:] = w[:m][s_in.i[:], s_in.j[:]]
    s_rec.w[:] = w[m:][s_rec.i[:], s_rec.j[:]]
    mon = b2.SpikeMonitor(neurons, name="mon")
    mon_in = b2.SpikeMonitor(inp, record=False, name="mon_in")
    net.add(inp, neurons, s_in, s_rec, mon, mon_in)
    setup_s = time.perf_counter() - t_setup

    b2.seed(args.seed)
    t0 = time.perf_counter()
    net.run(args.steps * ms, namespace=ns)
    total_s = time.perf_counter() - t0
    run_s = float(b2.device._last_run_time)  # the simulation loop only

    steps = args.steps
    counts = np.bincount(np.asarray(mon.t_ / 1e-3, dtype=np.int64).clip(0, steps - 1),
                         minlength=steps)
    tenth = max(steps // 10, 1)
    w_in, w_rec = np.asarray(s_in.w[:]), np.asarray(s_rec.w[:])
    print(json.dumps({
        "target": target,
        "brian2": b2.__version__,
        "numpy": np.__version__,
        "import_s": import_s,
        "setup_s": setup_s,            # objects, connect(), weights (incl. their compile)
        "run_s": run_s,                # net.run loop only: excludes code generation
        "run_incl_codegen_s": total_s,  # the whole net.run call: + codegen/compile
        "total_s": setup_s + total_s,  # set-up (connect() compiles too) + net.run
        "activity": float(mon.num_spikes) / (n * steps),
        "activity_first_10pct": float(counts[:tenth].mean()) / n,
        "activity_last_10pct": float(counts[-tenth:].mean()) / n,
        "input_activity": float(mon_in.num_spikes) / (m * steps),
        "mean_w_in": [float(w[:m].mean()), float(w_in.mean())],
        "mean_w_rec": [float(w[m:].mean()), float(w_rec.mean())],
    }))


def run_brian2(args, network, target):
    python = ensure_brian2_venv()
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as tmp:
        path = Path(tmp) / "network.npz"
        import numpy as np
        np.savez(path, **network.to_arrays())
        cmd = [str(python), str(Path(__file__).resolve()), "--brian2-only",
               "--target", target, "--network", str(path),
               "--steps", str(args.steps), "--activity", str(args.activity),
               "--seed", str(args.seed)]
        if target == "cython":
            if args.brian2_warm_cache:
                cache = BRIAN2_VENV / "cython-cache"
                cache_state = "reused" if cache.exists() and any(cache.iterdir()) else "empty"
            else:  # a fresh cache: the compile time is really measured
                cache, cache_state = Path(tmp) / "cython-cache", "fresh"
            cmd += ["--cython-cache", str(cache)]
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        return {"target": target, "error": tail or f"exit {res.returncode}"}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if target == "cython":
        out["cython_cache"] = cache_state
    return out


# ---------------------------------------------------------------------------

def fmt_s(x):
    return f"{x:8.2f} s"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", type=int, default=1024)
    p.add_argument("--inputs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--activity", type=float, default=0.05,
                   help="input spike probability per step, and the target neuron activity")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--brian2-targets", default="numpy,cython",
                   help="comma-separated Brian2 code-generation targets (runtime device)")
    p.add_argument("--brian2-warm-cache", action="store_true",
                   help="reuse Cython's compiled code between invocations (default: fresh, "
                        "so the compile time is measured)")
    p.add_argument("--skip-brian2", action="store_true", help="golden model only")
    # Internal: the Brian2 side, run in Brian2's own venv.
    p.add_argument("--brian2-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--network", help=argparse.SUPPRESS)
    p.add_argument("--cython-cache", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.brian2_only:
        brian2_only(args)
        return 0

    print(f"network: {args.neurons} neurons, {args.inputs} inputs, all-to-all input and "
          f"recurrent ({(args.inputs + args.neurons) * args.neurons:,} synapses, all plastic), "
          f"learning on, {args.steps} steps, input activity {args.activity:.3f}", flush=True)
    network, res = run_golden(args)
    print(f"golden: {res['golden_s']:.3f} s; threshold {res['golden_threshold']} "
          f"(calibrated in {res['golden_calibration_s']:.1f} s, untimed); activity: inputs "
          f"{res['golden_input_activity']:.4f}, neurons {res['golden_activity']:.4f} "
          f"(first 10% of steps {res['golden_activity_first_10pct']:.4f}, last 10% "
          f"{res['golden_activity_last_10pct']:.4f}); {res['golden_weights_changed']:,} "
          f"weights changed; mean w in {res['golden_mean_w_in'][0]:.2f} -> "
          f"{res['golden_mean_w_in'][1]:.2f}, rec {res['golden_mean_w_rec'][0]:.2f} -> "
          f"{res['golden_mean_w_rec'][1]:.2f}", flush=True)

    brian = {}
    if not args.skip_brian2:
        for target in [t.strip() for t in args.brian2_targets.split(",") if t.strip()]:
            out = run_brian2(args, network, target)
            brian[target] = out
            if "error" in out:
                print(f"brian2 {target}: FAILED\n{out['error']}", flush=True)
                continue
            cache = f", cython cache {out['cython_cache']}" if "cython_cache" in out else ""
            print(f"brian2 {out['brian2']} (numpy {out['numpy']}) runtime/{target}: "
                  f"run {out['run_s']:.3f} s, run incl. codegen {out['run_incl_codegen_s']:.3f} s, "
                  f"setup {out['setup_s']:.2f} s{cache}; activity: inputs "
                  f"{out['input_activity']:.4f}, neurons {out['activity']:.4f} (first 10% "
                  f"{out['activity_first_10pct']:.4f}, last 10% {out['activity_last_10pct']:.4f}); "
                  f"mean w in {out['mean_w_in'][0]:.2f} -> {out['mean_w_in'][1]:.2f}, rec "
                  f"{out['mean_w_rec'][0]:.2f} -> {out['mean_w_rec'][1]:.2f}", flush=True)
    res["brian2"] = brian

    # The headline: numpy or runtime(-mode cython) target, whichever is faster.
    ok = {t: o for t, o in brian.items() if "error" not in o}
    g = res["golden_s"]
    print()
    print(f"{'':34}{'time':>11}{'brian2/golden':>15}")
    print(f"{'golden model (numpy ' + res['numpy'] + ')':34}{fmt_s(g):>11}{'':>15}")
    for t, o in ok.items():
        print(f"{'brian2 ' + t + ' (run loop)':34}{fmt_s(o['run_s']):>11}{o['run_s'] / g:>14.2f}x")
        print(f"{'brian2 ' + t + ' (run incl. codegen)':34}{fmt_s(o['run_incl_codegen_s']):>11}"
              f"{o['run_incl_codegen_s'] / g:>14.2f}x")
        print(f"{'brian2 ' + t + ' (+ set-up, connect)':34}{fmt_s(o['total_s']):>11}"
              f"{o['total_s'] / g:>14.2f}x")
    if ok:
        best = min(ok, key=lambda t: ok[t]["run_s"])
        res["brian2_target"] = best
        res["brian2_s"] = ok[best]["run_s"]
        res["brian2_incl_codegen_s"] = ok[best]["run_incl_codegen_s"]
        res["brian2_total_s"] = ok[best]["total_s"]
        res["golden_vs_brian2"] = ok[best]["run_s"] / g
        verdict = "golden is faster" if res["golden_vs_brian2"] >= 1 else "Brian2 is faster"
        print(f"\nheadline: brian2 ({best}, run loop) / golden = {res['golden_vs_brian2']:.2f} "
              f"({verdict}; above 1 means the golden model is faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
