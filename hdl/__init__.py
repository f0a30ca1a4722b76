"""neurofabric.hdl: the gateware (Amaranth 0.5).

`Core` (the LIF/STDP core) and its `CoreConfig` and `RegisterFile` (the global
registers, from `neurofabric.contract.device`), `UARTRx`/`UARTTx`,
`FrameReceiver`/`FrameSender` (COBS frames with a CRC), `Link` (the command
decoder: firmware on `MCU`, a small controller) and `NeurofabricTop` (all of them:
the device boards build and the simulated board runs). The names are imported on
first use, so importing one submodule does not elaborate or import the others.
"""

import importlib

__all__ = ["Core", "CoreConfig", "RegisterFile", "UARTRx", "UARTTx", "FrameReceiver", "FrameSender", "Link", "MCU",
           "NeurofabricTop"]

_MODULES = {"Core": "core", "CoreConfig": "core_ports", "RegisterFile": "registers", "UARTRx": "uart",
            "UARTTx": "uart",
            "FrameReceiver": "framing", "FrameSender": "framing", "Link": "link", "MCU": "mcu",
            "NeurofabricTop": "top"}


def __getattr__(name):
    if name in _MODULES:
        return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
