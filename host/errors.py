"""The exception types, one per layer (STYLE guideline 9), as the host's users import them.

They are defined in `neurofabric.contract.errors`, which the gateware shares.
"""

from neurofabric.contract.errors import BuildError, DeviceError, LinkError, NetworkError, NeurofabricError

__all__ = ["NeurofabricError", "NetworkError", "DeviceError", "LinkError", "BuildError"]
