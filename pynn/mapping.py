"""PyNN's network onto the core: populations and projections flattened into one `Network`.

The spike sources become the core's inputs (all source populations, in the
order they were created, then the neurons of all cell populations), and every
parameter goes through the physical-units layer (`neurofabric.host.units`,
forward Euler at the time step), which chooses the integers and reports what
it changed. PyNN's units (ms, mV, nA, nF) are converted to SI for it.

- `tau_m`, `tau_syn_E`/`tau_syn_I` -> `decay_mem`, `decay_syn` = `round(4096 * dt / tau)`; the
  core has one synaptic current per neuron, so where a neuron receives excitation and
  inhibition (the sign of the weight) both time constants must give the same factor;
- `v_thresh`, `v_reset` -> `threshold`, `v_reset`, relative to `v_rest` (the core's 0), times
  the population's scale (integers per volt);
- `cm`, `i_offset` and `DCSource` -> the gain of the weights and the `bias`: with
  `R = tau_m / cm`, a constant current `I` moves the resting level to `v_rest + R * I`;
- `tau_refrac` -> `refractory` = `round(tau_refrac / dt)` steps;
- weights (nA; mV for `IF_curr_delta`) -> `round(scale * gain * w)`;
- delays -> the core's one step (`timestep`); from a `SpikeSourceArray`, any whole number of
  steps, one per source, by shifting its spikes;
- `SpikePairRule`, `AdditiveWeightDependence` -> the learning registers (`learning_registers`);
- a `SpikeSourcePoisson` rate -> `rate[k]` (`neurofabric.pynn.engine`).

Refused, with the population, parameter and index: values the integers miss
by more than the tolerance (`setup(tolerance=...)`, 10 % by default), initial
values other than the reset state (`v = v_rest`, no synaptic current), delays
the core cannot give, learning rules the one global rule cannot hold.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from pyNN.standardmodels.base import inhibitory_receptor_types

from neurofabric.contract.model import DECAY_ONE, Widths
from neurofabric.host.builder import NetworkBuilder, SparsePlasticityWarning
from neurofabric.host.errors import NetworkError
from neurofabric.host.network import Network
from neurofabric.host.units import PhysicalNetwork, QuantisationReport, decay_for, euler_gain, realised_tau

from .errors import UnsupportedError
from .populations import is_source
from .standardmodels import DCSource, IF_curr_delta, IF_curr_exp, SpikeSourcePoisson

__all__ = ["Compiled", "compile_network", "learning_registers", "TRACE_HEADROOM_BITS"]

logger = logging.getLogger(__name__)

#: The STDP trace increment is 2**(T - TRACE_HEADROOM_BITS): a trace holds up to
#: 2**TRACE_HEADROOM_BITS spikes' worth of pairs before it saturates (all-pairs traces add).
TRACE_HEADROOM_BITS = 2
#: A delay this close (relative) to a whole number of steps is that number.
_DELAY_SLACK = 1e-6
_MS, _MV, _NA, _NF = 1e-3, 1e-3, 1e-9, 1e-9


@dataclass(eq=False)
class Compiled:
    """A compiled PyNN network: the integer `Network` and how PyNN's cells map onto it."""

    network: Network
    report: QuantisationReport
    version: int
    sources: list            # source populations, in input order
    cells: list              # cell populations, in neuron order
    address: np.ndarray      # cell ID -> core source index (inputs 0..m-1, neuron j at m + j)
    v_per_mv: np.ndarray     # (n,) integer v per mV
    v_rest: np.ndarray       # (n,) mV, the value of v = 0
    w_per_unit: np.ndarray   # (n,) integer weight per PyNN weight unit (nA, or mV for IF_curr_delta)
    delay_steps: np.ndarray  # (m,) steps from a source's spike to its effect (1 = the next step)
    poisson: np.ndarray      # (m,) bool, channels driven by the generator
    learning: bool
    placeholder: bool        # a neuron that is not in the PyNN network (a network of sources only)
    shares: dict = field(default_factory=dict)   # projection -> (k, j, share of the core's synapse)

    @property
    def m(self) -> int:
        return self.network.m

    @property
    def n(self) -> int:
        return self.network.n

    def sizes_text(self) -> str:
        """'n = 12 neurons (exc 10, inh 2), m = 20 inputs (noise 20)'."""
        cells = ", ".join(f"{p.label} {p.size}" for p in self.cells) or "none of the PyNN network's"
        sources = ", ".join(f"{p.label} {p.size}" for p in self.sources) or "none"
        return f"n = {self.n} neurons ({cells}), m = {self.m} inputs ({sources})"


