"""The contract between the gateware and the host, in pure Python (no Amaranth).

The bottom layer of neurofabric: `neurofabric.hdl` and `neurofabric.host` both
import it, never each other (tests/test_layering.py checks it).

- `model`: the core model's version, bit widths and field ranges (spec/core-model.md).
- `device`: the device, described once: the global registers, the neuron
  parameter and state words, the memory tables and the core's shape.
- `protocol`: the wire protocol's tables: version, frame constants, commands,
  status codes, field layouts, records, the tables' families and ids.
- `bauds`: the baud rates the boards are built with (the serial auto-baud list).
- `errors`: the exception types, one per layer.
"""
