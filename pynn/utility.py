"""`get_simulator` for scripts written for PyNN's examples, and PyNN's other utilities.

PyNN's examples start with `sim, options = get_simulator(...)` from
`pyNN.utility`, which imports `pyNN.<simulator>`. Importing it from here
instead (`from neurofabric.pynn.utility import get_simulator, ...`) runs the
same script on neurofabric: the simulator argument names the device
("golden", "rtl", "serial:PATH"), which `setup()` then uses.
"""

import argparse

from pyNN.utility import *  # noqa: F401,F403 - the rest of pyNN.utility, unchanged
from pyNN.utility import Timer, init_logging, normalized_filename  # noqa: F401

from . import simulator

__all__ = ["get_simulator", "Timer", "init_logging", "normalized_filename"]


def get_simulator(*arguments):
    """Parse the command line as `pyNN.utility.get_simulator` does; return `(neurofabric.pynn, args)`.

    The first positional argument, `simulator`, is the device `setup()` uses
    when it is given none.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("simulator", help="the neurofabric device: golden, rtl or serial:PATH")
    for argument in arguments:
        name, help_text = argument[:2]
        parser.add_argument(name, help=help_text, **(argument[2] if len(argument) > 2 else {}))
    args = parser.parse_args()
    simulator.state.default_device = args.simulator
    import neurofabric.pynn as sim
    return sim, args