def _labels(populations):
    """Unique names for the units layer (PyNN labels may repeat)."""
    seen, out = {}, []
    for pop in populations:
        base = str(pop.label)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(base if count == 0 else f"{base}#{count}")
    return out


def _param(pop, name):
    return np.asarray(pop.parameter_array(name), dtype=float)


def _check_initial(pop):
    v0, v_rest = pop.initial_array("v"), _param(pop, "v_rest")
    bad = ~np.isclose(v0, v_rest, rtol=0, atol=1e-9)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise UnsupportedError(
            f"population {pop.label}: initial v[{j}] = {v0[j]:g} mV differs from v_rest[{j}] = {v_rest[j]:g} mV: "
            "the core starts every neuron from its reset state, v = v_rest; initialize(v=v_rest) (or drop the "
            "initial value) to run it")
    for name in ("isyn_exc", "isyn_inh"):
        if name in pop.celltype.default_initial_values:
            values = pop.initial_array(name)
            if np.any(values != 0):
                j = int(np.flatnonzero(values != 0)[0])
                raise UnsupportedError(f"population {pop.label}: initial {name}[{j}] = {values[j]:g} nA: the core "
                                       "starts every synaptic current at 0")


def _address_map(state, sources, cells, m):
    address = np.full(state.id_counter, -1, np.int64)
    start = 0
    for pop in sources:
        address[int(pop.first_id):int(pop.first_id) + pop.size] = np.arange(start, start + pop.size)
        start += pop.size
    start = m
    for pop in cells:
        address[int(pop.first_id):int(pop.first_id) + pop.size] = np.arange(start, start + pop.size)
        start += pop.size
    return address


@dataclass(eq=False)
class _Synapses:
    """Every connection of every projection, in core coordinates."""

    k: np.ndarray
    j: np.ndarray
    weight: np.ndarray
    steps: np.ndarray
    inhibitory: np.ndarray
    plastic: np.ndarray
    projection: np.ndarray   # index into the projection list


def _collect(state, address, m, dt):
    parts = []
    for index, prj in enumerate(state.projections):
        pre_idx, post_idx, attrs = prj._arrays()
        if pre_idx.size == 0:
            continue
        k = address[np.asarray(prj.pre.all_cells[pre_idx], dtype=np.int64)]
        j = address[np.asarray(prj.post.all_cells[post_idx], dtype=np.int64)] - m
        if np.any(j < 0):
            raise UnsupportedError(f"projection {prj.label}: its targets include spike sources")
        steps = attrs["delay"] / dt
        whole = np.round(steps)
        bad = np.abs(steps - whole) > _DELAY_SLACK * np.maximum(whole, 1)
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            raise UnsupportedError(
                f"projection {prj.label}: delay {attrs['delay'][c]:g} ms (connection {c}) is not a whole number "
                f"of time steps of {dt:g} ms")
        parts.append((k, j, attrs["weight"], whole.astype(np.int64),
                      np.full(k.size, prj.receptor_type in inhibitory_receptor_types),
                      np.full(k.size, prj.plastic), np.full(k.size, index)))
    if not parts:
        empty = np.zeros(0, np.int64)
        return _Synapses(empty, empty, np.zeros(0), empty, empty.astype(bool), empty.astype(bool), empty)
    return _Synapses(*(np.concatenate(column) for column in zip(*parts)))


def _delays(state, syn, sources, m, dt):
    """The delay in steps of each input channel; refuses what the core cannot give."""
    delay = np.ones(m, np.int64)
    neuron = syn.k >= m
    short = syn.steps < 1
    for what, bad in (("neurons", neuron & (syn.steps != 1)), ("sources", ~neuron & short)):
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            prj = state.projections[syn.projection[c]]
            allowed = ("exactly one time step" if what == "neurons" else
                       "one time step or more (whole steps)")
            raise UnsupportedError(
                f"projection {prj.label}: delay {syn.steps[c] * dt:g} ms is {syn.steps[c]} steps of {dt:g} ms; "
                f"the core delivers a neuron's spike to its targets one step after it (PyNN's delay = timestep "
                f"= {dt:g} ms), and delays from {what} must be {allowed}")
    poisson = np.zeros(m, bool)
    start = 0
    for pop in sources:
        poisson[start:start + pop.size] = isinstance(pop.celltype, SpikeSourcePoisson)
        start += pop.size
    for k in np.unique(syn.k[~neuron]):
        steps = np.unique(syn.steps[syn.k == k])
        if steps.size > 1 or (poisson[k] and steps[0] != 1):
            c = int(np.flatnonzero(syn.k == k)[0])
            prj = state.projections[syn.projection[c]]
            why = ("a SpikeSourcePoisson's spikes come from the core's generator in the step they act"
                   if poisson[k] else "a SpikeSourceArray's delay is a shift of its spike times, one per source")
            raise UnsupportedError(
                f"projection {prj.label}: input channel {k} has connections with delays of "
                f"{', '.join(f'{s * dt:g}' for s in steps)} ms; {why} (delay = timestep = {dt:g} ms)")
        delay[k] = steps[0]
    return delay, poisson


