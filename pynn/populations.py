"""`Population`, `PopulationView` and `Assembly` for `neurofabric.pynn`.

A population keeps its parameters in PyNN's names and units, one value per
cell; `neurofabric.pynn.mapping` turns them into the core's fields when the
network is compiled. Setting a parameter of a spike source changes the
stimulus of the next run; setting anything else changes the network.
"""

from __future__ import annotations

import numpy as np
from pyNN import common, errors
from pyNN.parameters import ParameterSpace, simplify
from pyNN.standardmodels import StandardCellType

from . import simulator
from .recording import Recorder
from .standardmodels import SpikeSourceArray, SpikeSourcePoisson

__all__ = ["Population", "PopulationView", "Assembly", "is_source"]


def is_source(celltype) -> bool:
    """Whether a cell type is a spike source (an input channel of the core)."""
    return isinstance(celltype, (SpikeSourceArray, SpikeSourcePoisson))


def _note_change(population, what):
    if is_source(population.celltype):
        return   # stimulus: read at each run
    simulator.state.network_changed(f"{what} of {population.label}")


def _check_spike_times(population, parameter_space):
    if "spike_times" not in parameter_space.keys():
        return
    for index, times in enumerate(parameter_space["spike_times"]):
        values = np.asarray(getattr(times, "value", times), dtype=float)
        if values.size > 1 and np.any(np.diff(values) < 0):
            raise errors.InvalidParameterValueError(
                f"{population.label}: spike_times[{index}] are not in increasing order")


class Assembly(common.Assembly):
    __doc__ = common.Assembly.__doc__
    _simulator = simulator


class PopulationView(common.PopulationView):
    __doc__ = common.PopulationView.__doc__
    _assembly_class = Assembly
    _simulator = simulator

    def _get_parameters(self, *names):
        native = self._get_native_parameters(*self.celltype.get_native_names(*names))
        return self.celltype.reverse_translate(native)

    def _get_native_parameters(self, *names):
        parameters = {}
        for name in names:
            value = self.parent._parameters[name]
            if isinstance(value, np.ndarray):
                value = value[self.mask]
            parameters[name] = simplify(value)
        return ParameterSpace(parameters, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        _check_spike_times(self, parameter_space)
        base = self.grandparent
        indices = self.index_in_grandparent(np.arange(self.size))
        for name, value in parameter_space.items():
            base._parameters[name][indices] = value
        _note_change(base, "parameters")

    def _set_initial_value_array(self, variable, initial_values):
        base = self.grandparent
        indices = self.index_in_grandparent(np.arange(self.size))
        base._initial[variable][indices] = initial_values.evaluate(simplify=False)
        _note_change(base, "initial values")

    def initialize(self, **initial_values):
        """Set initial values of state variables of the cells of this view (see `Population.initialize`)."""
        from pyNN.parameters import LazyArray
        for variable, value in initial_values.items():
            self._set_initial_value_array(variable, LazyArray(value, shape=(self.size,), dtype=float))

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)


class Population(common.Population):
    __doc__ = common.Population.__doc__
    _simulator = simulator
    _recorder_class = Recorder
    _assembly_class = Assembly

    def _create_cells(self):
        state = simulator.state
        ids = np.arange(state.id_counter, state.id_counter + self.size)
        self.all_cells = np.array([simulator.ID(i) for i in ids], dtype=simulator.ID)
        self._mask_local = np.ones(self.size, bool)
        if not isinstance(self.celltype, StandardCellType):
            raise errors.InvalidModelError(f"{type(self.celltype).__name__} is not a standard cell type")
        parameter_space = self.celltype.native_parameters
        parameter_space.shape = (self.size,)
        parameter_space.evaluate(simplify=False)
        _check_spike_times(self, parameter_space)
        self._parameters = parameter_space.as_dict()
        self._initial = {name: np.zeros(self.size) for name in self.celltype.default_initial_values}
        for cell in self.all_cells:
            cell.parent = self
        state.id_counter += self.size
        state.populations.append(self)
        _note_change(self, "creation")

    def _set_initial_value_array(self, variable, initial_values):
        self._initial[variable][:] = initial_values.evaluate(simplify=False)
        _note_change(self, "initial values")

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)

    def _get_parameters(self, *names):
        native = self._get_native_parameters(*self.celltype.get_native_names(*names))
        return self.celltype.reverse_translate(native)

    def _get_native_parameters(self, *names):
        return ParameterSpace({name: simplify(self._parameters[name]) for name in names}, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        _check_spike_times(self, parameter_space)
        for name, value in parameter_space.items():
            self._parameters[name] = np.array(value)
        _note_change(self, "parameters")

    def parameter_array(self, name: str) -> np.ndarray:
        """The values of parameter `name` for every cell (PyNN's units), as an array."""
        return np.asarray(self._parameters[name])

    def initial_array(self, name: str) -> np.ndarray:
        """The initial values of state variable `name` for every cell."""
        return self._initial[name]
