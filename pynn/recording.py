"""The recorder of `neurofabric.pynn`: spikes and membrane potentials from the device's runs.

Every run records every neuron's spikes; the membrane potential `v` when a
population records it; the generator's spikes (the `inputs` probe) when a
`SpikeSourcePoisson` records its spikes. The engine keeps them for the
current segment; a recorder reads its cells' part, converted to PyNN's units
(ms, mV), from the time of its last `clear`.

Times: a neuron that spikes in step `s` (counted from 0) spikes at
`(s + 1) * dt`, the end of the step, as NEST stamps it; a spike source's
spike in step `s` is at `s * dt`, and reaches its targets one step later
(PyNN's delay of one timestep). `v` is sampled at `0, dt, 2 dt, ...`: its
first sample is the state at the start (the core's reset state, `v_rest`).
"""

from __future__ import annotations

import numpy as np
from pyNN import recording

from . import simulator

__all__ = ["Recorder"]


class Recorder(recording.Recorder):
    _simulator = simulator

    def __init__(self, population, file=None):
        super().__init__(population, file)
        self._since = 0   # the step from which this recorder reports (set by clear)

    def _record(self, variable, new_ids, sampling_interval=None):
        if sampling_interval is not None:
            dt = simulator.state.dt
            ratio = sampling_interval / dt
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"sampling_interval {sampling_interval} ms is not a whole number of "
                                 f"time steps of {dt} ms")
            self.sampling_interval = sampling_interval

    def _engine(self):
        return simulator.state.engine

    def _get_spiketimes(self, ids, clear=False):
        engine = self._engine()
        if engine is None:
            return {int(i): np.zeros(0) for i in ids}
        return engine.spike_times(np.asarray(ids, dtype=np.int64), self._since)

    def _get_all_signals(self, variable, ids, clear=False):
        state = simulator.state
        engine = self._engine()
        ids = np.asarray(ids, dtype=np.int64)
        if variable.name != "v":
            raise recording.errors.RecordingError(variable.name, self.population.celltype)
        if engine is None:
            signal = np.full((state.t_steps - self._since + 1, ids.size), np.nan)
        else:
            signal = engine.membrane(ids, self._since, state.t_steps)
        every = int(round(self.sampling_interval / state.dt))
        return signal[::every], None

    def _local_count(self, variable, filter_ids=None):
        ids = np.asarray(sorted(self.filter_recorded(variable, filter_ids)), dtype=np.int64)
        times = self._get_spiketimes(ids)
        return {int(i): int(np.size(times.get(int(i), ()))) for i in ids}

    def _clear_simulator(self):
        self._since = simulator.state.t_steps

    def _reset(self):
        pass

    def store_to_cache(self, annotations=None):
        super().store_to_cache(annotations)
        self._since = 0