def _neuron_parameters(cells, n, dt_ms, dc_current):
    """Per-neuron PyNN parameters in core order, as float arrays."""
    names = ("tau_m", "cm", "v_rest", "v_thresh", "v_reset", "tau_refrac", "i_offset")
    values = {name: np.concatenate([_param(p, name) for p in cells]) for name in names}
    for name in ("tau_syn_E", "tau_syn_I"):
        values[name] = np.concatenate([_param(p, name) if name in p.celltype.default_parameters
                                       else np.full(p.size, np.nan) for p in cells])
    values["i_total"] = values["i_offset"] + dc_current
    values["delta"] = np.concatenate([np.full(p.size, isinstance(p.celltype, IF_curr_delta)) for p in cells])
    return values


def _dc_current(state, address, m, n):
    current = np.zeros(n)
    for source in state.current_sources:
        if not isinstance(source, DCSource) or not source.cell_list:
            continue
        amplitude, _, _ = source.values()
        for cell in source.cell_list:
            current[address[int(cell)] - m] += amplitude
    return current


def check_current_sources(state, start_step, end_step):
    """Refuse a DCSource that is not on for the whole of the run `[start_step, end_step)`."""
    dt = state.dt
    for source in state.current_sources:
        if not isinstance(source, DCSource) or not source.cell_list:
            continue
        amplitude, start, stop = source.values()
        if amplitude == 0:
            continue
        if start > 1e-9 or stop < end_step * dt - 1e-9:
            raise UnsupportedError(
                f"a DCSource of {amplitude:g} nA from {start:g} to {stop:g} ms is not on for the whole run "
                f"from {start_step * dt:g} to {end_step * dt:g} ms: the core's constant current is each "
                "neuron's bias, loaded with the network; supported: a DCSource on from 0 ms to the end of the "
                "simulation")


def _refractory(values, dt_ms, tolerance, cells):
    """Refractory periods in whole steps; shorter than half a step is none, as in NEST."""
    requested = values["tau_refrac"]
    steps = np.round(requested / dt_ms).astype(np.int64)
    err = np.where(requested > 0, (steps * dt_ms - requested) / np.where(requested > 0, requested, 1), 0.0)
    bad = (np.abs(err) > tolerance) & (steps > 0)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        pop, index = _locate(cells, j)
        raise NetworkError(f"population {pop.label}: tau_refrac[{index}] = {requested[j]:g} ms is realised as "
                           f"{steps[j]} steps of {dt_ms:g} ms ({err[j]:+.1%}), beyond the tolerance of "
                           f"{tolerance:.0%}; refractory periods are whole steps")
    if np.any(steps > 255):
        j = int(np.argmax(steps))
        pop, index = _locate(cells, j)
        raise NetworkError(f"population {pop.label}: tau_refrac[{index}] = {requested[j]:g} ms is {steps[j]} steps; "
                           "the core's refractory counter holds at most 255")
    return steps, {"name": "tau_refrac", "requested_ms": [float(requested.min()), float(requested.max())],
                   "realised_steps": [int(steps.min()), int(steps.max())],
                   "relative_error": float(err[np.argmax(np.abs(err))]) if err.size else 0.0,
                   "note": "periods under half a step are none, as in NEST"}


def _locate(cells, j):
    for pop in cells:
        if j < pop.size:
            return pop, j
        j -= pop.size
    raise IndexError(j)


