"""Describe a network by groups and projections instead of index arithmetic.

    b = NetworkBuilder()
    retina = b.add_inputs(64, "retina")
    exc = b.add_neurons(10, "exc", threshold=300, tau_mem_steps=16, decay_syn=1024, refractory=3)
    b.connect(retina, exc, rule="random", p=0.2, weights=(10, 60), seed=1, plastic=True)
    b.connect(exc, exc, weights=-40, self_connections=False)     # lateral inhibition
    b.set_learning(a_plus=32, a_minus=24, stdp_shift=6, tau_pre_steps=8, tau_post_steps=8,
                   inc_pre=128, inc_post=128, w_min=0, w_max=127)
    network = b.build()          # a checked `Network`; network files via save_network

Decays (spec section 2) are given as factors, `decay_mem`, `decay_syn`,
`decay_pre`, `decay_post` in 0..4096 (the fraction `d / 4096` of a value lost
per step, 0 = no decay), or as time constants in steps, `tau_mem_steps`,
`tau_syn_steps`, `tau_pre_steps`, `tau_post_steps`, taken as
`d = round(4096 / tau)` (forward Euler; `decay_for_steps`; inf is no decay).
Core model 1's shifts `k_mem`, `k_syn`, `k_pre`, `k_post` have no exact
factor (`4096 >> k` is close, not equal) and are refused with a message
naming the argument that replaced them.

Sources are numbered as the spec says: all input groups first (in the order
they were added), then the neurons. Plasticity in the core is a product of a
per-source and a per-neuron mask (spec section 3), so a plastic projection
makes *every* synapse between its two groups plastic, zero weights included,
and the builder refuses layouts the masks cannot express.

Sparse plastic projections. The absent synapses of a plastic projection
built sparse (`rule="random"` with p < 1, "sparse", "one_to_one", or
`self_connections=False`) are plastic too, with weight 0. Under
potentiation an absent synapse `(k, j)` gains `(a_plus * x[k]) >> stdp_shift`
whenever neuron `j` spikes, exactly as the present synapses of source `k`
do, so it grows; `w_min=0` keeps it from going negative but not from
growing. (Under depression with `w_min < 0` it turns negative, and a weight
bound that excludes 0 moves it to the bound on its first update.) `build()`
then warns (`SparsePlasticityWarning`) with the count of absent synapses the
learning registers let change. What keeps them at exactly zero, within the
masks: an all-to-all plastic projection (`rule="all"`: no synapse is
absent), or learning that cannot raise a zero weight above 0 nor lower it
below: `w_min=0` with no potentiation (`a_plus=0`, depression only), or
`w_max=0` with no depression (inhibitory weights, potentiation only).
Anything else is a dense plastic block whose zeros learn.

Every value is checked when it is given, against its field's range (spec
section 3) under the builder's widths: a float is taken only when it is a
whole number (`threshold=300.0`; `300.7`, NaN and infinity are refused, never
truncated), and a width of 0 is an error, not the default.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from neurofabric.contract.model import (DECAY_ONE, GLOBAL_FIELDS, NEURON_FIELDS, WIDTH_FIELDS, WIDTH_LIMITS,
                                        Widths, field_range, range_text)

from .errors import NetworkError
from .network import Network, check_whole_numbers

__all__ = ["NetworkBuilder", "InputGroup", "NeuronGroup", "Projection", "SparsePlasticityWarning",
           "decay_for_steps"]


class SparsePlasticityWarning(UserWarning):
    """A sparse plastic projection: its absent synapses are plastic too and can learn (see the module's
    docstring for what keeps them at zero)."""

_NEURON_DEFAULTS = dict(v_reset=0, reset_mode=0, decay_mem=0, decay_syn=DECAY_ONE, refractory=0, bias=0)
#: Core model 1's decay shifts and the factors that replaced them.
_SHIFTS = {"k_mem": "decay_mem", "k_syn": "decay_syn", "k_pre": "decay_pre", "k_post": "decay_post"}
#: Time constants in steps and the factors they set.
_TAUS = {f"tau_{factor[6:]}_steps": factor for factor in _SHIFTS.values()}


def decay_for_steps(tau_steps: ArrayLike) -> np.ndarray:
    """The decay factors of time constants in steps: `round(4096 / tau)`, clamped to 0..4096.

    Forward Euler (spec section 2: `d = round(4096 * dt / tau)` with `tau` in
    steps of `dt`), rounded to nearest, halves up: one step or less is 4096
    (the value lasts one step), inf is 0 (no decay), as is anything over 8192
    steps. `NetworkError` for NaN and for values that are not positive.
    """
    tau = np.asarray(tau_steps, dtype=float)
    bad = np.isnan(tau) | ~(tau > 0)
    if bad.any():
        value = tau.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])]
        raise NetworkError(f"time constant {value:g} steps is not positive: allowed a positive number of "
                           "steps, or inf for no decay")
    return np.minimum(np.floor(DECAY_ONE / tau + 0.5), DECAY_ONE).astype(np.int64)


def _decays(params, what):
    """`params` with time constants in steps turned into decay factors; core model 1's shifts refused."""
    for shift, factor in _SHIFTS.items():
        if shift in params:
            tau = f"tau_{factor[6:]}_steps"
            raise NetworkError(
                f"{what}: {shift} is a decay shift of core model 1, which core model 2 replaced with decay "
                f"factors: give {factor} (0..{DECAY_ONE}, the fraction {factor} / {DECAY_ONE} of the value lost "
                f"per step, 0 = no decay; {DECAY_ONE} >> {shift} is close to the shift, not equal) or {tau} "
                f"(a time constant in steps: {factor} = round({DECAY_ONE} / {tau}))")
    out = dict(params)
    for tau, factor in _TAUS.items():
        if tau in out:
            if factor in out:
                raise NetworkError(f"{what}: both {tau} and {factor} given; give one of them")
            try:
                out[factor] = decay_for_steps(out.pop(tau))
            except NetworkError as exc:
                raise NetworkError(f"{what}: {tau}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise NetworkError(f"{what}: {tau} is not a number or an array of numbers ({exc})") from None
    return out


@dataclass(eq=False)
class InputGroup:
    """A group of external input channels."""

    name: str
    size: int
    index: int  # order among input groups
    start: int | None = None  # first source number, set by build()

    def __len__(self) -> int:
        return self.size


@dataclass(eq=False)
class NeuronGroup:
    """A population of neurons sharing (or individually setting) parameters."""

    name: str
    size: int
    params: dict[str, np.ndarray]  # parameter name -> int64 array of length size
    index: int
    start: int | None = None  # first neuron number, set by build()

    def __len__(self) -> int:
        return self.size


@dataclass(eq=False)
class Projection:
    """The synapses from one group to a neuron group, as a dense block."""

    pre: InputGroup | NeuronGroup
    post: NeuronGroup
    weights: np.ndarray  # (len(pre), len(post)); 0 = no synapse
    present: np.ndarray  # bool, which entries this projection sets
    plastic: bool = False
    name: str = field(default="")


class NetworkBuilder:
    """Build a `Network` from input groups, neuron groups and projections."""

    def __init__(self, widths: Widths | None = None, *, state_bits: int | None = None,
                 weight_bits: int | None = None, trace_bits: int | None = None) -> None:
        base = widths if widths is not None else Widths()
        given = dict(state_bits=state_bits, weight_bits=weight_bits, trace_bits=trace_bits)
        values = {}
        for name in WIDTH_FIELDS:
            value = getattr(base, name) if given[name] is None else given[name]
            lo, hi = WIDTH_LIMITS[name]
            values[name] = int(check_whole_numbers(name, value, (), lo, hi))
        self.widths = Widths(**values)
        self.input_groups: list[InputGroup] = []
        self.neuron_groups: list[NeuronGroup] = []
        self.projections: list[Projection] = []
        self.learning = dict(learn=0, a_plus=0, a_minus=0, stdp_shift=0, decay_pre=0, decay_post=0,
                             inc_pre=0, inc_post=0, trace_mode=0,
                             w_min=-(1 << (self.widths.weight_bits - 1)),
                             w_max=(1 << (self.widths.weight_bits - 1)) - 1)

    # -- groups ----------------------------------------------------------------
    def _check_name(self, name):
        if any(g.name == name for g in (*self.input_groups, *self.neuron_groups)):
            raise NetworkError(f"group name {name!r} is already used")

    def add_inputs(self, size: int, name: str | None = None) -> InputGroup:
        """Add `size` external input channels."""
        size = self._size(size, "inputs")
        name = name or f"inputs{len(self.input_groups)}"
        self._check_name(name)
        group = InputGroup(name, size, len(self.input_groups))
        self.input_groups.append(group)
        return group

    def add_neurons(self, size: int, name: str | None = None, *, threshold: ArrayLike,
                    **params: ArrayLike) -> NeuronGroup:
        """Add a population of `size` neurons.

        Parameters (spec section 3) are scalars or arrays of length `size`:
        `threshold` (required), `v_reset`, `reset_mode`, `decay_mem`,
        `decay_syn`, `refractory`, `bias`; `tau_mem_steps` and `tau_syn_steps`
        set the decays from time constants in steps instead (see the module's
        docstring). Defaults: no leak (`decay_mem=0`), delta synapses
        (`decay_syn=4096`), reset to 0, no refractory period, no bias. Each
        value must be a whole number within its field's range (`NetworkError`).
        """
        size = self._size(size, "neurons")
        params = _decays(params, f"group {name!r}" if name else "add_neurons")
        unknown = set(params) - set(_NEURON_DEFAULTS)
        if unknown:
            allowed = ", ".join(["threshold", *_NEURON_DEFAULTS, "tau_mem_steps", "tau_syn_steps"])
            raise NetworkError(f"unknown neuron parameter{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(sorted(unknown))}; allowed: {allowed}")
        name = name or f"neurons{len(self.neuron_groups)}"
        self._check_name(name)
        values = {**_NEURON_DEFAULTS, **params, "threshold": threshold}
        arrays = {}
        for key, value in values.items():
            try:
                arr = np.asarray(value)
            except ValueError as exc:  # ragged lists
                raise NetworkError(f"{name}.{key}: not a scalar or a list of {size} numbers ({exc})") from None
            if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (size,)):
                raise NetworkError(f"{name}.{key}: shape {arr.shape} is neither a scalar nor ({size},)")
            spec = NEURON_FIELDS[key]
            lo, hi = field_range(spec, self.widths)
            label = f"{key} (group {name!r})" if arr.ndim == 0 else key
            try:
                arr = check_whole_numbers(label, arr, None, lo, hi, range_text(spec, self.widths))
            except NetworkError as exc:
                # 'threshold[2] = ...' -> 'threshold[2] (group 'exc', neuron 2) = ...'
                raise NetworkError(re.sub(rf"^{key}\[(\d+)\]", lambda g: f"{g.group(0)} (group {name!r}, "
                                          f"neuron {g.group(1)})", str(exc))) from None
            arrays[key] = np.full(size, arr) if arr.ndim == 0 else arr
        group = NeuronGroup(name, size, arrays, len(self.neuron_groups))
        self.neuron_groups.append(group)
        return group

    @staticmethod
    def _size(size, what):
        try:
            whole = isinstance(size, (int, np.integer)) or (isinstance(size, (float, np.floating))
                                                             and float(size).is_integer())
        except (OverflowError, ValueError):
            whole = False
        if isinstance(size, (bool, np.bool_)) or not whole or size < 1:
            raise NetworkError(f"number of {what} = {size!r} is out of range: allowed a whole number, 1 or more")
        return int(size)

    # -- projections -------------------------------------------------------------
    def connect(self, pre: InputGroup | NeuronGroup, post: NeuronGroup,
                weights: ArrayLike | tuple[int, int] | None = None, *,
                rule: Literal["all", "one_to_one", "random", "sparse"] = "all", p: float | None = None,
                pairs: Iterable[tuple[int, int, int]] | None = None, seed: int | None = None,
                plastic: bool = False, self_connections: bool = True, name: str | None = None) -> Projection:
        """Connect group `pre` (inputs or neurons) to neuron group `post`.

        Rules:
          - "all": every pair; `weights` a scalar or a `(len(pre), len(post))` matrix.
          - "one_to_one": pre[i] -> post[i]; `weights` a scalar or a vector.
          - "random": each pair with probability `p`; `weights` a scalar or an
            integer range `(low, high)` drawn uniformly (both ends included).
          - "sparse": `pairs` is a list of `(i, j, weight)`.
        `self_connections=False` drops `i -> i` when `pre is post`.
        `plastic=True` lets every synapse from `pre` to `post` learn.
        """
        if not isinstance(post, NeuronGroup) or post not in self.neuron_groups:
            raise NetworkError("connect: post must be a neuron group of this builder")
        if pre not in self.input_groups and pre not in self.neuron_groups:
            raise NetworkError("connect: pre must be an input or neuron group of this builder")
        shape = (pre.size, post.size)
        label = name or f"{pre.name}->{post.name}"
        present = np.zeros(shape, bool)
        w = np.zeros(shape, np.int64)
        if rule == "all":
            if weights is None:
                raise NetworkError(f"{label}: rule 'all' needs weights (a scalar or a {shape} matrix)")
            present[:] = True
            w[:] = self._int_array(label, weights, shape, allow_scalar=True)
        elif rule == "one_to_one":
            if pre.size != post.size:
                raise NetworkError(f"{label}: one_to_one needs groups of equal size, got {pre.size} and {post.size}")
            if weights is None:
                raise NetworkError(f"{label}: rule 'one_to_one' needs weights (a scalar or a vector)")
            diag = np.arange(pre.size)
            present[diag, diag] = True
            w[diag, diag] = self._int_array(label, weights, (pre.size,), allow_scalar=True)
        elif rule == "random":
            if p is None or not 0 <= p <= 1:
                raise NetworkError(f"{label}: rule 'random' needs a probability p in 0..1, got {p!r}")
            rng = np.random.default_rng(seed)
            present = rng.random(shape) < p
            if isinstance(weights, tuple) and len(weights) == 2:
                low, high = (int(self._int_array(f"{label}: weight range", v, (), allow_scalar=False))
                             for v in weights)
                if low > high:
                    raise NetworkError(f"{label}: weight range ({low}, {high}) has low > high")
                drawn = rng.integers(low, high + 1, size=shape)
            elif weights is not None:
                drawn = self._int_array(label, weights, shape, allow_scalar=True)
            else:
                raise NetworkError(f"{label}: rule 'random' needs weights (a scalar or a (low, high) range)")
            w = np.where(present, drawn, 0)
        elif rule == "sparse":
            if pairs is None:
                raise NetworkError(f"{label}: rule 'sparse' needs pairs=[(i, j, weight), ...]")
            for idx, item in enumerate(pairs):
                try:
                    i, j, value = item
                except (TypeError, ValueError):
                    raise NetworkError(f"{label}: pairs[{idx}] = {item!r} is not (i, j, weight)") from None
                i = int(check_whole_numbers(f"{label}: pairs[{idx}] i", i, ()))
                j = int(check_whole_numbers(f"{label}: pairs[{idx}] j", j, ()))
                value = int(self._int_array(f"{label}: pairs[{idx}]", value, (), allow_scalar=False))
                if not (0 <= i < pre.size and 0 <= j < post.size):
                    raise NetworkError(f"{label}: pairs[{idx}] = ({i}, {j}, ...) is outside the "
                                       f"groups: i in 0..{pre.size - 1}, j in 0..{post.size - 1}")
                if present[i, j]:
                    raise NetworkError(f"{label}: pairs[{idx}] repeats the synapse ({i}, {j})")
                present[i, j] = True
                w[i, j] = value
        else:
            raise NetworkError(f"connect: unknown rule {rule!r}; allowed: all, one_to_one, random, sparse")
        if pre is post and not self_connections:
            diag = np.arange(pre.size)
            present[diag, diag] = False
            w[diag, diag] = 0
        proj = Projection(pre, post, w, present, bool(plastic), label)
        self.projections.append(proj)
        return proj

    def _int_array(self, label, value, shape, allow_scalar):
        """Weights as int64, each a whole number within the weight range."""
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged lists
            raise NetworkError(f"{label}: weights are not a {shape} matrix ({exc})") from None
        numeric = arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
        if not numeric or np.issubdtype(arr.dtype, np.complexfloating):
            raise NetworkError(f"{label}: weights must be integers (dtype {arr.dtype}); "
                               "quantise floats explicitly first")
        if np.issubdtype(arr.dtype, np.floating) and not (np.isfinite(arr) & (arr == np.round(arr))).all():
            bad = np.flatnonzero(~(np.isfinite(arr) & (arr == np.round(arr))).reshape(-1))[0]
            raise NetworkError(f"{label}: weights must be integers: {float(arr.reshape(-1)[bad])!r} is not "
                               "a whole number; quantise floats explicitly first")
        if not (arr.ndim == 0 and allow_scalar) and arr.shape != shape:
            raise NetworkError(f"{label}: weights shape {arr.shape} does not match {shape}")
        spec = ("s", "weight_bits")
        lo, hi = field_range(spec, self.widths)
        arr = check_whole_numbers(f"{label}: weight" if arr.ndim == 0 else f"{label}: weights", arr, None,
                                  lo, hi, range_text(spec, self.widths))
        return np.full(shape, int(arr), np.int64) if arr.ndim == 0 else arr

    # -- learning ------------------------------------------------------------------
    def set_learning(self, *, learn: int = 1, **params: int | float) -> None:
        """Set the global learning registers (spec section 3) and turn learning on.

        Keys: a_plus, a_minus, stdp_shift, decay_pre, decay_post (or
        tau_pre_steps, tau_post_steps: time constants in steps), inc_pre,
        inc_post, trace_mode, w_min, w_max; `learn=0` keeps plasticity off.
        """
        params = _decays(params, "set_learning")
        unknown = set(params) - set(self.learning)
        if unknown:
            allowed = ", ".join([*(k for k in self.learning if k != "learn"), "tau_pre_steps", "tau_post_steps"])
            raise NetworkError(f"unknown learning parameter{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(sorted(unknown))}; allowed: {allowed}")
        checked = {}
        for key, value in {**params, "learn": learn}.items():
            spec = GLOBAL_FIELDS[key]
            lo, hi = field_range(spec, self.widths)
            checked[key] = int(check_whole_numbers(key, value, (), lo, hi, range_text(spec, self.widths)))
        self.learning.update(checked)

    # -- build -----------------------------------------------------------------------
    def build(self) -> Network:
        """Lay out the sources and neurons and return a checked `Network`."""
        if not self.neuron_groups:
            raise NetworkError("the network has no neurons: add_neurons() first")
        m = sum(g.size for g in self.input_groups)
        n = sum(g.size for g in self.neuron_groups)
        start = 0
        for g in self.input_groups:
            g.start, start = start, start + g.size
        start = 0
        for g in self.neuron_groups:
            g.start, start = start, start + g.size

        def rows(group):
            base = group.start if isinstance(group, InputGroup) else m + group.start
            return slice(base, base + group.size)

        weights = np.zeros((m + n, n), np.int64)
        owner = np.full((m + n, n), -1, np.int64)
        plastic_pre = np.zeros(m + n, np.int64)
        plastic_post = np.zeros(n, np.int64)
        for idx, proj in enumerate(self.projections):
            r, c = rows(proj.pre), slice(proj.post.start, proj.post.start + proj.post.size)
            clash = proj.present & (owner[r, c] >= 0)
            if clash.any():
                i, j = np.argwhere(clash)[0]
                other = self.projections[owner[r, c][i, j]].name
                raise NetworkError(f"{proj.name}: synapse {proj.pre.name}[{i}] -> {proj.post.name}[{j}] "
                                   f"is also set by {other}")
            weights[r, c] = np.where(proj.present, proj.weights, weights[r, c])
            owner[r, c] = np.where(proj.present, idx, owner[r, c])
            if proj.plastic:
                plastic_pre[r] = 1
                plastic_post[c] = 1
        self._check_plastic_layout()
        self._warn_absent_plastic(owner, rows)

        params = {key: np.zeros(n, np.int64) for key in NEURON_FIELDS if key != "plastic_post"}
        for g in self.neuron_groups:
            for key, arr in g.params.items():
                params[key][g.start:g.start + g.size] = arr
        groups = [*self.input_groups, *self.neuron_groups]
        extras = {
            "group_names": np.array([g.name for g in groups]),
            "group_kinds": np.array(["inputs" if isinstance(g, InputGroup) else "neurons" for g in groups]),
            "group_starts": np.array([g.start for g in groups], np.int64),
            "group_sizes": np.array([g.size for g in groups], np.int64),
        }
        try:
            return Network(weights=weights, plastic_pre=plastic_pre, plastic_post=plastic_post,
                           widths=self.widths, extras=extras, **params, **self.learning)
        except NetworkError as exc:
            raise NetworkError(self._name_the_group(str(exc), m)) from None

    def _check_plastic_layout(self):
        """Refuse group pairs that the pre x post masks would make plastic unasked."""
        plastic_pairs = {(id(p.pre), id(p.post)) for p in self.projections if p.plastic}
        pres = {id(p.pre): p.pre for p in self.projections if p.plastic}
        posts = {id(p.post): p.post for p in self.projections if p.plastic}
        for pre in pres.values():
            for post in posts.values():
                if (id(pre), id(post)) not in plastic_pairs:
                    raise NetworkError(
                        f"synapses {pre.name} -> {post.name} would be plastic without being asked: "
                        f"{pre.name} is the source of a plastic projection and {post.name} the target "
                        "of one, and the core's plasticity is a per-source mask times a per-neuron "
                        "mask (spec section 3). Mark the projection plastic=True (connect with "
                        "weights=0 if there are no synapses), or split the groups.")

    def _zero_weight_can_change(self):
        """Whether the learning registers can move a plastic synapse of weight 0 away from 0 (spec 5.5)."""
        lr, t_max = self.learning, (1 << self.widths.trace_bits) - 1
        if not lr["learn"]:
            return False
        if not lr["w_min"] <= 0 <= lr["w_max"]:
            return True   # every visit writes the weight back clamped into [w_min, w_max]
        # The largest trace: saturating sums (mode 0) reach 2**T - 1, a set (mode 1) only inc.
        x_max = t_max if lr["trace_mode"] == 0 else lr["inc_pre"]
        y_max = t_max if lr["trace_mode"] == 0 else lr["inc_post"]
        grows = lr["w_max"] > 0 and lr["inc_pre"] > 0 and (lr["a_plus"] * x_max) >> lr["stdp_shift"] > 0
        sinks = lr["w_min"] < 0 and lr["inc_post"] > 0 and (lr["a_minus"] * y_max) >> lr["stdp_shift"] > 0
        return grows or sinks

    def _warn_absent_plastic(self, owner, rows):
        """Warn, with their count, when absent synapses of plastic projections can learn."""
        if not self._zero_weight_can_change():
            return
        counts = []
        for proj in self.projections:
            if not proj.plastic:
                continue
            block = owner[rows(proj.pre), proj.post.start:proj.post.start + proj.post.size]
            absent = int((block < 0).sum())
            if absent:
                counts.append((proj.name, absent, block.size))
        if counts:
            total = sum(c for _, c, _ in counts)
            detail = ", ".join(f"{name}: {absent} of {size}" for name, absent, size in counts)
            warnings.warn(
                f"{total} absent synapses of plastic projections can learn ({detail}): the core's plasticity "
                "is a per-source mask times a per-neuron mask, so they are plastic with weight 0 and learn as "
                "the present ones do (they grow under potentiation); connect all-to-all (rule='all'), or "
                "learn with w_min=0 and a_plus=0, to keep them at 0 (see neurofabric.host.builder)",
                SparsePlasticityWarning, stacklevel=3)

    def _name_the_group(self, message, m):
        """Rewrite 'threshold[12]' as 'threshold[12] (group exc, neuron 2)'."""
        match = re.match(r"(\w+)\[(\d+)\]", message)
        if not match or match.group(1) not in NEURON_FIELDS:
            return message
        j = int(match.group(2))
        for g in self.neuron_groups:
            if g.start <= j < g.start + g.size:
                return message.replace(match.group(0), f"{match.group(0)} (group {g.name!r}, "
                                       f"neuron {j - g.start})", 1)
        return message
