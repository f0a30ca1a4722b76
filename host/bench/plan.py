"""What a bench run measures (`BenchPlan`), its reference workload and its error type."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurofabric.paths import cache_dir

from ..errors import NeurofabricError

__all__ = ["REFERENCE_ACTIVITY", "NEUROCOREX", "PARALLEL_CORE_TARGETS", "LEARN_COST_TARGET", "WORKLOAD_SEED",
           "BenchError", "CoreRun", "BenchPlan", "bench_cache_dir", "board_pipeline", "workload_network",
           "workload_stimulus", "workload_rates", "network_fingerprint"]

#: The reference workload's activity: the fraction of inputs, and of neurons,
#: spiking per step.
REFERENCE_ACTIVITY = 0.1

#: NeuroCoreX's published figures (ORNL, 2025), on a Digilent Cmod A7-35T
#: (xc7a35t: 20,800 LUT6, 50 block RAM tiles of 36 kbit).
NEUROCOREX = {"board": "Cmod A7-35T", "neurons": 90, "step_ms": 0.96, "luts": 6981, "block_ram_tiles": 30.5,
              "steps_per_second": 1 / 0.96e-3}

#: The seed of every core workload's network (`workload_network`); its inputs
#: come from seed + 1 (`workload_stimulus`), as in sim/bench_cocotb.py.
WORKLOAD_SEED = 7

#: The parallel core's targets, per board: (figure, "<=" or ">=", limit). A
#: figure is a dotted path into the board's entry of the `boards` section, on
#: the reference workload at the board's default size.
PARALLEL_CORE_TARGETS = {
    # the goal is 10 both ways; 5 is the target (which also covers every ULX3S board's 2 learning off)
    "ulx3s-85f": (("core.cycles_per_step.learn_off", "<=", 1000), ("core.cycles_per_step.learn_on", "<=", 4000),
                  ("core_vs_golden.learn_off", ">=", 5), ("core_vs_golden.learn_on", ">=", 5)),
    # 6 weights per cycle: 75 % of the iCE40UP5K's 4 SPRAMs of 16 bits (8 weights of 8 bits)
    "icebreaker": (("core.weights_per_cycle", ">=", 6), ("core.cycles_per_step.learn_off", "<=", 2500),
                   ("core.cycles_per_step.learn_on", "<=", 7500)),
    # every ULX3S board outruns the golden model on one laptop core, learning off
    **{name: (("core_vs_golden.learn_off", ">=", 2),) for name in ("ulx3s-12f", "ulx3s-25f", "ulx3s-45f")},
}

#: Learning on costs at most this many times learning off on the reference workload.
LEARN_COST_TARGET = 3


class BenchError(NeurofabricError):
    """A benchmark could not run (a missing script, a failed build of a model, a failed run)."""


def bench_cache_dir() -> Path:
    """Where the bench caches its board builds: bench/ of the cache folder (`neurofabric.paths.cache_dir()`)."""
    return cache_dir() / "bench"


@dataclass(frozen=True)
class CoreRun:
    """One core configuration and the activities measured on it (learning off and on)."""

    n: int
    m: int
    lanes: int
    weight_memory: str = "dual"
    activities: tuple = (REFERENCE_ACTIVITY,)
    pipeline: str = "long"         # `Core(pipeline=...)`: "short" is the one the iCE40 boards build
    neurons_per_cycle: int = 1     # `CoreConfig.neurons_per_cycle`
    pot_banks: int = 1             # `CoreConfig.pot_banks`

    @property
    def key(self):
        return (self.n, self.m, self.lanes, self.weight_memory, self.pipeline, self.neurons_per_cycle,
                self.pot_banks)

    def config(self):
        """The run's `CoreConfig` (the default widths: S 16, W 8, T 8)."""
        from ...hdl.core_ports import CoreConfig
        return CoreConfig(n=self.n, m=self.m, lanes=self.lanes, weight_memory=self.weight_memory,
                          neurons_per_cycle=self.neurons_per_cycle, pot_banks=self.pot_banks)


