"""`neurofabric bench`: the figures of docs/benchmarks.md, measured in one run.

`run_bench(plan)` measures five sections and returns the results as a dict
that `json.dump` writes as it is; `write_docs(results, path)` writes the page
(only where asked: `neurofabric bench -o PAGE`).

- **core** (`core.py`): cycles per step of the core's RTL under Verilator (the
  machinery of `benchmarks/core_cycles.py`) for the reference workload and its
  growth with n, m, lanes and activity; synaptic events per cycle against the
  design's limit (`core.weights_per_cycle`, the weights it reads per cycle);
  the boards' own cores on the reference workload.
- **boards** (`boards.py`): `neurofabric build` of every board the open tools
  build (its `report.json`: clock, fmax, resources), cached in `bench/boards/`
  of the cache folder; steps per second at each board's clock from the core's
  cycles at its size; each board's own core (lanes, weight memory, pipeline)
  against the golden model on the same network on this machine
  (`boards.B.core_vs_golden`), and the parallel core's targets; the golden
  model also with the inputs made by the stimulus generator at the same
  activity (`boards.B.golden.generated`).
- **link** (`link.py`): bytes on the wire of the real host code (`LinkClient`,
  `SerialDevice`, the protocol's encoders) against an in-process device that
  answers every request: payload efficiency, the time to load a weight matrix
  and the streaming limit at each board's baud rate.
- **simulated_board** (`simulated_board.py`): the Verilator board program
  (`sim/board.py`) driven through its pseudo-terminal: simulated cycles and
  steps per second.
- **golden** (`golden.py`): `benchmarks/golden_vs_brian2.py`, whose Brian2 time
  over the golden model's time is `golden_vs_brian2`.

The rest: `plan.py` (what a run measures, the reference workload), `run.py`
(the run and its required keys), `page.py` and `plots.py` (the page),
`machine.py` (the machine's description), `tools.py` (the checkout and its
scripts, build cache keys, subprocesses).

The benchmark scripts live in the source checkout (`benchmarks/`), so the
bench runs from one; from an installed wheel it stops with a one-line error.
"""

from .link import link_costs
from .page import write_docs
from .plan import (NEUROCOREX, PARALLEL_CORE_TARGETS, REFERENCE_ACTIVITY, BenchError, BenchPlan, CoreRun,
                   network_fingerprint, workload_network, workload_rates, workload_stimulus)
from .run import BOARD_KEYS, REQUIRED_KEYS, missing_keys, run_bench

__all__ = ["BenchError", "BenchPlan", "CoreRun", "REQUIRED_KEYS", "BOARD_KEYS", "missing_keys", "run_bench",
           "write_docs", "workload_network", "workload_stimulus", "workload_rates", "network_fingerprint", "link_costs",
           "NEUROCOREX", "PARALLEL_CORE_TARGETS", "REFERENCE_ACTIVITY"]
