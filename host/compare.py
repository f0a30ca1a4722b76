"""Find where two recordings of the same run first differ."""

from dataclasses import dataclass

import numpy as np

__all__ = ["Divergence", "first_divergence"]


@dataclass
class Divergence:
    """The first difference: at `step` (after that step; None for the final weights)."""

    step: object
    variable: str
    index: tuple
    a: int
    b: int

    def describe(self, name_a="A", name_b="B"):
        where = "after the run" if self.step is None else f"at step {self.step}"
        if self.variable == "weights":
            what = f"synapse w[{self.index[0]}][{self.index[1]}]"
        else:
            what = f"neuron {self.index[0]} {self.variable}"
        return f"first divergence {where}: {what}: {name_a} {self.a}, {name_b} {self.b}"


def first_divergence(rec_a, rec_b):
    """The earliest `Divergence` between two recordings, or None when they agree.

    Per step, spikes are compared first, then v, then i (when both have them);
    weight snapshots count at the step they were taken; the final weights last.
    """
    if rec_a.spikes.shape != rec_b.spikes.shape:
        raise ValueError(f"recordings of different shapes: {rec_a.spikes.shape} and {rec_b.spikes.shape}")
    per_step = [("spikes", rec_a.spikes, rec_b.spikes)]
    for key in ("v", "i"):
        va, vb = getattr(rec_a, key), getattr(rec_b, key)
        if va is not None and vb is not None:
            per_step.append((key, va, vb))
    first = None
    for key, va, vb in per_step:
        diff = np.asarray(va) != np.asarray(vb)
        rows = np.flatnonzero(diff.any(axis=1))
        if rows.size and (first is None or rows[0] < first.step):
            t = int(rows[0])
            j = int(np.flatnonzero(diff[t])[0])
            first = Divergence(t, key, (j,), int(va[t, j]), int(vb[t, j]))
    snaps_a, snaps_b = rec_a.weight_snapshots, rec_b.weight_snapshots
    if snaps_a is not None and snaps_b is not None and len(snaps_a) == len(snaps_b):
        for s, (wa, wb) in enumerate(zip(snaps_a, snaps_b)):
            step = int(rec_a.snapshot_steps[s]) - 1 if rec_a.snapshot_steps is not None else None
            if first is not None and step is not None and step >= first.step:
                break
            if not np.array_equal(wa, wb):
                k, j = (int(x) for x in np.argwhere(wa != wb)[0])
                return Divergence(step, "weights", (k, j), int(wa[k, j]), int(wb[k, j]))
    if first is not None:
        return first
    if not np.array_equal(rec_a.weights, rec_b.weights):
        k, j = (int(x) for x in np.argwhere(np.asarray(rec_a.weights) != np.asarray(rec_b.weights))[0])
        return Divergence(None, "weights", (k, j), int(rec_a.weights[k, j]), int(rec_b.weights[k, j]))
    return None