def _tau_syn(values, syn, n, dt, cells):
    """The synaptic time constant of each neuron: E, I, or both when they give the same factor."""
    exc = np.zeros(n, bool)
    inh = np.zeros(n, bool)
    exc[syn.j[~syn.inhibitory]] = True
    inh[syn.j[syn.inhibitory]] = True
    tau_e, tau_i = values["tau_syn_E"], values["tau_syn_I"]
    tau = np.where(inh & ~exc, tau_i, tau_e)
    for j in np.flatnonzero(exc & inh & ~values["delta"]):
        if decay_for(tau_e[j] * _MS, dt) != decay_for(tau_i[j] * _MS, dt):
            pop, index = _locate(cells, j)
            raise UnsupportedError(
                f"population {pop.label}: neuron {index} receives excitatory and inhibitory input with "
                f"tau_syn_E = {tau_e[j]:g} ms and tau_syn_I = {tau_i[j]:g} ms; the core has one synaptic current "
                "per neuron (excitation and inhibition are the sign of the weight), so both must be the same "
                "time constant")
    return tau


def _check_time_constants(cells, values, tau_syn, dt_ms, tolerance):
    """Refuse, in PyNN's names and ms, a time constant the decay factors miss by more than the tolerance.

    (The units layer checks the same, in its names and seconds; this says it as the script wrote it.)
    """
    dt = dt_ms * _MS
    for name, taus, applies in (("tau_m", values["tau_m"], np.ones(values["tau_m"].size, bool)),
                                ("tau_syn", tau_syn, ~values["delta"])):
        for j in np.flatnonzero(applies):
            tau = float(taus[j])
            if not tau > 0:
                pop, index = _locate(cells, j)
                raise NetworkError(f"population {pop.label}: {name}[{index}] = {tau:g} ms is not a positive "
                                   "time constant")
            requested = max(tau, dt_ms) if name == "tau_syn" else tau
            realised = realised_tau(decay_for(tau * _MS, dt), dt) / _MS
            err = math.inf if math.isinf(realised) else (realised - requested) / requested
            if abs(err) > tolerance:
                pop, index = _locate(cells, j)
                which = name if name == "tau_m" else "tau_syn_E/tau_syn_I"
                raise NetworkError(
                    f"population {pop.label}: {which}[{index}] = {tau:g} ms is realised as {realised:.6g} ms "
                    f"({err:+.1%}), beyond the tolerance of {tolerance:.0%}: the core's time constants are "
                    f"4096 * dt / d for a whole d in 1..4096 (dt = {dt_ms:g} ms); choose another time step, "
                    "another time constant or a larger tolerance")


def _gain(network, values, dt, units_per_weight):
    """Per neuron: the integer weight per PyNN weight unit divided by the population's scale."""
    d = network.decay_mem.astype(float)
    tau = values["tau_m"] * _MS
    leak = np.where(d > 0, d / DECAY_ONE, dt / tau)
    r = np.where(values["delta"], 1.0, values["tau_m"] / values["cm"] * (_MS / _NF))
    w_in = np.where(values["delta"], _w_in_delta(values, dt), 1.0)
    return euler_gain(leak, r, tau) * w_in * units_per_weight


def _w_in_delta(values, dt):
    """For IF_curr_delta: the input factor that makes a weight of w mV move v by w mV (the leak undone)."""
    d = np.array([decay_for(t * _MS, dt) for t in values["tau_m"]], float)
    return np.where(d > 0, DECAY_ONE / np.maximum(d, 1), values["tau_m"] * _MS / dt)


def _populations_for_units(net, cells, names, values, tau_syn, refr_steps, dt):
    start = 0
    for pop, name in zip(cells, names):
        sl = slice(start, start + pop.size)
        start += pop.size
        delta = bool(values["delta"][sl][0])
        r_ohm = values["tau_m"][sl] / values["cm"][sl] * (_MS / _NF)
        params = dict(
            model="lif" if delta else "cubalif",
            tau_mem=values["tau_m"][sl] * _MS,
            v_threshold=(values["v_thresh"][sl] - values["v_rest"][sl]) * _MV,
            v_reset=(values["v_reset"][sl] - values["v_rest"][sl]) * _MV,
            v_leak=r_ohm * values["i_total"][sl] * _NA,
            r=1.0 if delta else r_ohm,
            w_in=_w_in_delta({k: v[sl] for k, v in values.items()}, dt) if delta else 1.0,
            refractory=refr_steps[sl] * dt,
        )
        if not delta:
            params["tau_syn"] = tau_syn[sl] * _MS
        net.add_population(name, pop.size, **params)


