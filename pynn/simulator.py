"""The simulator state of `neurofabric.pynn`: time, cell IDs, what was built, the engine.

PyNN's common code reaches the backend through this module (`state`, `ID`,
`name`). Time is kept as a whole number of steps, so runs add up exactly
(`t` is `steps * dt`, in ms).

Changes are tracked in two kinds. The network (cells, their parameters,
projections, weights, current sources) is loaded onto the device with a
reset of its state, so a change to it after the simulation has started is
refused at the next run unless `reset()` came first. The stimulus (the spike
times of a `SpikeSourceArray`, the rates of a `SpikeSourcePoisson`) travels
with each run and may change between runs.
"""

from __future__ import annotations

import logging
import math

from pyNN import common

__all__ = ["ID", "State", "state", "name"]

logger = logging.getLogger(__name__)

name = "neurofabric"


class ID(int, common.IDMixin):
    """A cell's ID: an int that knows its population (PyNN's `IDMixin`)."""

    def __init__(self, n):
        int.__init__(n)
        common.IDMixin.__init__(self)


class State(common.control.BaseState):
    """The one simulation of the process (PyNN keeps one per backend module)."""

    def __init__(self):
        super().__init__()
        self.mpi_rank = 0
        self.num_processes = 1
        self.dt = 0.1
        self.min_delay = "auto"
        self.max_delay = "auto"
        #: The device `setup()` uses when it is given none (`utility.get_simulator` sets it), and the
        #: options it is opened with.
        self.default_device = "golden"
        self.default_device_options = {}
        self.engine = None
        self.segment_counter = -1
        self.clear()

    # -- time ------------------------------------------------------------------
    @property
    def t(self) -> float:
        """The current time in ms (a whole number of steps)."""
        return round(self.t_steps * self.dt, 9)

    def steps_until(self, tstop: float) -> int:
        """The number of steps from now to `tstop` ms: to the first grid point at or after it."""
        return int(math.ceil(tstop / self.dt - 1e-9)) - self.t_steps

    def run(self, simtime):
        self.run_until(self.t + simtime)

    def run_until(self, tstop):
        steps = self.steps_until(tstop)
        if steps > 0:
            self.engine.advance(steps)
            self.t_steps += steps
        self.running = True

    # -- what was built --------------------------------------------------------------
    def clear(self):
        """Forget the network (a new `setup()`); closes the device."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.recorders = set()
        self.populations = []
        self.projections = []
        self.current_sources = []
        self.write_on_end = []
        self.id_counter = 0
        self.network_version = 0
        self.last_change = "nothing"
        self.segment_counter = -1
        self.reset()

    def reset(self):
        """Back to t = 0 with the initial state and weights; a new segment of recorded data."""
        self.running = False
        self.t_steps = 0
        self.t_start = 0
        self.segment_counter += 1
        if self.engine is not None:
            self.engine.reset()

    def network_changed(self, what: str) -> None:
        """Note a change to the network (parameters, connections, weights, current sources)."""
        self.network_version += 1
        self.last_change = what
        logger.debug("network changed: %s", what)


state = State()
