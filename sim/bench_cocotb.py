"""cocotb module behind benchmarks/core_cycles.py: cycles per step of controlled workloads.

`NF_BENCH` names a JSON file `{"workloads": [...], "out": path}`; each workload
`{"activity": a, "learn": 0/1, "steps": s, "seed": x}` builds a network on the
whole core in which a fixed random `a * n` neurons spike every step (threshold
at the minimum) and no other neuron ever does, drives `a * m` random inputs
per step, and records the core's `step_cycles` of every step after the first
(the first has no neuron spikes to deliver). Results go to `out` as JSON.
"""

import json
import os

import numpy as np

import cocotb

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.golden import GoldenModel
from neurofabric.host.network import Network
from neurofabric.host.spec import Widths

from .core_tb import CoreTB

CONFIG = CoreConfig(**json.loads(os.environ["NF_CORE_CONFIG"]))


def workload_network(config, activity, learn, seed):
    """All synapses plastic (the worst case for learning); `activity * n` neurons always spike."""
    rng = np.random.default_rng(seed)
    n, m, S, W = config.n, config.m, config.S, config.W
    smin, smax = -(1 << (S - 1)), (1 << (S - 1)) - 1
    spikers = rng.choice(n, int(round(activity * n)), replace=False)
    threshold = np.full(n, smax)
    threshold[spikers] = smin
    weights = rng.integers(-(1 << (W - 1)), 1 << (W - 1), size=(m + n, n)) // 8  # small: no one else spikes
    return Network(
        weights=weights, threshold=threshold, v_reset=np.zeros(n, np.int64), reset_mode=np.zeros(n, np.int64),
        k_mem=np.zeros(n, np.int64), k_syn=np.zeros(n, np.int64), refractory=np.zeros(n, np.int64),
        bias=np.zeros(n, np.int64), plastic_post=np.ones(n, np.int64), plastic_pre=np.ones(m + n, np.int64),
        learn=learn, a_plus=3, a_minus=2, stdp_shift=6, k_pre=2, k_post=2, inc_pre=100, inc_post=100,
        widths=Widths(S, W, config.T))


@cocotb.test()
async def measure_cycles(dut):
    with open(os.environ["NF_BENCH"]) as f:
        plan = json.load(f)
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    results = []
    for wl in plan["workloads"]:
        net = workload_network(CONFIG, wl["activity"], wl["learn"], wl.get("seed", 1))
        await tb.load(net)
        golden = GoldenModel(net)
        rng = np.random.default_rng(wl.get("seed", 1) + 1)
        cycles, delivered, spiking = [], [], []
        for t in range(wl.get("steps", 4)):
            inputs = rng.random(net.m) < wl["activity"]
            prev = int(golden.s.sum())
            expected = golden.step(inputs)
            res = await tb.step(inputs)
            assert res.spikes == list(np.flatnonzero(expected)), f"workload {wl} step {t}: spikes differ"
            if t:
                cycles.append(res.cycles)
                delivered.append(int(inputs.sum()) + prev)
                spiking.append(len(res.spikes))
        results.append(dict(wl, cycles=float(np.mean(cycles)), cycles_max=int(max(cycles)),
                            delivered=float(np.mean(delivered)), spiking=float(np.mean(spiking))))
    with open(plan["out"], "w") as f:
        json.dump(results, f)