def _blocks(syn, sources, cells, names_in, names_pop, m, n):
    """Weight matrices per (pre group, post group, plastic), as the units layer takes them."""
    groups = []   # (name, first core index, size)
    start = 0
    for pop, name in zip(sources, names_in):
        groups.append((name, start, pop.size))
        start += pop.size
    start = m
    for pop, name in zip(cells, names_pop):
        groups.append((name, start, pop.size))
        start += pop.size
    pre_of = np.zeros(m + n, np.int64)
    for g, (_, first, size) in enumerate(groups):
        pre_of[first:first + size] = g
    post_groups = [g for g, (_, first, _) in enumerate(groups) if first >= m]
    post_of = np.zeros(n, np.int64)
    for g in post_groups:
        _, first, size = groups[g]
        post_of[first - m:first - m + size] = g
    blocks = {}
    for plastic in (False, True):
        mask = syn.plastic == plastic
        for gp, gq in set(zip(pre_of[syn.k[mask]].tolist(), post_of[syn.j[mask]].tolist())):
            blocks[(gp, gq, plastic)] = np.zeros((groups[gp][2], groups[gq][2]))
    for gp, gq, plastic in blocks:
        if plastic and (gp, gq, False) in blocks:
            raise UnsupportedError(
                f"static and plastic projections both connect {groups[gp][0]} to {groups[gq][0]}: the core's "
                "plasticity is a per-source mask times a per-neuron mask, so every synapse between the two would "
                "learn; make them one plastic projection, or split the populations")
    totals = np.zeros((m + n, n))
    np.add.at(totals, (syn.k, syn.j), syn.weight)
    for (gp, gq, _plastic), block in blocks.items():
        _, fp, sp = groups[gp]
        _, fq, sq = groups[gq]
        block[:] = totals[fp:fp + sp, fq - m:fq - m + sq]
    return groups, blocks, totals


def _check_overlaps(state, syn, m, n):
    """A plastic synapse set twice, or by a static and a plastic projection, has no one weight on the core."""
    count = np.zeros((m + n, n), np.int64)
    np.add.at(count, (syn.k[syn.plastic], syn.j[syn.plastic]), 1)
    static = np.zeros((m + n, n), bool)
    static[syn.k[~syn.plastic], syn.j[~syn.plastic]] = True
    bad = (count > 1) | ((count > 0) & static)
    if bad.any():
        k, j = np.argwhere(bad)[0]
        c = int(np.flatnonzero(syn.plastic & (syn.k == k) & (syn.j == j))[0])
        prj = state.projections[syn.projection[c]]
        raise UnsupportedError(
            f"projection {prj.label}: a plastic synapse from core source {k} to neuron {j} is set "
            f"{'by more than one connection' if count[k, j] > 1 else 'also by a static projection'}; the core "
            "holds one weight per pair of cells, and a plastic one learns on its own")


def learning_registers(rule, w_per_unit, widths, dt, tolerance):
    """The core's learning registers (spec section 3) for one PyNN pair rule, and their report.

    `rule` holds `tau_plus`, `tau_minus` (ms), `A_plus`, `A_minus`, `w_min`,
    `w_max` (PyNN's weight unit); `w_per_unit` is the integer weight per unit
    of the plastic synapses' targets. PyNN's additive rule (NEST's and Brian2's
    `stdp_synapse`) changes a weight by `w_max * A_plus * K_pre` on a post
    spike and by `w_max * A_minus * K_post` on a pre spike, the `K` being sums
    of `exp(-dt / tau)` over earlier spikes. The core's traces count `inc` per
    spike (`inc = 2**(T - 2)`: four spikes' worth before a trace saturates), so
    `a_plus * inc / 2**stdp_shift = w_per_unit * w_max * A_plus`, with the
    largest `stdp_shift` that keeps `a_plus` and `a_minus` within 0..255.
    """
    t_max = (1 << widths.trace_bits) - 1
    inc = 1 << (widths.trace_bits - TRACE_HEADROOM_BITS)
    w_lim = (1 << (widths.weight_bits - 1)) - 1
    entries = []

    def check(name, requested, realised, reference=None):
        reference = abs(requested) if reference is None else reference
        err = 0.0 if requested == realised else (math.inf if reference == 0 else (realised - requested) / reference)
        entries.append({"name": name, "requested": float(requested), "realised": float(realised),
                        "relative_error": err})
        if abs(err) > tolerance:
            raise NetworkError(f"STDP: {name} = {requested:.6g} is realised as {realised:.6g} ({err:+.1%}), beyond "
                               f"the tolerance of {tolerance:.0%}")

    regs = {}
    for name, key in (("tau_plus", "decay_pre"), ("tau_minus", "decay_post")):
        d = decay_for(rule[name] * _MS, dt)
        regs[key] = d
        check(name, rule[name], realised_tau(d, dt) / _MS)
    scale = w_per_unit * rule["w_max"]
    targets = {"A_plus": scale * rule["A_plus"] / inc, "A_minus": scale * rule["A_minus"] / inc}
    largest = max(abs(v) for v in targets.values())
    shift = 0
    while shift < 15 and round(largest * 2 ** (shift + 1)) <= 255:
        shift += 1
    for name, target in targets.items():
        a = min(255, max(0, round(target * 2 ** shift)))
        regs["a_plus" if name == "A_plus" else "a_minus"] = a
        realised = a * inc / 2 ** shift / scale if scale else 0.0
        check(name, rule[name], realised if scale else rule[name])
    for name in ("w_min", "w_max"):
        value = round(rule[name] * w_per_unit)
        if not -w_lim - 1 <= value <= w_lim:
            raise NetworkError(f"STDP: {name} = {rule[name]:g} is {value} on the core, outside the "
                               f"{widths.weight_bits}-bit weights ({-w_lim - 1}..{w_lim})")
        regs[name] = value
        check(name, rule[name], value / w_per_unit, reference=max(abs(rule["w_min"]), abs(rule["w_max"])))
    if regs["w_min"] > regs["w_max"]:
        raise NetworkError(f"STDP: w_min = {rule['w_min']:g} is above w_max = {rule['w_max']:g}")
    regs.update(stdp_shift=shift, inc_pre=min(inc, t_max), inc_post=min(inc, t_max), trace_mode=0)
    return regs, {"trace_increment": inc, "stdp_shift": shift, "parameters": entries}


