"""The PyNN standard models neurofabric runs, and the ones it refuses.

Supported, each mapped onto the core by `neurofabric.pynn.mapping`:

- `IF_curr_exp`: the core's current-based LIF neuron (a synaptic current that
  decays with `tau_syn_E` / `tau_syn_I`, which must be the same time constant
  where a neuron receives both kinds of input: the core has one current per
  neuron, and excitation and inhibition are the sign of the weight);
- `IF_curr_delta`: the same with a current that lasts one step (weights in mV);
- `SpikeSourcePoisson`: an input channel driven by the core's stimulus
  generator (spec section 5.0), its rate constant between changes;
- `SpikeSourceArray`: an input channel whose spikes the host sends;
- `StaticSynapse`, and `STDPMechanism` with `SpikePairRule` and
  `AdditiveWeightDependence`: the core's pair-trace STDP with hard bounds;
- `DCSource`: a constant current, the neurons' bias, when it is on for the
  whole simulation.

Every other PyNN standard model exists here under its PyNN name, so a script
that names one fails where it creates it, with `UnsupportedError` saying why
the core cannot run it and what is supported.
"""

from __future__ import annotations

import numpy as np
from pyNN.parameters import ParameterSpace
from pyNN.standardmodels import build_translations, cells, electrodes, synapses

from .errors import UnsupportedError
from .simulator import state

SUPPORTED_CELLS = ("IF_curr_exp", "IF_curr_delta", "SpikeSourcePoisson", "SpikeSourceArray")
SUPPORTED_SYNAPSES = ("StaticSynapse", "STDPMechanism(SpikePairRule, AdditiveWeightDependence)")
SUPPORTED_SOURCES = ("DCSource",)


def _identity(model):
    """Translations that keep PyNN's names and units (the mapping converts at compile time)."""
    return build_translations(*[(name, name) for name in model.default_parameters])


# -- cells ------------------------------------------------------------------------

class IF_curr_exp(cells.IF_curr_exp):
    __doc__ = cells.IF_curr_exp.__doc__
    translations = _identity(cells.IF_curr_exp)


class IF_curr_delta(cells.IF_curr_delta):
    __doc__ = cells.IF_curr_delta.__doc__
    translations = _identity(cells.IF_curr_delta)


class SpikeSourcePoisson(cells.SpikeSourcePoisson):
    __doc__ = cells.SpikeSourcePoisson.__doc__
    translations = _identity(cells.SpikeSourcePoisson)


class SpikeSourceArray(cells.SpikeSourceArray):
    __doc__ = cells.SpikeSourceArray.__doc__
    translations = _identity(cells.SpikeSourceArray)


# -- synapses -------------------------------------------------------------------------

def _minimum_delay():
    delay = state.min_delay
    return state.dt if delay == "auto" else delay


class StaticSynapse(synapses.StaticSynapse):
    __doc__ = synapses.StaticSynapse.__doc__
    translations = _identity(synapses.StaticSynapse)

    def _get_minimum_delay(self):
        return _minimum_delay()


class SpikePairRule(synapses.SpikePairRule):
    __doc__ = synapses.SpikePairRule.__doc__
    translations = _identity(synapses.SpikePairRule)


class AdditiveWeightDependence(synapses.AdditiveWeightDependence):
    __doc__ = synapses.AdditiveWeightDependence.__doc__
    translations = _identity(synapses.AdditiveWeightDependence)


