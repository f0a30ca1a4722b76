"""The error `neurofabric.pynn` raises for what the core cannot express.

`UnsupportedError` is a `NetworkError` (so the rest of neurofabric treats it as
any malformed network) and a `NotImplementedError` (what PyNN's own backends
raise for a model they do not have), with a message that names what is
supported instead.
"""

from neurofabric.host.errors import NetworkError

__all__ = ["UnsupportedError"]


class UnsupportedError(NetworkError, NotImplementedError):
    """A PyNN script asks for something the core cannot run exactly (a model, a delay, a rule)."""