_RULE = ("tau_plus", "tau_minus", "A_plus", "A_minus", "w_min", "w_max")


def _rule(state, syn):
    """The one pair rule of every plastic projection; refuses projections whose rules differ."""
    rule, owner = None, None
    for index in np.unique(syn.projection[syn.plastic]):
        prj = state.projections[index]
        _, _, attrs = prj._arrays()
        values = {}
        for name in _RULE:
            column = attrs[name]
            if column.size and not np.all(column == column[0]):
                raise UnsupportedError(f"projection {prj.label}: {name} differs between its connections; the core "
                                       "has one learning rule for all plastic synapses")
            values[name] = float(column[0])
        if prj.receptor_type in inhibitory_receptor_types:
            raise UnsupportedError(f"projection {prj.label}: STDP on inhibitory synapses is not supported; the "
                                   "core's rule moves weights between w_min and w_max, and inhibitory current-based "
                                   "weights are negative")
        if rule is None:
            rule, owner = values, prj
        elif values != rule:
            diff = ", ".join(f"{k} {rule[k]:g} vs {values[k]:g}" for k in _RULE if rule[k] != values[k])
            raise UnsupportedError(f"projections {owner.label} and {prj.label} learn with different rules ({diff}); "
                                   "the core has one global learning rule (spec section 3)")
    return rule


