"""Runs a PyNN simulation on a neurofabric device.

The engine compiles the network when it has changed (`mapping.compile_network`),
loads it onto the device (`neurofabric.host.device.open_device`: "golden",
"rtl", "serial:PATH", or a `Device` given to `setup`), and turns each PyNN run
into device runs:

- the host's inputs for the run: each `SpikeSourceArray` spike at `t` ms
  (rounded up to the step grid, as NEST does) is sent in step
  `ceil(t / dt) + delay_steps - 1`, so it acts `delay` after `t`;
- the generator's rates: a `SpikeSourcePoisson` of `rate` Hz is input `k` with
  `rate[k] = round(65536 * rate * dt)` (at most 65535), one Bernoulli draw per
  step (so at most one spike per step); it is on in the steps of
  `[start, start + duration)`, and the run is split into device runs where any
  rate changes (the generator's state carries over from one to the next, so
  splitting changes nothing);
- the seed: `setup(rng_seed=...)` (or the seed of `setup(rng=NumpyRNG(seed))`),
  loaded at the first run after each load or `reset()`, so a reset replays the
  same spikes.

A `reset()` sets the device back to its reset state; with learning it loads
the network again, so the weights are the initial ones (PyNN's `reset`).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from neurofabric.contract.model import Widths
from neurofabric.host.device import Device, open_device
from neurofabric.host.errors import DeviceError, NetworkError
from neurofabric.host.units import QuantisationReport

from .errors import UnsupportedError
from .mapping import Compiled, check_current_sources, compile_network
from .standardmodels import SpikeSourceArray, SpikeSourcePoisson

__all__ = ["Engine", "PyNNReport", "RATE_ONE"]

logger = logging.getLogger(__name__)

#: The generator's rate of 1: input k spikes with probability rate[k] / RATE_ONE per step (spec 5.0).
RATE_ONE = 65536
_GRID_SLACK = 1e-9


def _grid_steps(times_ms, dt):
    """Spike times in ms to steps, rounded up to the grid (a spike within a step counts at its end)."""
    return np.ceil(np.asarray(times_ms, dtype=float) / dt - _GRID_SLACK).astype(np.int64)


class PyNNReport(QuantisationReport):
    """The quantisation report of a PyNN network: the units layer's, plus learning, refractory periods and rates."""

    def lines(self) -> list[str]:
        out = super().lines() if self.get("populations") or self.get("notes") else []
        if self.get("populations"):
            out.insert(1, "  (the units layer's names and SI units: tau_mem is PyNN's tau_m and tau_syn its "
                          "tau_syn_E/I, in s; voltages in V from v_rest; bias is i_offset and DCSources)")
        refr = self.get("refractory")
        if refr:
            out.append(f"  tau_refrac    requested {refr['requested_ms'][0]:g}..{refr['requested_ms'][1]:g} ms, "
                       f"{refr['realised_steps'][0]}..{refr['realised_steps'][1]} steps "
                       f"({refr['relative_error']:+.1%}; {refr['note']})")
        learning = self.get("learning")
        if learning:
            out.append(f"  STDP (one global rule): trace increment {learning['trace_increment']} per spike, "
                       f"stdp_shift {learning['stdp_shift']}, {learning['w_per_unit']:.6g} per unit of weight")
            for p in learning["parameters"]:
                out.append(f"    {p['name']:<12} requested {p['requested']:.4g}, realised {p['realised']:.4g} "
                           f"({p['relative_error']:+.1%})")
        for entry in self.get("rates", []):
            out.append(f"  rate of {entry['population']}: requested {entry['requested'][0]:g}.."
                       f"{entry['requested'][1]:g} Hz, realised {entry['realised'][0]:.4g}.."
                       f"{entry['realised'][1]:.4g} Hz "
                       f"(worst {entry['relative_error']:+.2%}), generator rate {entry['rate'][0]}..{entry['rate'][1]}")
        return out