@dataclass
class BenchPlan:
    """What `run_bench` measures. `BenchPlan.full()`, `.quick()` and `.tiny()` (for tests)."""

    name: str
    reference: CoreRun
    core_runs: list
    core_steps: int
    # the boards' cores measured in the core section (their step time, the golden model on the same
    # network): "all" (every board's default core), "open" (the iCE40 and ECP5 boards' default cores)
    # or {board name: (neurons, inputs)} (smaller cores of those boards, for the tests)
    board_configs: object
    board_builds: str              # "default": every open-tool board at its default size; "small"; "cached"
    #                                (the cache's default-size builds only); "none"
    small_builds: dict             # board name -> (neurons, inputs) of a quick build
    link_activities: tuple
    link_steps: int
    simboard_configs: list         # (n, m, lanes)
    simboard_steps: int
    golden_args: list              # arguments of benchmarks/golden_vs_brian2.py
    # Steps of the golden model on each board's network (timed): learning off a step takes tens of
    # microseconds, so a run is long enough only at thousands of steps on a shared machine.
    golden_steps: int = 5000
    golden_repeats: int = 5        # timed runs of them; the fastest counts (the least disturbed)
    reference_activity: float = REFERENCE_ACTIVITY
    round_trip_s: float = 1e-3     # the USB round trip of each link exchange (link.ROUND_TRIP_S)
    sections: tuple = ("core", "boards", "link", "simulated_board", "golden")
    cache_dir: Path = field(default_factory=bench_cache_dir)

    @classmethod
    def full(cls):
        ref = CoreRun(256, 256, 64, activities=(0.0, 0.02, 0.05, 0.1, 0.2, 0.4))   # the ULX3S-45F's core
        return cls(
            name="full", reference=ref, core_steps=8, board_configs="all", board_builds="default", small_builds={},
            core_runs=[ref,
                       # n = m
                       CoreRun(64, 64, 64), CoreRun(128, 128, 64), CoreRun(512, 512, 64),
                       # n with m = 256, m with n = 256
                       CoreRun(128, 256, 64), CoreRun(512, 256, 64), CoreRun(256, 128, 64), CoreRun(256, 512, 64),
                       # lanes at n = m = 256
                       CoreRun(256, 256, 4), CoreRun(256, 256, 16), CoreRun(256, 256, 32), CoreRun(256, 256, 128),
                       # the single-port (iCE40UP SPRAM) schedule, with the iCE40 boards' pipeline
                       CoreRun(256, 256, 2, "spram", activities=(0.05, 0.1, 0.2), pipeline="short")],
            link_activities=(0.0, 0.01, 0.02, 0.05, 0.1, 0.5), link_steps=1000,
            simboard_configs=[(64, 64, 4), (256, 256, 4)], simboard_steps=500,
            golden_args=[])  # the script's defaults: 1024 x 1024, 1000 steps, a fresh Cython cache

    @classmethod
    def quick(cls):
        ref = CoreRun(256, 256, 64, activities=(0.0, 0.05, 0.1, 0.2))    # the ULX3S-45F's core
        return cls(
            name="quick", reference=ref, core_steps=4, board_configs="open", board_builds="small",
            # one small core per FPGA family, the sizes CI builds
            small_builds={"icebreaker": (16, 16), "ulx3s-12f": (16, 16)},
            core_runs=[ref, CoreRun(32, 32, 4), CoreRun(64, 64, 4), CoreRun(64, 64, 16), CoreRun(256, 256, 4)],
            link_activities=(0.0, 0.02, 0.05, 0.1), link_steps=300,
            simboard_configs=[(64, 64, 4)], simboard_steps=300,
            golden_args=["--neurons", "512", "--inputs", "512", "--steps", "1000", "--brian2-warm-cache"],
            golden_steps=2000)

    @classmethod
    def tiny(cls, cache_dir=None):
        """A seconds-long plan on tiny cores (the tests'): every section but board builds and Brian2;
        the iCE40 and ECP5 boards' cores at 4 x 4 (the ULX3S-85F's at 8 x 4, twice the neurons as at its size)."""
        ref = CoreRun(4, 4, 2, activities=(0.25, 0.5))
        from ...boards import BOARDS
        tiny_cores = {name: (8, 4) if name == "ulx3s-85f" else (4, 4) for name, board in BOARDS.items()
                      if not board.needs_vivado}
        return cls(
            name="tiny", reference=ref, reference_activity=0.25, core_steps=3, board_configs=tiny_cores,
            board_builds="none", small_builds={}, core_runs=[ref],
            link_activities=(0.0, 0.5), link_steps=20,
            simboard_configs=[(16, 8, 4)], simboard_steps=20,
            golden_args=["--neurons", "16", "--inputs", "16", "--steps", "20", "--skip-brian2"],
            golden_steps=50, golden_repeats=2,
            cache_dir=Path(cache_dir) if cache_dir is not None else bench_cache_dir())


