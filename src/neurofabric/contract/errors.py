"""Exception types, one per layer (STYLE guideline 9).

Shared by the gateware (a build that cannot be made raises `BuildError`) and the
host (`neurofabric.host.errors` re-exports them). The command line turns each
into a one-line message and a distinct exit code (2 is click's own, for usage
errors).
"""

__all__ = ["NeurofabricError", "NetworkError", "DeviceError", "LinkError", "BuildError"]


class NeurofabricError(Exception):
    """Base of every error neurofabric raises on purpose."""

    exit_code = 1


class NetworkError(NeurofabricError, ValueError):
    """A network, stimulus or recording is malformed or out of range."""

    exit_code = 3


class DeviceError(NeurofabricError):
    """A device cannot do what was asked (wrong size, not open, missing tool)."""

    exit_code = 4


class LinkError(DeviceError):
    """The wire link to a board (real or simulated) failed."""

    exit_code = 5


class BuildError(NeurofabricError):
    """Generating, simulating or building gateware failed."""

    exit_code = 6
