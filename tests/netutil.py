"""Small hand-made networks for clause-by-clause tests."""

import numpy as np

from neurofabric.host.network import Network
from neurofabric.contract.model import Widths


WIDE = Widths(16, 16, 8)


def make_net(n=1, m=1, weights=None, widths=WIDE, **fields):
    """A network with neutral defaults: no leak, delta synapses, no learning."""
    defaults = dict(threshold=100, v_reset=0, reset_mode=0, decay_mem=0, decay_syn=4096, refractory=0,
                    bias=0, plastic_post=0)
    arrays = {}
    for name, default in defaults.items():
        arrays[name] = np.broadcast_to(np.asarray(fields.pop(name, default)), (n,)).copy()
    arrays["plastic_pre"] = np.broadcast_to(np.asarray(fields.pop("plastic_pre", 0)), (m + n,)).copy()
    if weights is None:
        weights = np.zeros((m + n, n), np.int64)
    scalars = dict(learn=0, a_plus=0, a_minus=0, stdp_shift=0, decay_pre=0, decay_post=0, inc_pre=0,
                   inc_post=0, trace_mode=0, w_min=-(1 << (widths.weight_bits - 1)),
                   w_max=(1 << (widths.weight_bits - 1)) - 1)
    scalars.update(fields)
    return Network(weights=np.array(weights), widths=widths, **arrays, **scalars)
