"""Physical units over the integer core, with a quantisation report.

Users describe populations with time constants in seconds, voltages and float
weights; `PhysicalNetwork.compile()` turns that into the integer `Network`
the core runs and says exactly what it changed.

The model being approximated is forward Euler at the step `dt`, per neuron,
with `w_in` added per step (NIR's `CubaLIF` adds `(dt / tau_syn) * w_in * x`;
`neurofabric.host.nir_io` converts):

    I <- I - (dt / tau_syn) * I + w_in * x          x: the weighted input of the step
    v <- v + (dt / tau_mem) * (v_leak - v + r * I)   (model "cubalif")
    spike when v > v_threshold, then v <- v_reset

"lif" is the same with the current lasting one step (I = w_in * x), "if" is
`v <- v + dt * r * I` with no leak. The core (spec sections 2 and 5) computes
`i <- decay(i, decay_syn) + a` and `v <- decay(v, decay_mem) + i + bias` in
integers, where `decay(x, d) = trunc(x * (4096 - d), 12)` loses the fraction
`d / 4096` of `x` per step, rounded toward zero. So the compiler chooses:

- `d = round(4096 * dt / tau)` for each time constant (forward Euler, NIR's
  convention; `decay_for`), clamped to 0..4096: the realised time constant is
  `4096 * dt / d` (`realised_tau`), within `0.5 / d` of the request (exact
  when `4096 * dt / tau` is a whole number). A time constant of one step or
  less is 4096 (the value lasts one step: `tau_syn <= dt`, "lif" and "if" have
  a delta synapse); none (None, inf) is 0, no decay ("if": no leak). Rounding
  toward zero lets every value decay all the way to 0: a leak has no floor
  below which it stops, so the realised time constant is what the core runs.
- one voltage scale `s` per population (integer v = s * volts), so that the
  largest weight into it uses the whole signed weight range, unless the
  threshold would then leave less than 4x headroom in the state bits;
- integer weight `w[k][j] = round(s * g[j] * W)` with the gain
  `g = (decay_mem / 4096) * r * w_in` ("cubalif", "lif": the realised leak
  factor, which keeps the steady state v = v_leak + r*I exact) or `dt * r`
  ("if"). `tau_mem = inf` with `r = inf` is the limit of `r = tau_mem / dt`
  (what snnTorch and neurofabric's export write for a membrane without leak):
  a gain of `w_in`, one step's current added as it is;
- threshold `floor(s * v_threshold) + 1` (the core fires on `>=`, the model
  on `>`): exact on the integer grid, so reported with no error; reset and
  bias `round(s * value)`, bias = `(decay_mem / 4096) * v_leak` per step plus
  any constant input current.

Nothing is rescaled silently: every requested and realised value is in the
report, and a parameter further off than `tolerance` (relative) is an error.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import DECAY_ONE, Widths

from .builder import NetworkBuilder, decay_for_steps
from .errors import NetworkError
from .network import Network

__all__ = ["PhysicalNetwork", "Population", "QuantisationReport", "decay_for", "realised_tau", "euler_gain",
           "check_time_step", "check_tolerance", "MODELS"]

logger = logging.getLogger(__name__)

MODELS = ("cubalif", "lif", "if")
#: A time constant under this many steps is warned about: it is usually a dt
#: other than the one the network was trained at.
SHORT_STEPS = 2.0
#: The state range left above the largest of |threshold|, |reset|, |v_leak|.
HEADROOM = 4.0
#: Relative differences below this are the rounding of float arithmetic, reported as exact.
FLOAT_NOISE = 1e-12


def _real(name, value, unit=""):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NetworkError(f"{name} = {value!r} is not a number") from None
    if math.isnan(number):
        raise NetworkError(f"{name} = nan{unit} is not a number")
    return number


def check_time_step(dt, name="dt"):
    """`dt` in seconds as a float; `NetworkError` unless positive and finite (not NaN, not inf)."""
    value = _real(name, dt, " s")
    if not (value > 0 and math.isfinite(value)):
        raise NetworkError(f"{name} = {value:g} s is out of range: allowed a positive, finite time step")
    return value


def check_tolerance(tolerance):
    """A relative tolerance as a float; `NetworkError` unless finite and 0 or more.

    NaN would turn every comparison against it off, so it is refused.
    """
    value = _real("tolerance", tolerance)
    if not (value >= 0 and math.isfinite(value)):
        raise NetworkError(f"tolerance = {value:g} is out of range: allowed a finite number, 0 or more "
                           "(0.1 is 10%)")
    return value


def decay_for(tau, dt):
    """The decay factor of a time constant `tau` at the step `dt`: `round(4096 * dt / tau)`.

    Forward Euler, NIR's convention (spec section 2), rounded to nearest
    (halves up) and clamped to 0..4096: `tau <= dt` is 4096 (a value that
    lasts one step), None or inf is 0 (no decay), and so is a `tau` longer
    than 8192 steps, whose factor rounds to 0.
    """
    if tau is None or tau == math.inf:
        return 0
    if not tau > 0:  # NaN as well
        raise NetworkError(f"time constant {tau} s is not positive")
    return int(decay_for_steps(tau / dt))


def realised_tau(d, dt):
    """The time constant a decay factor realises: `4096 * dt / d`; inf for 0 (no decay)."""
    return math.inf if d == 0 else DECAY_ONE * dt / d


def _per_step(d, tau, dt):
    """The fraction of a value lost per step, `d / 4096`; for d = 0 the requested `dt / tau`.

    A `tau` too long for a factor of 1 still has its Euler rate in the gains
    (below the resolution of the core's decay, which keeps the value).
    """
    return np.where(d > 0, d / DECAY_ONE, dt / tau)


def euler_gain(rate, factor, tau):
    """`rate * factor`, the per-step gain of NIR's `(dt / tau) * factor` with `rate = dt / tau` realised.

    An infinite `tau` with an infinite `factor` (`r` or `w_in`) is the limit of
    `factor = tau / dt`, the convention of snnTorch's and neurofabric's
    exporters: a gain of 1 (no decay, one step's input added as it is).
    """
    rate, factor, tau = np.broadcast_arrays(np.asarray(rate, float), np.asarray(factor, float),
                                            np.asarray(tau, float))
    limit = np.isinf(tau) & np.isposinf(factor)
    with np.errstate(invalid="ignore"):   # 0 * inf, replaced by the limit
        return np.where(limit, 1.0, rate * factor)


@dataclass(eq=False)
class Population:
    """A population of neurons in physical units (seconds, volts, amperes or any unit)."""

    name: str
    size: int
    model: Literal["cubalif", "lif", "if"] = "cubalif"
    # Each parameter is a scalar or one value per neuron.
    tau_mem: ArrayLike | None = None   # s; None: no leak
    tau_syn: ArrayLike | None = None   # s; None: the current lasts one step
    v_threshold: ArrayLike = 1.0
    v_reset: ArrayLike = 0.0
    v_leak: ArrayLike = 0.0
    r: ArrayLike = 1.0
    w_in: ArrayLike = 1.0
    i_bias: ArrayLike = 0.0            # constant input current added every step
    refractory: ArrayLike = 0.0        # s
    reset: Literal["zero", "subtract"] = "zero"   # "zero": v <- v_reset; "subtract": v <- v - threshold
    scale: float | None = None         # volts -> integers; None: chosen by compile()


@dataclass(eq=False)
class _Connection:
    pre: str
    post: str
    weights: np.ndarray  # (pre size, post size), float
    plastic: bool


class QuantisationReport(dict[str, Any]):
    """The report of one compilation: a JSON-friendly dict with a text form."""

    def to_json(self) -> str:
        """The report as JSON text (numpy numbers as floats)."""
        return json.dumps(self, indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> QuantisationReport:
        """The report `to_json` wrote."""
        return cls(json.loads(text))

    def lines(self) -> list[str]:
        """Human-readable lines (what `neurofabric info` prints)."""
        out = [f"quantisation report (dt = {self['dt'] * 1e3:g} ms, tolerance {self['tolerance']:.0%}; "
               "bias and reset errors are relative to the largest in their population)"]
        for pop in self["populations"]:
            out.append(f"  population {pop['name']} ({pop['size']} {pop['model']} neurons), "
                       f"scale {pop['scale']:.6g} per volt")
            for p in pop["parameters"]:
                integer = f", integer {_fmt(p['integer'])} (fires on >=)" if "integer" in p else ""
                out.append(f"    {p['name']:<12} requested {_fmt(p['requested'])}, realised {_fmt(p['realised'])}"
                           f" ({_pct(p['relative_error'])}){integer}")
            w = pop["weights"]
            out.append(f"    weights      {w['count']} synapses in, max |error| {w['max_abs_error']:.4g} "
                       f"({_pct(w['max_relative_error_of_largest'])} of the largest), "
                       f"{w['rounded_to_zero']} rounded to zero, {w['clipped']} clipped, "
                       f"range used {w['range_used']:.0%}")
        for note in self.get("notes", []):
            out.append(f"  note: {note}")
        return out


def _fmt(value):
    if isinstance(value, (list, tuple)):
        lo, hi = value
        return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pct(err):
    return "exact" if err == 0 else f"{err:+.1%}" if abs(err) < 10 else f"{err:+.3g}x"


class PhysicalNetwork:
    """A network in physical units, compiled to the integer core by `compile()`.

        net = PhysicalNetwork(dt=1e-3)
        net.add_inputs(64, "pixels")
        net.add_population("out", 10, tau_mem=8e-3, tau_syn=2e-3, v_threshold=1.0)
        net.connect("pixels", "out", weights)      # (64, 10) floats
        network, report = net.compile()
    """

    def __init__(self, dt: float) -> None:
        self.dt = check_time_step(dt)
        self.inputs: dict[str, int] = {}               # name -> size, in order
        self.populations: dict[str, Population] = {}   # name -> Population, in order
        self.connections: list[_Connection] = []
        self.learning: dict[str, int] | None = None

    def add_inputs(self, size: int, name: str) -> str:
        """Add a group of `size` input channels."""
        self._new_name(name)
        self.inputs[name] = _count(f"inputs {name}", size)
        return name

    def add_population(self, name: str, size: int, **params: Any) -> str:
        """Add a population; parameters as in `Population` (scalars or per-neuron arrays)."""
        self._new_name(name)
        pop = Population(name, _count(f"population {name}: size", size), **params)
        if pop.model not in MODELS:
            raise NetworkError(f"population {name}: unknown model {pop.model!r}; allowed: {', '.join(MODELS)}")
        if pop.reset not in ("zero", "subtract"):
            raise NetworkError(f"population {name}: reset {pop.reset!r}; allowed: zero, subtract")
        if pop.scale is not None:
            scale = _real(f"population {name}: scale", pop.scale)
            if not (scale > 0 and math.isfinite(scale)):
                raise NetworkError(f"population {name}: scale = {scale:g} is out of range: allowed a positive, "
                                   "finite number of integer steps per volt")
        self.populations[name] = pop
        return name

    def connect(self, pre: str, post: str, weights: ArrayLike, plastic: bool = False) -> None:
        """Weights `(size of pre, size of post)`, in the units of the input `x`."""
        if post not in self.populations:
            raise NetworkError(f"connect: {post!r} is not a population")
        if pre not in self.populations and pre not in self.inputs:
            raise NetworkError(f"connect: {pre!r} is neither an input group nor a population")
        w = np.asarray(weights, dtype=float)
        shape = (self._size(pre), self._size(post))
        if w.ndim == 0:
            w = np.full(shape, float(w))
        if w.shape != shape:
            raise NetworkError(f"connect {pre} -> {post}: weights shape {w.shape} does not match {shape}")
        if not np.isfinite(w).all():
            raise NetworkError(f"connect {pre} -> {post}: weights hold NaN or infinity")
        self.connections.append(_Connection(pre, post, w, bool(plastic)))

    def set_learning(self, **params: int) -> None:
        """Integer learning registers (spec section 3), passed through unchanged."""
        self.learning = params

    def _new_name(self, name):
        if name in self.inputs or name in self.populations:
            raise NetworkError(f"name {name!r} is already used")

    def _size(self, name):
        return self.inputs[name] if name in self.inputs else self.populations[name].size

    # -- compile -------------------------------------------------------------
    def compile(self, widths: Widths | None = None, tolerance: float = 0.1) -> tuple[Network, QuantisationReport]:
        """Return `(Network, QuantisationReport)`; raise `NetworkError` past `tolerance`."""
        tolerance = check_tolerance(tolerance)
        widths = widths or Widths()
        w_lim = (1 << (widths.weight_bits - 1)) - 1
        s_lim = (1 << (widths.state_bits - 1)) - 1
        b = NetworkBuilder(widths)
        groups = {name: b.add_inputs(size, name) for name, size in self.inputs.items()}
        report = QuantisationReport(dt=self.dt, tolerance=tolerance, widths=vars(widths).copy(),
                                    populations=[], notes=[])
        int_weights = {}
        for pop in self.populations.values():
            params, entry, scaled = self._compile_population(pop, widths, w_lim, s_lim, tolerance)
            groups[pop.name] = b.add_neurons(pop.size, pop.name, **params)
            if "note" in entry:
                report["notes"].append(entry.pop("note"))
            report["populations"].append(entry)
            int_weights.update(scaled)
        for conn in self.connections:
            b.connect(groups[conn.pre], groups[conn.post], weights=int_weights[id(conn)],
                      plastic=conn.plastic)
        if self.learning:
            b.set_learning(**self.learning)
        network = b.build()
        network.extras["quantisation_report"] = np.array(report.to_json())
        network.extras["dt"] = np.array(self.dt)
        return network, report

    def _per_neuron(self, pop, name, value, allow_none=False):
        if value is None:
            if allow_none:
                return None
            raise NetworkError(f"population {pop.name}: {name} is required")
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            arr = np.full(pop.size, float(arr))
        if arr.shape != (pop.size,):
            raise NetworkError(f"population {pop.name}: {name} shape {arr.shape} is neither a scalar "
                               f"nor ({pop.size},)")
        if np.isnan(arr).any():
            raise NetworkError(f"population {pop.name}: {name} holds NaN")
        # An infinite time constant means "no decay", and r = inf with it the limit
        # r = tau_mem / dt (checked in compile); any other infinity has no integer to stand for.
        bad = (arr == -np.inf) if name.startswith("tau") or name == "r" else np.isinf(arr)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise NetworkError(f"population {pop.name}: {name}[{j}] = {arr[j]} is infinite"
                               + ("; allowed: a positive time constant, or inf for no decay"
                                  if name.startswith("tau") else ""))
        if name == "refractory" and (arr < 0).any():
            j = int(np.flatnonzero(arr < 0)[0])
            raise NetworkError(f"population {pop.name}: refractory[{j}] = {arr[j]:g} s is negative")
        return arr

    def _compile_population(self, pop, widths, w_lim, s_lim, tolerance):
        dt = self.dt
        get = lambda key, none=False: self._per_neuron(pop, key, getattr(pop, key), none)  # noqa: E731
        tau_mem, tau_syn = get("tau_mem", True), get("tau_syn", True)
        v_th, v_reset, v_leak = get("v_threshold"), get("v_reset"), get("v_leak")
        r, w_in, i_bias, refr = get("r"), get("w_in"), get("i_bias"), get("refractory")
        parameters = []

        def check(name, requested, realised, index=None, reference=None):
            requested, realised = float(requested), float(realised)
            reference = abs(requested) if reference is None else reference
            if requested == realised:
                err = 0.0
            elif reference == 0 or math.isinf(requested) or math.isinf(realised):
                err = math.inf
            else:
                err = (realised - requested) / reference
                # A float's last bits (v_leak * d / 4096 of a v_leak written as bias * 4096 / d) are
                # no quantisation error.
                err = 0.0 if abs(err) < FLOAT_NOISE else err
            if abs(err) > tolerance:
                where = f"{name}[{index}]" if index is not None else name
                raise NetworkError(
                    f"population {pop.name}: {where} = {requested:.6g} is realised as {realised:.6g} "
                    f"({_pct(err)}), beyond the tolerance of {tolerance:.0%}" + _hint(name, dt))
            return err

        def add(name, requested, realised, additive=False):
            # Additive quantities (bias, reset) are rounded to a step of 1/scale:
            # their error is relative to the largest of them in the population.
            ref = float(np.max(np.abs(requested))) if additive else None
            errs = [check(name, q, z, idx if pop.size > 1 else None, ref)
                    for idx, (q, z) in enumerate(zip(requested, realised))]
            worst = max(errs, key=abs) if errs else 0.0
            parameters.append({"name": name, "requested": [float(np.min(requested)), float(np.max(requested))],
                               "realised": [float(np.min(realised)), float(np.max(realised))],
                               "relative_error": worst})

        # Time constants -> decay factors.
        if pop.model == "if":
            if tau_mem is not None:
                raise NetworkError(f"population {pop.name}: model 'if' has no tau_mem (use 'lif')")
            decay_mem = np.zeros(pop.size, np.int64)
        else:
            if tau_mem is None:
                raise NetworkError(f"population {pop.name}: model {pop.model!r} needs tau_mem")
            decay_mem = np.array([decay_for(t, dt) for t in tau_mem], np.int64)
            add("tau_mem", tau_mem, [realised_tau(d, dt) for d in decay_mem])
        if pop.model == "cubalif":
            if tau_syn is None:
                raise NetworkError(f"population {pop.name}: model 'cubalif' needs tau_syn")
            decay_syn = np.array([decay_for(t, dt) for t in tau_syn], np.int64)
            # tau_syn <= dt is a current that lasts one step: I <- w_in x exactly.
            add("tau_syn", np.maximum(tau_syn, dt), [realised_tau(d, dt) for d in decay_syn])
        else:
            decay_syn = np.full(pop.size, DECAY_ONE, np.int64)
        _warn_short(pop.name, "tau_mem", tau_mem, decay_mem, dt)
        if pop.model == "cubalif":
            _warn_short(pop.name, "tau_syn", tau_syn, decay_syn, dt)
        # The realised leak per step (decay_mem / 4096); for no decay the requested
        # dt / tau_mem, which is below the core's resolution (0 for inf).
        bad = np.isinf(r) & (True if tau_mem is None else ~np.isinf(tau_mem))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise NetworkError(f"population {pop.name}: r[{j}] = {r[j]} is infinite; allowed only with "
                               "tau_mem = inf (the limit r = tau_mem / dt: no leak)")
        if pop.model == "if":
            leak = np.zeros(pop.size)
            gain = dt * r
        else:
            leak = _per_step(decay_mem, tau_mem, dt)
            gain = euler_gain(leak, r, tau_mem) * w_in
        # Constant current: into v each step. For cubalif it enters I, whose steady
        # state is i_bias * 4096 / decay_syn; that is used (exact for decay_syn = 4096).
        if pop.model == "cubalif":
            i_steady = i_bias * np.where(decay_syn == 0, 1.0, DECAY_ONE / np.maximum(decay_syn, 1))
        else:
            i_steady = i_bias
        bias_v = leak * v_leak + gain * i_steady
        if pop.model == "cubalif" and np.any((i_bias != 0) & (decay_syn != DECAY_ONE)):
            self_note = (f"population {pop.name}: a constant input current is applied as a membrane bias "
                         "equal to its steady state; the first tau_syn/dt steps after a reset differ")
        else:
            self_note = None

        # Scale: the largest weight into the population uses the whole range,
        # within the headroom the state bits allow.
        incoming = [c for c in self.connections if c.post == pop.name]
        max_w = max((float(np.max(np.abs(c.weights * gain[None, :]))) for c in incoming), default=0.0)
        v_max = float(max(np.max(np.abs(v_th)), np.max(np.abs(v_reset)), np.max(np.abs(bias_v)), 1e-30))
        s_state = s_lim / (HEADROOM * v_max)
        scale = pop.scale or (min(w_lim / max_w, s_state) if max_w > 0 else s_state)
        thr_int = np.floor(scale * v_th).astype(np.int64) + 1
        reset_int = np.round(scale * v_reset).astype(np.int64)
        bias_int = np.round(scale * bias_v).astype(np.int64)
        for name, arr in (("threshold", thr_int), ("v_reset", reset_int), ("bias", bias_int)):
            bad = (arr < -s_lim - 1) | (arr > s_lim)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise NetworkError(f"population {pop.name}: {name}[{j}] = {arr[j]} after scaling by "
                                   f"{scale:.6g} does not fit {widths.state_bits} state bits")
        # The model fires when v > v_threshold; on the core's grid (v = v_int / scale) that is
        # v_int > scale * v_threshold, which for integers is exactly v_int >= floor(scale * v_threshold)
        # + 1: the threshold adds no error of its own (the other parameters' rounding is theirs).
        parameters.append({"name": "v_threshold", "requested": [float(np.min(v_th)), float(np.max(v_th))],
                           "realised": [float(np.min(v_th)), float(np.max(v_th))], "relative_error": 0.0,
                           "integer": [int(np.min(thr_int)), int(np.max(thr_int))]})
        add("v_reset", v_reset, reset_int / scale, additive=True)
        if np.any(bias_v != 0):
            add("bias", bias_v, bias_int / scale, additive=True)
        refr_steps = np.round(refr / dt).astype(np.int64)
        if np.any(refr_steps > 255):
            raise NetworkError(f"population {pop.name}: refractory {float(refr.max()):.4g} s is "
                               f"{int(refr_steps.max())} steps; at most 255")
        if np.any(refr > 0):
            add("refractory", refr, refr_steps * dt)

        scaled = {}
        stats = dict(count=0, max_abs_error=0.0, rounded_to_zero=0, clipped=0, largest=0.0)
        for conn in incoming:
            exact = scale * conn.weights * gain[None, :]
            ints = np.clip(np.round(exact), -w_lim - 1, w_lim).astype(np.int64)
            stats["count"] += int(np.count_nonzero(conn.weights))
            stats["max_abs_error"] = max(stats["max_abs_error"], float(np.max(np.abs(ints - exact)) / scale)
                                         if exact.size else 0.0)
            stats["rounded_to_zero"] += int(np.count_nonzero((conn.weights != 0) & (ints == 0)))
            stats["clipped"] += int(np.count_nonzero(np.abs(exact) > w_lim + 0.5))
            stats["largest"] = max(stats["largest"], float(np.max(np.abs(ints))) if ints.size else 0.0)
            scaled[id(conn)] = ints
        weights_entry = {
            "count": stats["count"],
            "max_abs_error": stats["max_abs_error"],
            "max_relative_error_of_largest": (stats["max_abs_error"] * scale / max(stats["largest"], 1)),
            "rounded_to_zero": stats["rounded_to_zero"],
            "clipped": stats["clipped"],
            "range_used": stats["largest"] / w_lim,
        }
        entry = {"name": pop.name, "size": pop.size, "model": pop.model, "scale": scale,
                 "parameters": parameters, "weights": weights_entry,
                 "state_range_used": float(np.max(np.abs(thr_int))) / s_lim}
        if self_note:
            entry["note"] = self_note
        params = dict(threshold=thr_int, v_reset=reset_int, bias=bias_int, decay_mem=decay_mem, decay_syn=decay_syn,
                      refractory=refr_steps, reset_mode=0 if pop.reset == "zero" else 1)
        return params, entry, scaled


def _warn_short(population, name, tau, d, dt):
    """Log a warning when a time constant is under `SHORT_STEPS` steps of `dt`, naming the figures.

    At the wrong dt (1 ms for a network trained at 0.1 ms) every time
    constant shrinks tenfold: a membrane of 1 step keeps nothing
    (`decay_mem = 4096` clears it every step) and the network runs without
    memory, with a report that can look exact.
    """
    if tau is None:
        return
    ratio = tau / dt
    short = ratio < SHORT_STEPS      # NaN and inf are not short
    if not short.any():
        return
    j = int(np.argmin(np.where(short, ratio, np.inf)))
    count, cleared = int(short.sum()), int(np.count_nonzero(short & (d == DECAY_ONE)))
    steps = f"{ratio[j]:.3g} step{'' if ratio[j] == 1 else 's'}"
    text = (f"population {population}: {name} = {tau[j]:.4g} s is {steps} of dt = {dt:g} s"
            + (f" ({count} of {len(tau)} neurons under {SHORT_STEPS:g} steps)" if len(tau) > 1 else ""))
    if cleared:
        kept = "membrane potential" if name == "tau_mem" else "synaptic current"
        text += (f"; {cleared} neuron{'s' if cleared > 1 else ''} keep{'' if cleared > 1 else 's'} no {kept} "
                 f"from one step to the next (decay_{name[4:]} = {DECAY_ONE})")
    logger.warning("%s; is dt the step the network was trained at?", text)


def _count(name, size):
    """A size given in Python: a whole number, 1 or more (10.0 is taken, 2.5 is not)."""
    number = isinstance(size, (int, float, np.integer, np.floating)) and not isinstance(size, (bool, np.bool_))
    whole = number and math.isfinite(size) and float(size).is_integer()
    if not whole or size < 1:
        raise NetworkError(f"{name} = {size!r} is out of range: allowed a whole number, 1 or more")
    return int(size)


def _hint(name, dt):
    if name.startswith("tau"):
        return (f"; the core's time constants are 4096 * dt / d for a whole d in 1..4096 (dt = {dt:g} s; "
                "the longest short of no decay, inf, is 4096 steps): choose such a value, another dt, "
                "or a larger tolerance")
    if name == "refractory":
        return f"; refractory periods are whole steps of dt = {dt:g} s"
    return "; raise the state bits or the tolerance"
