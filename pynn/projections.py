"""`Projection` for `neurofabric.pynn`: connections kept as arrays.

A projection holds, for each of its connections, the index of the
presynaptic and postsynaptic cell (within `pre` and `post`) and the synapse
type's parameters (weight, delay, and for `STDPMechanism` the rule's
parameters), in PyNN's units. `neurofabric.pynn.mapping` places them in the
core's weight matrix when the network is compiled.

`get("weight", ...)` gives what the core holds once the network has been
loaded onto the device (the quantised weights, and after a run with learning
the learned ones, in nA, or mV for `IF_curr_delta`); before that, the
weights as they were given.
"""

from __future__ import annotations

import numpy as np
from pyNN import common
from pyNN.space import Space

from . import simulator
from .standardmodels import StaticSynapse

__all__ = ["Projection", "Connection"]

_INDEX_NAMES = ("presynaptic_index", "postsynaptic_index")


class Connection(common.Connection):
    """One connection of a projection: a view onto its entry in the projection's arrays."""

    def __init__(self, projection, index):
        object.__setattr__(self, "projection", projection)
        object.__setattr__(self, "index", index)

    @property
    def presynaptic_index(self):
        return int(self.projection._arrays()[0][self.index])

    @property
    def postsynaptic_index(self):
        return int(self.projection._arrays()[1][self.index])

    def __getattr__(self, name):
        values = self.projection._attribute(name)
        return float(values[self.index])

    def __setattr__(self, name, value):
        projection = self.projection
        if name not in projection._attrs_names():
            raise AttributeError(f"{type(projection.synapse_type).__name__} has no parameter {name!r}")
        projection._arrays()[2][name][self.index] = float(value)
        simulator.state.network_changed(f"{name} of a connection of {projection.label}")

    def as_tuple(self, *attribute_names):
        return tuple(getattr(self, name) for name in attribute_names)


class Projection(common.Projection):
    __doc__ = common.Projection.__doc__
    _simulator = simulator
    _static_synapse_class = StaticSynapse

    def __init__(self, presynaptic_population, postsynaptic_population, connector, synapse_type=None,
                 source=None, receptor_type=None, space=None, label=None):
        super().__init__(presynaptic_population, postsynaptic_population, connector, synapse_type, source,
                         receptor_type, Space() if space is None else space, label)
        self._chunks = []          # (pre indices, post indices, {name: values}) as connect() made them
        self._cache = None
        simulator.state.projections.append(self)
        connector.connect(self)
        simulator.state.network_changed(f"projection {self.label}")

    # -- storage ---------------------------------------------------------------------
    def _attrs_names(self):
        return list(self.synapse_type.get_native_names())

    def _arrays(self):
        """`(pre indices, post indices, {parameter: values})`, one entry per connection."""
        if self._cache is None:
            names = self._attrs_names()
            if self._chunks:
                pre = np.concatenate([c[0] for c in self._chunks])
                post = np.concatenate([c[1] for c in self._chunks])
                attrs = {name: np.concatenate([c[2][name] for c in self._chunks]) for name in names}
            else:
                pre = post = np.zeros(0, np.int64)
                attrs = {name: np.zeros(0) for name in names}
            self._chunks = [(pre, post, attrs)]
            self._cache = (pre, post, attrs)
        return self._cache

    def _convergent_connect(self, presynaptic_indices, postsynaptic_index, location_selector=None,
                            **connection_parameters):
        if location_selector is not None:
            raise NotImplementedError("neurofabric.pynn has point neurons only: no location_selector")
        pre = np.asarray(presynaptic_indices)
        if pre.dtype == bool:
            pre = np.flatnonzero(pre)
        pre = pre.astype(np.int64).reshape(-1)
        count = pre.size
        values = {}
        for name in self._attrs_names():
            value = connection_parameters[name]
            arr = np.asarray(value, dtype=float)
            values[name] = np.array(np.broadcast_to(arr, (count,)) if arr.ndim == 0 or arr.size == 1
                                    else arr.reshape(-1), dtype=float)
            if values[name].shape != (count,):
                raise ValueError(f"{name}: {values[name].size} values for {count} connections")
        self._chunks.append((pre, np.full(count, int(postsynaptic_index), np.int64), values))
        self._cache = None

    def __len__(self):
        return int(self._arrays()[0].size)

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"connection {i} of a projection of {len(self)}")
        return Connection(self, i)

    @property
    def connections(self):
        """The connections, one `Connection` each (views onto the projection's arrays)."""
        return [Connection(self, i) for i in range(len(self))]

    # -- attributes ----------------------------------------------------------------------------
    def _attribute(self, name):
        """The values of attribute `name`, one per connection; weights as the core holds them when loaded."""
        if name in _INDEX_NAMES:
            return self._arrays()[_INDEX_NAMES.index(name)].astype(float)
        if name.endswith("s") and name[:-1] in self._attrs_names():
            name = name[:-1]
        if name == "weight":
            engine = simulator.state.engine
            realised = engine.realised_weights(self) if engine is not None else None
            if realised is not None:
                return realised
        return self._arrays()[2][name]

    def _get_attributes_as_list(self, names):
        columns = [self._attribute(name) for name in names]
        return [tuple(values) for values in zip(*[c.tolist() for c in columns])]

    def _get_attributes_as_arrays(self, names, multiple_synapses="sum"):
        pre, post, _ = self._arrays()
        out = []
        for name in names:
            values = self._attribute(name)
            result = np.full((self.pre.size, self.post.size), np.nan)
            if multiple_synapses == "sum":
                seen = np.zeros(result.shape, bool)
                seen[pre, post] = True
                total = np.zeros(result.shape)
                np.add.at(total, (pre, post), values)
                result[seen] = total[seen]
            else:
                operation = common.Projection.MULTI_SYNAPSE_OPERATIONS[multiple_synapses]
                for i, j, value in zip(pre.tolist(), post.tolist(), values.tolist()):
                    result[i, j] = value if np.isnan(result[i, j]) else operation(result[i, j], value)
            out.append(result)
        return out

    def _set_attributes(self, parameter_space):
        pre, post, attrs = self._arrays()
        parameter_space.shape = (self.pre.size, self.post.size)
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            if name not in attrs:
                raise AttributeError(f"{type(self.synapse_type).__name__} has no parameter {name!r}")
            full = np.broadcast_to(np.asarray(value, dtype=float), (self.pre.size, self.post.size))
            attrs[name][:] = full[pre, post]
        simulator.state.network_changed(f"connection parameters of {self.label}")

    def _set_initial_value_array(self, variable, initial_value):
        raise NotImplementedError("the core's synapses have no state variables to initialise")

    @property
    def plastic(self) -> bool:
        """Whether this projection learns (an `STDPMechanism`)."""
        from .standardmodels import STDPMechanism
        return isinstance(self.synapse_type, STDPMechanism)
