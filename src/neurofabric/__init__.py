"""neurofabric: an open FPGA neuromorphic emulator toolchain.

The public API, re-exported from `neurofabric.host` and `neurofabric.contract`
(loaded on first use):

    import neurofabric as nf
    net = nf.load_network("net.npz")
    with nf.open_device("golden") as dev:
        dev.load(net)
        rec = dev.run(nf.load_stimulus("stim.npz", m=net.m), record=("v", "i"))
    nf.save_recording(rec, "rec.npz")

Parts: `neurofabric.contract` (the device description and the wire protocol's
tables, pure Python), `neurofabric.hdl` (gateware), `neurofabric.host` (model,
files, devices, CLI), `neurofabric.sim` (Verilator, cocotb, the simulated board),
`neurofabric.boards` (board definitions).
"""

import importlib

#: Where each public name lives; modules are imported on first use (PEP 562), so
#: `import neurofabric.hdl` or `import neurofabric.contract` does not import the host.
_SOURCES = {
    "InputGroup": "host.builder", "NetworkBuilder": "host.builder", "NeuronGroup": "host.builder",
    "Projection": "host.builder", "SparsePlasticityWarning": "host.builder",
    "poisson": "host.encoders", "regular": "host.encoders", "latency": "host.encoders",
    "step_probabilities": "host.encoders", "concatenate_trials": "host.encoders",
    "generator_rates": "host.encoders", "trial_seeds": "host.encoders", "Stimulus": "host.files",
    "Capabilities": "host.device", "Device": "host.device", "GoldenDevice": "host.device",
    "open_device": "host.device",
    "BuildError": "contract.errors", "DeviceError": "contract.errors", "LinkError": "contract.errors",
    "NetworkError": "contract.errors", "NeurofabricError": "contract.errors",
    "load_network": "host.files", "load_recording": "host.files", "load_stimulus": "host.files",
    "save_network": "host.files", "save_recording": "host.files", "save_stimulus": "host.files",
    "GoldenModel": "host.golden", "Recording": "host.golden",
    "Network": "host.network", "random_network": "host.network",
    "export_nir": "host.nir_io", "import_nir": "host.nir_io",
    "PhysicalNetwork": "host.units", "QuantisationReport": "host.units",
    "CORE_MODEL_VERSION": "contract.model", "Widths": "contract.model",
}

__version__ = "0.1.0"

__all__ = [
    "PhysicalNetwork", "QuantisationReport", "export_nir", "import_nir",
    "BuildError", "Capabilities", "CORE_MODEL_VERSION", "Device", "DeviceError", "GoldenDevice",
    "GoldenModel", "InputGroup", "LinkError", "Network", "NetworkBuilder", "NetworkError",
    "NeurofabricError", "NeuronGroup", "Projection", "Recording", "Widths", "load_network",
    "load_recording", "load_stimulus", "open_device", "random_network", "save_network",
    "save_recording", "save_stimulus",
    "SparsePlasticityWarning", "concatenate_trials", "latency", "poisson", "regular", "step_probabilities",
    "generator_rates", "trial_seeds", "Stimulus",
]

assert set(_SOURCES) == set(__all__)


def __getattr__(name):
    if name in _SOURCES:
        value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
        globals()[name] = value   # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