def compile_network(state, widths: Widths | None, tolerance: float) -> Compiled:
    """Compile the PyNN network of `state` for the core; `NetworkError`/`UnsupportedError` when it cannot run."""
    widths = widths or Widths()
    dt_ms = state.dt
    dt = dt_ms * _MS
    sources = [p for p in state.populations if is_source(p.celltype)]
    cells = [p for p in state.populations if not is_source(p.celltype)]
    for pop in cells:
        if not isinstance(pop.celltype, (IF_curr_exp, IF_curr_delta)):
            raise UnsupportedError(f"population {pop.label}: cell type {type(pop.celltype).__name__} is not "
                                   "supported")
        _check_initial(pop)
    m = sum(p.size for p in sources)
    n_cells = sum(p.size for p in cells)
    n = max(n_cells, 1)
    address = _address_map(state, sources, cells, m)
    syn = _collect(state, address, m, dt_ms)
    delay_steps, poisson = _delays(state, syn, sources, m, dt_ms)
    names_in, names_pop = _labels(sources), _labels(cells)

    if not cells:
        return _sources_only(state, widths, sources, names_in, address, delay_steps, poisson, tolerance, dt)

    values = _neuron_parameters(cells, n, dt_ms, _dc_current(state, address, m, n))
    tau_syn = _tau_syn(values, syn, n, dt, cells)
    _check_time_constants(cells, values, tau_syn, dt_ms, tolerance)
    refr_steps, refr_entry = _refractory(values, dt_ms, tolerance, cells)
    _check_overlaps(state, syn, m, n)
    units_per_weight = np.where(values["delta"], _MV, _NA)
    groups, blocks, totals = _blocks(syn, sources, cells, names_in, names_pop, m, n)
    rule = _rule(state, syn) if syn.plastic.any() else None

    def build(scales):
        net = PhysicalNetwork(dt)
        for pop, name in zip(sources, names_in):
            net.add_inputs(pop.size, name)
        _populations_for_units(net, cells, names_pop, values, tau_syn, refr_steps, dt)
        for name in names_pop:
            if name in scales:
                net.populations[name].scale = scales[name]
        for (gp, gq, plastic), block in sorted(blocks.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
            net.connect(groups[gp][0], groups[gq][0], block * units_per_weight[groups[gq][1] - m:
                                                                             groups[gq][1] - m + groups[gq][2]],
                        plastic=plastic)
        return net

    def compile_once(scales, learning=None):
        net = build(scales)
        if learning is not None:
            net.set_learning(**learning)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SparsePlasticityWarning)
            try:
                return net.compile(widths, tolerance)
            except SparsePlasticityWarning as warning:
                raise UnsupportedError(
                    f"a plastic projection is sparse ({warning}); the core's plasticity is a per-source mask "
                    "times a per-neuron mask, so the absent synapses would learn too: connect plastic "
                    "projections all-to-all between whole populations") from None

    network, report = compile_once({}, {"learn": 0} if rule is not None else None)
    scale_of = {entry["name"]: entry["scale"] for entry in report["populations"]}
    gain = _gain(network, values, dt, units_per_weight)
    learning = None
    if rule is not None:
        learning, learning_entry, scales = _plastic_scales(state, syn, cells, names_pop, scale_of, gain, rule,
                                                           widths, dt, tolerance, m)
        _check_sparse_plastic(state, syn, blocks, groups, learning, widths, m)
        network, report = compile_once(scales, learning)
        scale_of = {entry["name"]: entry["scale"] for entry in report["populations"]}
        report["learning"] = learning_entry
    pop_scale = np.concatenate([np.full(p.size, scale_of[name]) for p, name in zip(cells, names_pop)])
    w_per_unit = pop_scale * gain
    _verify_weights(network, totals, w_per_unit)
    for entry in report["populations"]:
        zeros = entry["weights"]["rounded_to_zero"]
        if zeros:
            logger.warning("population %s: %d of its %d incoming weights round to 0 on the core (below half an "
                           "integer step of the largest; see quantisation_report())", entry["name"], zeros,
                           entry["weights"]["count"])
    report["refractory"] = refr_entry
    report["delays"] = {"input_delay_steps": sorted(set(delay_steps.tolist())) or [1], "neuron_delay_steps": 1}
    compiled = Compiled(network=network, report=report, version=state.network_version, sources=sources,
                        cells=cells, address=address, v_per_mv=pop_scale * _MV,
                        v_rest=values["v_rest"], w_per_unit=w_per_unit, delay_steps=delay_steps, poisson=poisson,
                        learning=rule is not None, placeholder=False)
    compiled.shares = _shares(state, syn, totals)
    return compiled


def _plastic_scales(state, syn, cells, names_pop, scale_of, gain, rule, widths, dt, tolerance, m):
    """One integer weight per unit for every plastic target, within the weight bits; the rule's registers."""
    w_lim = (1 << (widths.weight_bits - 1)) - 1
    targets = np.unique(syn.j[syn.plastic])
    pops = {}
    for j in targets.tolist():
        pop, _ = _locate(cells, j)
        pops.setdefault(id(pop), pop)
    bound = max(abs(rule["w_max"]), abs(rule["w_min"]), float(np.max(np.abs(syn.weight[syn.plastic]))))
    start = {}
    offset = 0
    for pop in cells:
        start[id(pop)] = offset
        offset += pop.size
    # The largest integer weight per unit every plastic target can have: its population's scale
    # as chosen for its other parameters, or less to keep the bound within the weight bits.
    per_unit = []
    for pop in pops.values():
        sl = slice(start[id(pop)], start[id(pop)] + pop.size)
        name = names_pop[cells.index(pop)]
        per_unit.append(float(np.min(scale_of[name] * gain[sl])))
    common = min(min(per_unit), w_lim / bound if bound > 0 else math.inf)
    scales = {}
    for pop in pops.values():
        sl = slice(start[id(pop)], start[id(pop)] + pop.size)
        g = gain[sl]
        spread = float(g.max() / g.min() - 1)
        if spread > tolerance:
            raise UnsupportedError(
                f"population {pop.label}: its neurons' weight gains differ by {spread:.1%} (tau_m, cm), and "
                "the core's one learning rule changes every plastic weight by the same integers; give the "
                "targets of plastic projections the same tau_m and cm")
        scales[names_pop[cells.index(pop)]] = common / float(g.mean())
    learning, entry = learning_registers(rule, common, widths, dt, tolerance)
    entry["w_per_unit"] = common
    return {"learn": 1, **learning}, entry, scales


