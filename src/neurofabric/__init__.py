"""neurofabric: an open FPGA neuromorphic emulator toolchain.

The public API, re-exported from `neurofabric.host`:

    import neurofabric as nf
    net = nf.load_network("net.npz")
    with nf.open_device("golden") as dev:
        dev.load(net)
        rec = dev.run(nf.load_stimulus("stim.npz", m=net.m), record=("v", "i"))
    nf.save_recording(rec, "rec.npz")

Parts: `neurofabric.hdl` (gateware), `neurofabric.host` (model, files,
devices, CLI), `neurofabric.sim` (Verilator, cocotb, the simulated board),
`neurofabric.boards` (board definitions).
"""

from neurofabric.host.builder import InputGroup, NetworkBuilder, NeuronGroup, Projection
from neurofabric.host.device import Capabilities, Device, GoldenDevice, open_device
from neurofabric.host.errors import (BuildError, DeviceError, LinkError, NetworkError,
                                     NeurofabricError)
from neurofabric.host.files import (load_network, load_recording, load_stimulus, save_network,
                                    save_recording, save_stimulus)
from neurofabric.host.golden import GoldenModel, Recording
from neurofabric.host.network import Network, random_network
from neurofabric.host.nir_io import export_nir, import_nir
from neurofabric.host.units import PhysicalNetwork, QuantisationReport
from neurofabric.host.spec import CORE_MODEL_VERSION, Widths

__version__ = "0.1.0"

__all__ = [
    "PhysicalNetwork", "QuantisationReport", "export_nir", "import_nir",
    "BuildError", "Capabilities", "CORE_MODEL_VERSION", "Device", "DeviceError", "GoldenDevice",
    "GoldenModel", "InputGroup", "LinkError", "Network", "NetworkBuilder", "NetworkError",
    "NeurofabricError", "NeuronGroup", "Projection", "Recording", "Widths", "load_network",
    "load_recording", "load_stimulus", "open_device", "random_network", "save_network",
    "save_recording", "save_stimulus",
]
