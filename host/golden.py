"""The golden model: spec section 5, vectorised with numpy within a step.

This is the reference every other backend is checked against. Arrays are
int64, which holds every exact intermediate for the widths `spec.WIDTH_LIMITS`
allows, so nothing here wraps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .arith import DECAY_ONE, sat, trace_update, trunc
from .errors import DeviceError, NetworkError
from .generator import advance, check_rates, check_seed, generate_inputs
from .network import Network, check_whole_numbers

__all__ = ["GoldenModel", "Recording", "check_stimulus", "check_snapshot_budget",
           "SNAPSHOT_BUDGET_BYTES", "SNAPSHOT_WARN_BYTES"]

logger = logging.getLogger(__name__)

#: Weight snapshots are held in memory as int64 until the run ends: a run that
#: would need more than this is refused (2 GiB, what a recording file may hold,
#: `files.MAX_FILE_VALUES`), more than `SNAPSHOT_WARN_BYTES` warns.
SNAPSHOT_BUDGET_BYTES = 2 << 30
SNAPSHOT_WARN_BYTES = 512 << 20


@dataclass(eq=False)
class Recording:
    """What a run returns (spec section 6, Recording).

    `spikes` is `(steps, n)` 0/1; `weights` the weights after the run; `v` and
    `i` `(steps, n)` when probed; `inputs` `(steps, m)` 0/1, the set U of each
    step (the host's inputs and the generator's), when probed;
    `weight_snapshots` `(count, m+n, n)` with the step after which each was
    taken in `snapshot_steps`; `input_spikes` the host's stimulus that was
    applied, `(steps, m)`.

    A run of trials (`Device.run_trials`) has `trials` set to their number and
    a leading trials axis on `spikes`, `v`, `i`, `inputs`, `input_spikes` and
    `counts`; `weights` are those after the last trial.

    When only some neurons were recorded (`record_neurons`), `neurons` lists
    them, ascending, and `spikes`, `v` and `i` have one column per listed
    neuron. When only spike counts were asked for (`counts=True`), `counts`
    (one per recorded neuron: the spikes of the run, or of each trial)
    replaces `spikes`, which is None; `step_count` then says how many steps ran.
    """

    spikes: np.ndarray | None
    weights: np.ndarray
    v: np.ndarray | None = None
    i: np.ndarray | None = None
    input_spikes: np.ndarray | None = None
    weight_snapshots: np.ndarray | None = None
    snapshot_steps: np.ndarray | None = None
    inputs: np.ndarray | None = None
    trials: int | None = None
    neurons: np.ndarray | None = None
    counts: np.ndarray | None = None
    step_count: int | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of time steps recorded (per trial, for a run of trials)."""
        if self.spikes is None:
            return int(self.step_count or 0)
        return self.spikes.shape[0 if self.trials is None else 1]

    @property
    def recorded_neurons(self) -> np.ndarray:
        """The neuron of each column of `spikes`, `v`, `i` and `counts`."""
        if self.neurons is not None:
            return self.neurons
        return np.arange(self.weights.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field that is set, as the arrays of a recording file (spec section 6), plus the extras."""
        out = {"weights": self.weights}
        if self.spikes is not None:
            out["spikes"] = self.spikes.astype(np.uint8)
        else:
            out["steps"] = np.array(self.steps, np.int64)
        for key in ("neurons", "counts", "v", "i", "inputs", "input_spikes", "weight_snapshots", "snapshot_steps"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.astype(np.uint8) if key in ("inputs", "input_spikes") else value
        out.update(self.extras)
        return out


def check_stimulus(stimulus, m, steps=None):
    """Return the stimulus as a bool `(steps, m)` array, padded with silence to `steps`."""
    stim = np.asarray(stimulus)
    if stim.ndim != 2 or stim.shape[1] != m:
        raise NetworkError(f"stimulus spikes: shape {stim.shape} does not match (steps, m={m})")
    if not (np.issubdtype(stim.dtype, np.integer) or stim.dtype == np.bool_):
        raise NetworkError(f"stimulus spikes: dtype {stim.dtype} is not an integer type (use 0/1)")
    bad = (stim != 0) & (stim != 1)
    if bad.any():
        t, k = np.argwhere(bad)[0]
        raise NetworkError(f"stimulus spikes[{t}, {k}] = {int(stim[t, k])} is out of range: allowed 0..1")
    stim = stim.astype(bool)
    if steps is not None:
        steps = int(check_whole_numbers("steps", steps, (), 0, np.iinfo(np.int64).max, "0 or more"))
        if steps > stim.shape[0]:
            stim = np.concatenate([stim, np.zeros((steps - stim.shape[0], m), bool)])
        else:
            stim = stim[:steps]
    return stim


def _bytes_text(count):
    return f"{count / (1 << 30):,.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):,.1f} MiB"


def check_snapshot_budget(steps, snapshot_every, weights_shape):
    """Refuse (`DeviceError`) weight snapshots beyond `SNAPSHOT_BUDGET_BYTES`; warn beyond `SNAPSHOT_WARN_BYTES`.

    Returns `snapshot_every` as an int (a whole number, 0 or more).
    """
    every = int(check_whole_numbers("snapshot_every", snapshot_every, (), 0, np.iinfo(np.int64).max,
                                    "0 (none) or more"))
    if not every:
        return every
    count = steps // every
    need = count * int(np.prod(weights_shape)) * 8
    what = (f"snapshot_every = {every} over {steps:,} steps keeps {count:,} weight snapshots of "
            f"{weights_shape[0]} x {weights_shape[1]}: {_bytes_text(need)} of memory")
    if need > SNAPSHOT_BUDGET_BYTES:
        raise DeviceError(f"{what}, beyond the budget of {_bytes_text(SNAPSHOT_BUDGET_BYTES)}; "
                          "take fewer snapshots (a larger snapshot_every) or a shorter run")
    if need > SNAPSHOT_WARN_BYTES:
        logger.warning("%s", what)
    return every


class GoldenModel:
    """The core model of spec section 5 for one network, with its state.

    `step(inputs, rates)` advances one time step and returns the spike bits;
    the state (`v`, `i`, `r`, `s`, `x`, `y`), `weights`, the generator state
    `g` (an int) and its `seed` are public. `u` is the last step's input set U.
    """

    def __init__(self, network: Network) -> None:
        # The network is checked again here: its fields may have been edited
        # since it was built, and out-of-range values would run silently.
        network.validate()
        self.network = network
        net = network
        self.n, self.m = net.n, net.m
        self.S, self.W, self.T = net.state_bits, net.weight_bits, net.trace_bits
        # int16 holds every allowed weight width (W <= 16) and halves the memory
        # traffic of the column accesses of potentiation; sums are taken in int64.
        self.weights = net.weights.astype(np.int16)
        self._plastic_pre_idx = np.flatnonzero(net.plastic_pre)
        self._plastic_pre = net.plastic_pre.astype(bool)
        self._plastic_post = net.plastic_post.astype(bool)
        self._plastic_post_idx = np.flatnonzero(net.plastic_post)
        self._all_post_plastic = bool(self._plastic_post.all())
        self._mode0 = net.reset_mode == 0
        # decay(x, d) = trunc(x * (4096 - d), 12), with 4096 - d taken once.
        self._keep_syn = DECAY_ONE - net.decay_syn
        self._keep_mem = DECAY_ONE - net.decay_mem
        # When every plastic weight lies in [w_min, w_max], clamping a synapse
        # whose change is 0 leaves it as it is, so learning may skip those
        # synapses; learning only writes clamped values, so this stays true.
        plastic_w = net.weights[np.ix_(self._plastic_pre_idx, self._plastic_post_idx)]
        self._plastic_in_bounds = bool(((plastic_w >= net.w_min) & (plastic_w <= net.w_max)).all())
        self.seed = 1
        self.reset()

    def set_seed(self, seed: int) -> None:
        """Load a generator seed (1 .. 2**32 - 1): it also sets the state `g` (spec section 4)."""
        self.seed = self.g = check_seed(seed)

    def reset(self) -> None:
        """Set all state to 0 and `g` to the seed (spec section 4); weights and parameters stay."""
        n, m = self.n, self.m
        self.g = self.seed
        self.u = np.zeros(m, bool)
        self.v = np.zeros(n, np.int64)
        self.i = np.zeros(n, np.int64)
        self.r = np.zeros(n, np.int64)
        self.s = np.zeros(n, bool)
        self.y = np.zeros(n, np.int64)
        self.x = np.zeros(m + n, np.int64)

    def step(self, inputs: ArrayLike, rates: ArrayLike | None = None) -> np.ndarray:
        """Advance one step with the host's input spikes `inputs` (bool, shape (m,))
        and the generator's `rates` (shape (m,), 0 .. 65535; None: all 0).

        Returns this step's spike bits (bool, shape (n,)).
        """
        rates = check_rates(rates, self.m)
        generated, self.g = generate_inputs(self.g, rates, 1)
        return self._step(np.asarray(inputs, bool) | generated[0])

    def _step(self, inputs):
        """One step with the input set U (bool (m,)): spec steps 1 to 5."""
        net, S = self.network, self.S
        self.u = inputs
        # 1. delivered sources: this step's inputs and last step's spikes.
        delivered = np.concatenate([inputs, self.s])
        d_idx = np.flatnonzero(delivered)
        # 2. exact synaptic input with the weights of the end of last step.
        a = self.weights[d_idx].sum(axis=0, dtype=np.int64) if d_idx.size else 0
        # 3. current.
        self.i = sat(trunc(self.i * self._keep_syn, 12) + a, S)
        # 4. membrane and spike.
        refractory = self.r > 0
        u = sat(trunc(self.v * self._keep_mem, 12) + self.i + net.bias, S)
        spiked = ~refractory & (u >= net.threshold)
        after_spike = np.where(self._mode0, net.v_reset, sat(u - net.threshold, S))
        self.v = np.where(refractory, self.v, np.where(spiked, after_spike, u))
        self.r = np.where(refractory, self.r - 1, np.where(spiked, net.refractory, 0))
        self.s = spiked
        # 5. learning.
        if net.learn:
            self._learn(delivered, d_idx, spiked)
        return spiked

    def _learn(self, delivered, d_idx, spiked):
        net, w = self.network, self.weights
        # 5.1 pre traces.
        self.x = trace_update(self.x, net.decay_pre, delivered, net.inc_pre, self.T, net.trace_mode)
        # 5.2 depression: rows of plastic delivered sources, plastic columns,
        # with y as it was at the end of the previous step.
        rows = d_idx[self._plastic_pre[d_idx]]
        if rows.size and self._plastic_post_idx.size:
            dep = (net.a_minus * self.y) >> net.stdp_shift
            cols = self._plastic_post_idx
            if self._plastic_in_bounds:
                cols = cols[dep[cols] != 0]
            if self._all_post_plastic and cols.size == self.n:
                w[rows] = np.clip(w[rows] - dep, net.w_min, net.w_max)
            elif cols.size:
                block = np.ix_(rows, cols)
                w[block] = np.clip(w[block] - dep[cols], net.w_min, net.w_max)
        # 5.3 potentiation: plastic columns that spiked, plastic rows, new x.
        cols = np.flatnonzero(spiked & self._plastic_post)
        if cols.size and self._plastic_pre_idx.size:
            rows = self._plastic_pre_idx
            pot = (net.a_plus * self.x[rows]) >> net.stdp_shift
            if self._plastic_in_bounds:
                keep = pot != 0
                rows, pot = rows[keep], pot[keep]
            if rows.size:
                block = np.ix_(rows, cols)
                w[block] = np.clip(w[block] + pot[:, None], net.w_min, net.w_max)
        # 5.4 post traces.
        self.y = trace_update(self.y, net.decay_post, spiked, net.inc_post, self.T, net.trace_mode)

    def run(self, stimulus: ArrayLike | None, steps: int | None = None,
            record: Iterable[Literal["v", "i", "inputs"]] = (), snapshot_every: int = 0,
            progress: Callable[[int, int], object] | None = None, rates: ArrayLike | None = None,
            seed: int | None = None) -> Recording:
        """Run the stimulus from the current state and return a `Recording`.

        `stimulus` is the host's `(steps, m)` 0/1 input (None: silence for
        `steps` steps); `rates` the generator's rate per input (None: all 0);
        `seed` loads a new seed and sets `g` to it (None: `g` goes on from its
        state). `record` may hold "v", "i" and "inputs"; `snapshot_every=K`
        keeps the weights after every K-th step; `progress(done, total)` is
        called now and then.
        """
        if stimulus is None:
            if steps is None:
                raise NetworkError("stimulus: give a stimulus, or steps for a run without host inputs")
            stimulus = np.zeros((0, self.m), bool)
        stim = check_stimulus(stimulus, self.m, steps)
        rates = check_rates(rates, self.m)
        if seed is not None:
            self.set_seed(seed)
        total = stim.shape[0]
        snapshot_every = check_snapshot_budget(total, snapshot_every, self.weights.shape)
        spikes = np.zeros((total, self.n), np.uint8)
        probes = {key: np.zeros((total, self.n), np.int64) for key in record if key != "inputs"}
        inputs = np.zeros((total, self.m), np.uint8) if "inputs" in record else None
        snaps, snap_steps = [], []
        chunk = max(1, (1 << 20) // max(self.m, 1))   # steps of generated inputs computed at once
        generated = None
        for t in range(total):
            if t % chunk == 0:
                if rates.any():
                    generated, self.g = generate_inputs(self.g, rates, min(chunk, total - t))
                else:
                    self.g = advance(self.g, min(chunk, total - t) * self.m)
            u = stim[t] | generated[t % chunk] if generated is not None else stim[t]
            spikes[t] = self._step(u)
            if inputs is not None:
                inputs[t] = u
            for key, arr in probes.items():
                arr[t] = getattr(self, key)
            if snapshot_every and (t + 1) % snapshot_every == 0:
                snaps.append(self.weights.astype(np.int64))
                snap_steps.append(t + 1)
            if progress is not None and (t + 1) % 1000 == 0:
                progress(t + 1, total)
        rec = Recording(spikes=spikes, weights=self.weights.astype(np.int64), input_spikes=stim.astype(np.uint8),
                        v=probes.get("v"), i=probes.get("i"), inputs=inputs)
        if snapshot_every:
            rec.weight_snapshots = (np.stack(snaps) if snaps
                                    else np.zeros((0, *self.weights.shape), np.int64))
            rec.snapshot_steps = np.array(snap_steps, np.int64)
        return rec
