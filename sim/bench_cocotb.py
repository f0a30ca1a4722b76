"""cocotb module behind benchmarks/core_cycles.py: cycles per step of controlled workloads.

`NF_BENCH` names a JSON file `{"workloads": [...], "out": path}`; each workload
`{"activity": a, "learn": 0/1, "steps": s, "seed": x}` builds the benchmark
network on the whole core (`host.bench.workload_network`: a fixed random
`a * n` neurons spike every step, no other neuron ever does), drives inputs
spiking at `a` per step, and records the core's `step_cycles` of every step
after the first (the first has no neuron spikes to deliver), and the loaded
network's fingerprint. Results go to `out` as JSON.
"""

import json
import os

import numpy as np

import cocotb

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.bench import network_fingerprint, workload_network
from neurofabric.host.golden import GoldenModel

from .core_tb import CoreTB


@cocotb.test()
async def measure_cycles(dut):
    with open(os.environ["NF_BENCH"]) as f:
        plan = json.load(f)
    config = CoreConfig(**json.loads(os.environ["NF_CORE_CONFIG"]))
    tb = CoreTB(dut, config)
    await tb.start()
    results = []
    for wl in plan["workloads"]:
        net = workload_network(config, wl["activity"], wl["learn"], wl.get("seed", 1))
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
                            delivered=float(np.mean(delivered)), spiking=float(np.mean(spiking)),
                            network=network_fingerprint(net)))  # the network loaded, for comparisons
    with open(plan["out"], "w") as f:
        json.dump(results, f)