def _check_sparse_plastic(state, syn, blocks, groups, learning, widths, m):
    """Refuse plastic blocks with absent synapses when the rule can move a weight of 0 (it would learn)."""
    t_max = (1 << widths.trace_bits) - 1
    grows = learning["w_max"] > 0 and learning["inc_pre"] > 0 and (learning["a_plus"] * t_max) >> learning[
        "stdp_shift"] > 0
    sinks = learning["w_min"] < 0 and learning["inc_post"] > 0 and (learning["a_minus"] * t_max) >> learning[
        "stdp_shift"] > 0
    if not (grows or sinks or not learning["w_min"] <= 0 <= learning["w_max"]):
        return
    for gp, gq, plastic in blocks:
        if not plastic:
            continue
        _, fp, sp = groups[gp]
        _, fq, sq = groups[gq]
        mask = syn.plastic & (syn.k >= fp) & (syn.k < fp + sp) & (syn.j >= fq - m) & (syn.j < fq - m + sq)
        have = np.zeros((sp, sq), bool)
        have[syn.k[mask] - fp, syn.j[mask] - (fq - m)] = True
        if not have.all():
            prj = state.projections[int(syn.projection[mask][0])]
            raise UnsupportedError(
                f"projection {prj.label} is plastic but connects {int(have.sum())} of the {have.size} pairs from "
                f"{groups[gp][0]} to {groups[gq][0]}: the core's plasticity is a per-source mask times a "
                "per-neuron mask, so the absent synapses would learn too (from a weight of 0); connect plastic "
                "projections all-to-all between whole populations")


def _verify_weights(network, totals, w_per_unit):
    """The integer weights are the rounded products this module assumes (gains and scales agree)."""
    w = network.weights
    m = network.m
    exact = totals[: m + network.n] * w_per_unit[None, :]
    off = np.abs(w - exact) > 0.5 + 1e-6 * np.maximum(1, np.abs(exact))
    if off.any():
        k, j = np.argwhere(off)[0]
        raise RuntimeError(f"weight ({k}, {j}) is {w[k, j]} on the core, {exact[k, j]:.4f} expected: the units "
                           "layer's gain is not the one neurofabric.pynn computes")


def _shares(state, syn, totals):
    """For each projection: its connections' core synapses and each one's share of the synapse's weight."""
    out = {}
    count = np.zeros(totals.shape, np.int64)
    np.add.at(count, (syn.k, syn.j), 1)
    for index, prj in enumerate(state.projections):
        mask = syn.projection == index
        k, j, w = syn.k[mask], syn.j[mask], syn.weight[mask]
        total = totals[k, j]
        share = np.where(total != 0, w / np.where(total != 0, total, 1), 0.0)
        out[prj] = (k, j, np.where(count[k, j] == 1, 1.0, share))
    return out


def _sources_only(state, widths, sources, names_in, address, delay_steps, poisson, tolerance, dt):
    """A network of spike sources only: the inputs, and one neuron that never spikes (the core needs one)."""
    b = NetworkBuilder(widths)
    for pop, name in zip(sources, names_in):
        b.add_inputs(pop.size, name)
    b.add_neurons(1, "(no neurons)", threshold=(1 << (widths.state_bits - 1)) - 1)
    network = b.build()
    report = QuantisationReport(dt=dt, tolerance=tolerance, widths=vars(widths).copy(), populations=[],
                                notes=["the network has spike sources only; the core runs them with one neuron "
                                       "that has no synapses and never spikes"])
    return Compiled(network=network, report=report, version=state.network_version, sources=sources, cells=[],
                    address=address, v_per_mv=np.ones(1), v_rest=np.zeros(1), w_per_unit=np.ones(1),
                    delay_steps=delay_steps, poisson=poisson, learning=False, placeholder=True)