class STDPMechanism(synapses.STDPMechanism):
    __doc__ = synapses.STDPMechanism.__doc__
    base_translations = build_translations(("weight", "weight"), ("delay", "delay"),
                                           ("dendritic_delay_fraction", "dendritic_delay_fraction"))

    def __init__(self, timing_dependence=None, weight_dependence=None, voltage_dependence=None,
                 dendritic_delay_fraction=1.0, weight=0.0, delay=None):
        """PyNN's STDPMechanism; only `dendritic_delay_fraction=0` is the core's pairing (see below)."""
        if not isinstance(timing_dependence, SpikePairRule):
            raise UnsupportedError(
                f"STDPMechanism: timing dependence {type(timing_dependence).__name__} is not supported: the core "
                "learns with pair traces (one pre and one post trace, all pairs); supported: SpikePairRule")
        if not isinstance(weight_dependence, AdditiveWeightDependence):
            raise UnsupportedError(
                f"STDPMechanism: weight dependence {type(weight_dependence).__name__} is not supported: the core "
                "adds and subtracts amounts that do not depend on the weight, within hard bounds; supported: "
                "AdditiveWeightDependence")
        if voltage_dependence is not None:
            raise UnsupportedError("STDPMechanism: a voltage dependence is not supported: the core's learning "
                                   "sees only spike times")
        if dendritic_delay_fraction != 0:
            # As pyNN.brian2 does: the core's rule pairs a presynaptic spike when it arrives, after the
            # delay (spec section 5: depression and the pre trace at delivery), and a postsynaptic spike
            # in its own step.
            raise UnsupportedError(
                f"STDPMechanism: dendritic_delay_fraction = {dendritic_delay_fraction:g} is not supported: the "
                "core's learning sees a presynaptic spike when it arrives (after its delay) and a postsynaptic "
                "spike at once, the whole delay axonal; supported: dendritic_delay_fraction=0")
        super().__init__(timing_dependence, weight_dependence, None, dendritic_delay_fraction, weight, delay)

    def _build_translations(self):
        # PyNN's own version updates the class's dict in place; a copy keeps the class as it was.
        self.translations = dict(self.base_translations)
        for component in (self.timing_dependence, self.weight_dependence):
            self.translations.update(component.translations)

    def _get_minimum_delay(self):
        return _minimum_delay()


# -- current sources ------------------------------------------------------------------------

class DCSource(electrodes.DCSource):
    """A constant current (nA) from `start` to `stop` (ms), injected into neurons.

    On the core it is part of each neuron's bias, a network parameter: it runs
    exactly when it is on for the whole simulation (`start` at or before 0,
    `stop` at or after the end of every run). One that switches on or off
    during a run, or whose amplitude changes after the simulation has
    started (without `reset()`), is refused when the run starts.
    """

    translations = build_translations(("amplitude", "amplitude"), ("start", "start"), ("stop", "stop"))

    def __init__(self, **parameters):
        object.__setattr__(self, "cell_list", [])
        space = ParameterSpace(self.default_parameters, self.get_schema(), shape=(1,))
        if parameters:
            space.update(**parameters)
        object.__setattr__(self, "_values", {})
        self._store(space)
        state.current_sources.append(self)

    def _store(self, space):
        space.evaluate(simplify=True)
        for name, value in space.items():
            self._values[name] = float(np.asarray(value).reshape(-1)[0])

    def inject_into(self, cells):
        """Inject this current into `cells` (a Population, PopulationView, Assembly or list of IDs)."""
        cells = list(cells)
        for cell in cells:
            if not cell.celltype.injectable:
                raise TypeError("Can't inject current into a spike source.")
        self.cell_list.extend(cells)
        state.network_changed(f"a DCSource injected into {len(cells)} cells")

    def set_native_parameters(self, parameters):
        self._store(parameters)
        state.network_changed("a DCSource's parameters")

    def get_native_parameters(self):
        return ParameterSpace(dict(self._values), shape=(1,))

    def values(self):
        """`(amplitude nA, start ms, stop ms)` as floats."""
        return self._values["amplitude"], self._values["start"], self._values["stop"]


# -- what the core cannot run -------------------------------------------------------------------

_CONDUCTANCE = ("its synapses are conductance-based (the input scales with E_rev - v); the core adds "
                "currents")