class Engine:
    """The device, the compiled network and the data of the current segment of one PyNN simulation."""

    def __init__(self, state, device: str | Device, options: dict, tolerance: float, seed: int):
        self.state = state
        self._device_spec = device
        self._options = dict(options)
        self.device: Device | None = None
        self._owns_device = False
        self.tolerance = tolerance
        self.seed = seed
        self.compiled: Compiled | None = None
        self.weights: np.ndarray | None = None
        self._restart = False       # the next run starts from the reset state
        self._seed_due = True       # the next device run loads the seed
        self.rates_report: dict = {}
        self._digest = hashlib.sha256()
        self.device_runs = 0
        self.ended = False
        self._clear_segment()

    # -- device ------------------------------------------------------------------------
    def _open(self):
        if self.device is None:
            if isinstance(self._device_spec, Device):
                self.device = self._device_spec
            else:
                self.device = open_device(self._device_spec, **self._options)
                self._owns_device = True
        return self.device

    def close(self):
        """Release the device if the engine opened it."""
        if self.device is not None and self._owns_device:
            self.device.close()
        self.device = None

    def _widths(self):
        caps = self._open().capabilities()
        default = Widths()
        return Widths(state_bits=caps.state_bits or default.state_bits,
                      weight_bits=caps.weight_bits or default.weight_bits,
                      trace_bits=caps.trace_bits or default.trace_bits)

    def compile(self) -> Compiled:
        """Compile the network as it is now (also for `quantisation_report()` before a run)."""
        state = self.state
        if self.compiled is None or self.compiled.version != state.network_version:
            self.compiled = compile_network(state, self._widths(), self.tolerance)
        return self.compiled

    def _check_fits(self, compiled):
        caps = self.device.capabilities()
        too_many = ((caps.neurons is not None and compiled.n > caps.neurons)
                    or (caps.inputs is not None and compiled.m > caps.inputs))
        if too_many:
            raise DeviceError(f"the PyNN network does not fit device {caps.kind!r}: it needs "
                              f"{compiled.sizes_text()}; the device has n = {caps.neurons} neurons, "
                              f"m = {caps.inputs} inputs")

    def _prepare(self):
        state = self.state
        self._open()
        loaded = (self.compiled is not None and self.compiled.version == state.network_version
                  and self.weights is not None)
        if not loaded:
            if state.t_steps > 0:
                raise UnsupportedError(
                    f"the network changed after the simulation started ({state.last_change}, at "
                    f"t = {state.t:g} ms): the core loads parameters, connections, weights and current sources "
                    "with a reset of its state; call reset() first (it also restores the initial weights), or "
                    "make the change before the first run (spike times and Poisson rates may change at any time)")
            compiled = self.compile()
            self._check_fits(compiled)
            self.device.load(compiled.network)
            self.weights = compiled.network.weights.copy()
            self._restart = False
            self._seed_due = True
        elif self._restart:
            if self.compiled.learning:
                self.device.load(self.compiled.network)   # the initial weights back
            else:
                self.device.reset_state()
            self.weights = self.compiled.network.weights.copy()
            self._restart = False
            self._seed_due = True

    def reset(self):
        """PyNN's reset: the next run starts from the reset state with the initial weights; a new segment."""
        self._clear_segment()
        if self.compiled is not None and self.weights is not None:
            self._restart = True
            self.weights = self.compiled.network.weights.copy()

    # -- runs ------------------------------------------------------------------------------
    def advance(self, steps: int):
        """Run `steps` steps from the current time."""
        state = self.state
        if self.ended:
            raise DeviceError("the simulation has ended (end() was called): call setup() to start another")
        self._prepare()
        compiled = self.compiled
        first, end = state.t_steps, state.t_steps + steps
        check_current_sources(state, first, end)
        host = self._host_inputs(compiled, first, end)
        record = self._probes(compiled)
        for a, b, rates in self._rate_segments(compiled, first, end):
            seed = self.seed if self._seed_due else None
            self._seed_due = False
            rec = self.device.run(host[a - first:b - first], steps=b - a, record=record, rates=rates, seed=seed)
            self.device_runs += 1
            self._store(compiled, rec, a, record)

    def _probes(self, compiled):
        record = []
        columns = []
        start = 0
        for pop in compiled.cells:
            if pop.recorder.recorded.get(_variable("v")):
                columns.extend(range(start, start + pop.size))
            start += pop.size
        self._v_columns = np.asarray(columns, dtype=np.int64)
        if columns:
            record.append("v")
        for pop in compiled.sources:
            if isinstance(pop.celltype, SpikeSourcePoisson) and pop.recorder.recorded.get(_variable("spikes")):
                record.append("inputs")
                break
        return tuple(record)

    def _host_inputs(self, compiled, first, end):
        """The host's `(steps, m)` inputs for steps `[first, end)`; notes the spike sources' emissions."""
        dt = self.state.dt
        host = np.zeros((end - first, compiled.m), bool)
        start = 0
        for pop in compiled.sources:
            if isinstance(pop.celltype, SpikeSourceArray):
                for i, times in enumerate(pop.parameter_array("spike_times")):
                    values = np.asarray(getattr(times, "value", times), dtype=float).reshape(-1)
                    s = np.unique(_grid_steps(values[values >= 0], dt))
                    k = start + i
                    u = s + compiled.delay_steps[k] - 1
                    sent = u[(u >= first) & (u < end)]
                    host[sent - first, k] = True
                    emitted = s[(s >= first) & (s < end)]
                    self._array_steps.append(emitted)
                    self._array_channels.append(np.full(emitted.size, k, np.int64))
            start += pop.size
        return host

    def _rate_segments(self, compiled, first, end):
        """`[(a, b, rates)]`: the run split where a generator rate changes."""
        dt = self.state.dt
        m = compiled.m
        rate = np.zeros(m, np.int64)
        on = np.zeros(m, np.int64)
        off = np.zeros(m, np.int64)
        report = {}
        start = 0
        for pop in compiled.sources:
            if isinstance(pop.celltype, SpikeSourcePoisson):
                sl = slice(start, start + pop.size)
                requested = pop.parameter_array("rate").astype(float)
                rate[sl], entry = _generator_rates(pop, requested, dt, self.tolerance)
                if entry:
                    report[pop.label] = entry
                begin = pop.parameter_array("start").astype(float)
                stop = begin + pop.parameter_array("duration").astype(float)
                on[sl] = np.clip(_grid_steps(begin, dt), 0, end)
                off[sl] = np.clip(np.ceil(np.minimum(stop, 1e300) / dt - _GRID_SLACK), 0, end).astype(np.int64)
            start += pop.size
        self.rates_report = report
        active = rate > 0
        cuts = {first, end}
        for edge in (on[active], off[active]):
            cuts.update(int(x) for x in edge if first < x < end)
        cuts = sorted(cuts)
        segments = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            live = active & (on <= a) & (a < off)
            segments.append((a, b, np.where(live, rate, 0)))
        return segments

    # -- data of the segment --------------------------------------------------------------
    def _clear_segment(self):
        self._spike_steps, self._spike_neurons = [], []
        self._input_steps, self._input_channels = [], []
        self._array_steps, self._array_channels = [], []
        self._v_chunks = []    # (first step, neurons, int32 array (steps, len(neurons)))
        self._v_columns = np.zeros(0, np.int64)

    def _store(self, compiled, rec, first, record):
        spikes = np.asarray(rec.spikes, dtype=np.uint8)
        steps, neurons = np.nonzero(spikes)
        self._spike_steps.append(steps + first)
        self._spike_neurons.append(neurons)
        self._digest.update(np.ascontiguousarray(spikes).tobytes())
        if "v" in record:
            v = np.asarray(rec.v, dtype=np.int64)
            self._digest.update(np.ascontiguousarray(v).tobytes())
            # Only the populations that record v are kept (int32 holds any state width, spec section 1).
            self._v_chunks.append((first, self._v_columns, v[:, self._v_columns].astype(np.int32)))
        if "inputs" in record:
            inputs = np.asarray(rec.inputs, dtype=np.uint8)
            steps, channels = np.nonzero(inputs * compiled.poisson[None, :])
            self._input_steps.append(steps + first)
            self._input_channels.append(channels)
            self._digest.update(np.ascontiguousarray(inputs).tobytes())
        self.weights = np.asarray(rec.weights, dtype=np.int64).copy()
        self._digest.update(np.ascontiguousarray(self.weights).tobytes())

    def digest(self) -> str:
        """A hash of everything the device returned so far (spikes, probes, weights), to compare devices."""
        return self._digest.hexdigest()

    def spike_times(self, ids: np.ndarray, since: int) -> dict[int, np.ndarray]:
        """`{id: spike times (ms)}` of cells `ids` from step `since` on, in the current segment."""
        out = {int(i): np.zeros(0) for i in ids}
        compiled = self.compiled
        if compiled is None or not ids.size:
            return out
        dt = self.state.dt
        m = compiled.m
        address = compiled.address[ids] if ids.max() < compiled.address.size else None
        if address is None:
            return out
        groups = (
            (self._spike_steps, self._spike_neurons, m, 1),   # neuron spikes: end of their step
            (self._input_steps, self._input_channels, 0, 0),  # generated inputs: their step
            (self._array_steps, self._array_channels, 0, 0),  # SpikeSourceArray emissions
        )
        for steps_list, where_list, offset, after in groups:
            if not steps_list:
                continue
            steps = np.concatenate(steps_list)
            where = np.concatenate(where_list) + offset
            keep = steps >= since
            steps, where = steps[keep], where[keep]
            order = np.lexsort((steps, where))
            steps, where = steps[order], where[order]
            for cell, addr in zip(ids.tolist(), address.tolist()):
                lo, hi = np.searchsorted(where, [addr, addr + 1])
                if hi > lo:
                    times = np.round((steps[lo:hi] + after) * dt, 9)
                    out[cell] = np.concatenate([out[cell], times]) if out[cell].size else times
        return {cell: np.unique(times) if times.size else times for cell, times in out.items()}

    def membrane(self, ids: np.ndarray, since: int, now: int) -> np.ndarray:
        """`v` (mV) of cells `ids` at the steps `since .. now` (the first row is the state at `since`)."""
        compiled = self.compiled
        rows = now - since + 1
        out = np.full((rows, ids.size), np.nan)
        if compiled is None or not ids.size:
            return out
        j = compiled.address[ids] - compiled.m
        if since == 0:
            out[0] = 0.0
        for first, neurons, v in self._v_chunks:
            # v[s] is the state after step first + s, at time first + s + 1.
            times = np.arange(first + 1, first + 1 + v.shape[0])
            keep = (times >= since) & (times <= now)
            have = np.isin(j, neurons)
            position = np.searchsorted(neurons, j[have])
            rows = out[times[keep] - since]
            rows[:, have] = v[keep][:, position]
            out[times[keep] - since] = rows
        return out / compiled.v_per_mv[j][None, :] + compiled.v_rest[j][None, :]

    def realised_weights(self, projection):
        """The weights of `projection`'s connections as the device holds them (PyNN units), or None."""
        compiled = self.compiled
        if (compiled is None or self.weights is None or compiled.version != self.state.network_version
                or projection not in compiled.shares):
            return None
        k, j, share = compiled.shares[projection]
        return self.weights[k, j] / compiled.w_per_unit[j] * share

    def report(self) -> PyNNReport:
        """The quantisation report of the network as it is now, with the rates of the last run."""
        report = PyNNReport(self.compile().report)
        if self.rates_report:
            report["rates"] = list(self.rates_report.values())
        return report