def board_pipeline(board):
    """The pipeline a board's core is built with: `Core(pipeline="auto")` picks the short one on iCE40
    devices and the long one elsewhere, so the cycles measured are those of the board's own core."""
    return "short" if board.family == "ice40" else "long"


def workload_network(config, activity, learn, seed):
    """The benchmark network on a whole core of `config` (n, m, S, W, T).

    A fixed random `activity * n` neurons spike every step (threshold at the
    minimum) and no other neuron ever does (threshold at the maximum, small
    random weights); every synapse is plastic, the worst case for learning.
    With inputs spiking at `activity`, a step delivers about `activity * (m + n)`
    sources.
    """
    from ..network import Network
    from neurofabric.contract.model import DECAY_ONE, Widths
    rng = np.random.default_rng(seed)
    n, m, S, W = config.n, config.m, config.S, config.W
    smin, smax = -(1 << (S - 1)), (1 << (S - 1)) - 1
    spikers = rng.choice(n, int(round(activity * n)), replace=False)
    threshold = np.full(n, smax)
    threshold[spikers] = smin
    weights = rng.integers(-(1 << (W - 1)), 1 << (W - 1), size=(m + n, n)) // 8  # small: no one else spikes
    zeros = np.zeros(n, np.int64)
    tmax = (1 << config.T) - 1
    # v and i last one step (4096), traces lose a quarter per step (1024): every decay multiplies,
    # so none is the cheap "no decay" case
    cleared = np.full(n, DECAY_ONE, np.int64)
    return Network(
        weights=weights, threshold=threshold, v_reset=zeros, reset_mode=zeros, decay_mem=cleared,
        decay_syn=cleared, refractory=zeros, bias=zeros, plastic_post=np.ones(n, np.int64),
        plastic_pre=np.ones(m + n, np.int64), learn=learn, a_plus=3, a_minus=2, stdp_shift=6,
        decay_pre=DECAY_ONE // 4, decay_post=DECAY_ONE // 4, inc_pre=min(100, tmax), inc_post=min(100, tmax),
        widths=Widths(S, W, config.T))


def workload_stimulus(m, steps, activity, seed):
    """The inputs of a workload whose network has `seed`: `steps` x `m` booleans, each spiking with
    probability `activity`, drawn from seed + 1 in the order sim/bench_cocotb.py draws them, step by step."""
    rng = np.random.default_rng(seed + 1)
    return np.stack([rng.random(m) < activity for _ in range(steps)]) if steps else np.zeros((0, m), bool)


def workload_rates(m, activity):
    """The stimulus generator's rates (spec section 5.0) for inputs spiking with probability `activity`
    per step: `round(65536 * activity)` for each of the `m` inputs, the on-chip twin of `workload_stimulus`."""
    from ..encoders import generator_rates
    return generator_rates(activity, inputs=m) if m else np.zeros(0, np.int64)


def network_fingerprint(net):
    """A short hash of every field of a `Network` (its arrays' values and its scalars): two runs with
    the same fingerprint ran the same network."""
    import dataclasses
    import hashlib
    h = hashlib.sha256()
    for f in dataclasses.fields(net):
        value = getattr(net, f.name)
        items = sorted(value.items()) if isinstance(value, dict) else [(f.name, value)]
        for name, v in items:
            h.update(name.encode())
            if isinstance(v, np.ndarray):
                h.update(repr(v.shape).encode())
                h.update(np.ascontiguousarray(v, np.int64).tobytes())
            else:
                h.update(repr(v).encode())
    return h.hexdigest()[:16]