_REFUSED = {
    cells: {
        "IF_curr_alpha": "its synaptic current is an alpha function, which needs a second state variable per "
                         "neuron; the core's current is one decaying exponential (IF_curr_exp) or a one-step "
                         "pulse (IF_curr_delta)",
        "IF_cond_exp": _CONDUCTANCE,
        "IF_cond_alpha": _CONDUCTANCE,
        "IF_cond_exp_gsfa_grr": _CONDUCTANCE,
        "IF_facets_hardware1": _CONDUCTANCE,
        "HH_cond_exp": "it is a Hodgkin-Huxley neuron with conductance-based synapses",
        "EIF_cond_alpha_isfa_ista": "it is an adaptive exponential neuron with conductance-based synapses",
        "EIF_cond_exp_isfa_ista": "it is an adaptive exponential neuron with conductance-based synapses",
        "GIF_cond_exp": "it is a generalised integrate-and-fire neuron with conductance-based synapses",
        "Izhikevich": "its membrane is quadratic with a recovery variable",
        "PointNeuron": "composed point neurons are not mapped onto the core",
        "LIF": "composed point neurons are not mapped onto the core (use IF_curr_exp)",
        "AdExp": "composed point neurons are not mapped onto the core",
        "MultiCompartmentNeuron": "the core's neurons are point neurons",
        "SpikeSourcePoissonRefractory": "the core's generator makes independent spikes at a constant rate "
                                        "(SpikeSourcePoisson); other processes can be given as SpikeSourceArray",
        "SpikeSourceGamma": "the core's generator makes independent spikes at a constant rate "
                            "(SpikeSourcePoisson); other processes can be given as SpikeSourceArray",
        "SpikeSourceInhGamma": "the core's generator makes independent spikes at a constant rate "
                               "(SpikeSourcePoisson); other processes can be given as SpikeSourceArray",
    },
    synapses: {
        "TsodyksMarkramSynapse": "the core's synapses are static or learn with the pair rule; short-term "
                                 "plasticity needs state per synapse",
        "SimpleStochasticSynapse": "the core's synapses transmit every spike",
        "StochasticTsodyksMarkramSynapse": "the core's synapses transmit every spike, with no short-term plasticity",
        "MultiQuantalSynapse": "the core's synapses transmit every spike, with no short-term plasticity",
        "ElectricalSynapse": "the core has no gap junctions",
        "MultiplicativeWeightDependence": "the core's learning adds amounts that do not depend on the weight "
                                          "(AdditiveWeightDependence)",
        "AdditivePotentiationMultiplicativeDepression": "the core's learning adds amounts that do not depend on "
                                                        "the weight (AdditiveWeightDependence)",
        "GutigWeightDependence": "the core's learning adds amounts that do not depend on the weight "
                                 "(AdditiveWeightDependence)",
        "Vogels2011Rule": "the core's learning is the pair rule (SpikePairRule)",
    },
    electrodes: {
        "StepCurrentSource": "the core's only injected current is each neuron's constant bias (a DCSource on "
                             "for the whole simulation)",
        "ACSource": "the core's only injected current is each neuron's constant bias (a DCSource on for the "
                    "whole simulation)",
        "NoisyCurrentSource": "the core's only injected current is each neuron's constant bias (a DCSource on "
                              "for the whole simulation)",
    },
}


def _supported_text(module):
    if module is cells:
        return "supported cell types: " + ", ".join(SUPPORTED_CELLS)
    if module is synapses:
        return "supported synapse types: " + ", ".join(SUPPORTED_SYNAPSES)
    return "supported current sources: " + ", ".join(SUPPORTED_SOURCES)


def _refused(module, name, reason):
    base = getattr(module, name)
    message = f"{name} is not supported by neurofabric.pynn: {reason}; {_supported_text(module)}"

    def __init__(self, *args, **kwargs):
        raise UnsupportedError(message)

    return type(name, (base,), {"__init__": __init__, "__doc__": f"Refused: {message}.",
                                "__module__": __name__})


REFUSED = {}
for _module, _models in _REFUSED.items():
    for _name, _reason in _models.items():
        REFUSED[_name] = _refused(_module, _name, _reason)
globals().update(REFUSED)

__all__ = [*SUPPORTED_CELLS, "StaticSynapse", "STDPMechanism", "SpikePairRule", "AdditiveWeightDependence",
           "DCSource", *REFUSED]