def _variable(name):
    from pyNN.recording import Variable
    return Variable(name=name, location=None, label=None)


def _generator_rates(pop, requested, dt_ms, tolerance):
    """`rate[k]` for each neuron of a SpikeSourcePoisson, and the report entry; refuses beyond tolerance."""
    if np.any(~np.isfinite(requested)) or np.any(requested < 0):
        i = int(np.flatnonzero(~np.isfinite(requested) | (requested < 0))[0])
        raise NetworkError(f"population {pop.label}: rate[{i}] = {requested[i]:g} Hz is not a rate")
    probability = requested * dt_ms * 1e-3
    ints = np.minimum(np.round(probability * RATE_ONE), RATE_ONE - 1).astype(np.int64)
    realised = ints / RATE_ONE / (dt_ms * 1e-3)
    err = np.where(requested > 0, (realised - requested) / np.where(requested > 0, requested, 1), 0.0)
    bad = np.abs(err) > tolerance
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = ("below the generator's resolution of one in 65536 per step" if ints[i] == 0 else
               "at or above one spike per step" if probability[i] >= 1 else "rounded")
        raise NetworkError(
            f"population {pop.label}: rate[{i}] = {requested[i]:g} Hz is realised as {realised[i]:.6g} Hz "
            f"({err[i]:+.1%}, generator rate {ints[i]} of 65536 per step of {dt_ms:g} ms: {why}), beyond the "
            f"tolerance of {tolerance:.0%}")
    if not ints.size or not np.any(requested > 0):
        return ints, None
    worst = int(np.argmax(np.abs(err)))
    return ints, {"population": pop.label, "requested": [float(requested.min()), float(requested.max())],
                  "realised": [float(realised.min()), float(realised.max())], "relative_error": float(err[worst]),
                  "rate": [int(ints.min()), int(ints.max())]}

