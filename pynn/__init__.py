"""PyNN on neurofabric: `import neurofabric.pynn as sim`.

A PyNN backend (PyNN 0.13) that runs on the golden model, the simulated board
or a board: `sim.setup(timestep=1.0, device="golden" | "rtl" | "serial:PATH")`,
then PyNN's populations, projections, recording and `run` as with any other
backend. The models are those the core computes exactly (see
`neurofabric.pynn.standardmodels`); every parameter goes through the
physical-units layer, and `sim.quantisation_report()` says what the integers
changed. docs/pynn.md has a complete script, the parameter table and what is
refused.
"""

try:
    import pyNN  # noqa: F401
except ImportError as exc:   # an optional extra: say how to get it
    raise ImportError("neurofabric.pynn needs PyNN 0.13, neo and quantities: pip install 'neurofabric[pynn]'") from exc

from pyNN import errors, random, space  # noqa: F401
from pyNN.connectors import *  # noqa: F401,F403
from pyNN.network import Network  # noqa: F401
from pyNN.random import GSLRNG, NumpyRNG, RandomDistribution  # noqa: F401
from pyNN.recording import *  # noqa: F401,F403
from pyNN.space import Space  # noqa: F401
from pyNN.standardmodels import StandardCellType

from .control import (  # noqa: F401
    core_network,
    end,
    get_current_time,
    get_max_delay,
    get_min_delay,
    get_time_step,
    initialize,
    num_processes,
    quantisation_report,
    rank,
    reset,
    run,
    run_for,
    run_until,
    setup,
)
from .errors import UnsupportedError  # noqa: F401
from .populations import Assembly, Population, PopulationView  # noqa: F401
from .procedural_api import connect, create, record, record_v  # noqa: F401
from .projections import Projection  # noqa: F401
from .standardmodels import *  # noqa: F401,F403 - the supported models and the refused ones, by PyNN's names
from .standardmodels import (REFUSED, SUPPORTED_CELLS, AdditiveWeightDependence, DCSource,  # noqa: F401
                             SpikePairRule, STDPMechanism, StaticSynapse)


def list_standard_models():
    """The cell types neurofabric runs (the others exist and refuse with a reason)."""
    return [name for name in SUPPORTED_CELLS
            if isinstance(globals().get(name), type) and issubclass(globals()[name], StandardCellType)]


__all__ = ["setup", "end", "run", "run_until", "run_for", "reset", "initialize", "get_current_time",
           "get_time_step", "get_min_delay", "get_max_delay", "num_processes", "rank", "quantisation_report",
           "core_network", "Population", "PopulationView", "Assembly", "Projection", "create", "connect", "record",
           "record_v",
           "list_standard_models", "UnsupportedError", *SUPPORTED_CELLS, "StaticSynapse", "STDPMechanism",
           "SpikePairRule", "AdditiveWeightDependence", "DCSource", *REFUSED]
