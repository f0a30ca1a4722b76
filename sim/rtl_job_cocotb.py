"""cocotb job behind `RTLDevice.run`: load, restore state, run a stimulus, save the recording.

`NF_RTL_JOB` names a folder holding `network.npz` (spec section 6 network,
weights as they are now) and `job.npz` (`spikes`, `record`, `snapshot_every`,
`rates`, `gen_state` (the generator state g to start from), and `state_v`, ...
when the run continues from a previous one); the job writes `recording.npz`
there (spikes, weights, v/i/inputs when recorded, snapshots, the end state, the
generator state after the run and the cycles of every step).
"""

import json
import os
from pathlib import Path

import numpy as np

import cocotb

from neurofabric.hdl.core_ports import CoreConfig, Space, pack
from neurofabric.host.network import Network

from .core_tb import CoreTB

CONFIG = CoreConfig(**json.loads(os.environ["NF_CORE_CONFIG"]))


@cocotb.test()
async def run_job(dut):
    folder = Path(os.environ["NF_RTL_JOB"])
    with np.load(folder / "network.npz") as f:
        net = Network.from_arrays({key: f[key] for key in f.files})
    with np.load(folder / "job.npz") as f:
        job = {key: f[key] for key in f.files}
    record = [key for key in str(job["record"]).split(",") if key]
    snapshot_every = int(job["snapshot_every"])
    tb = CoreTB(dut, CONFIG)
    await tb.start()
    await tb.load(net)
    if "state_v" in job:
        items = [(Space.STATE, j, pack(CONFIG.neuron_state_layout, v=int(job["state_v"][j]),
                                       i=int(job["state_i"][j]), r=int(job["state_r"][j]), s=int(job["state_s"][j])))
                 for j in range(net.n)]
        items += [(Space.POST_TRACE, j, int(job["state_y"][j])) for j in range(net.n)]
        items += [(Space.PRE_TRACE, tb._row(k), int(job["state_x"][k])) for k in range(net.m + net.n)]
        await tb.write_many(items)
    # A fresh simulation's rates table holds zeros. A seed write sets g: the job only
    # needs g (the device keeps the seed that a reset returns to).
    rates = job["rates"].astype(np.int64)
    if rates.any():
        await tb.write_rates(rates)
    await tb.write_seed(int(job["gen_state"]))
    stim = job["spikes"].astype(bool)
    steps = stim.shape[0]
    spikes = np.zeros((steps, net.n), np.uint8)
    probed = [key for key in record if key in ("v", "i")]
    probes = {key: np.zeros((steps, net.n), np.int64) for key in probed}
    inputs = np.zeros((steps, net.m), np.uint8) if "inputs" in record else None
    cycles = np.zeros(steps, np.int64)
    snaps, snap_steps = [], []
    for t in range(steps):
        res = await tb.step(stim[t], probe=bool(probed), report_inputs=inputs is not None)
        spikes[t, res.spikes] = 1
        cycles[t] = res.cycles
        for key in probed:
            probes[key][t] = getattr(res, key)
        if inputs is not None:
            inputs[t, res.inputs] = 1
        if snapshot_every and (t + 1) % snapshot_every == 0:
            snaps.append(await tb.read_weights())
            snap_steps.append(t + 1)
    out = {"spikes": spikes, "weights": await tb.read_weights(), "step_cycles": cycles,
           "gen_state": np.array(await tb.read_gen_state(), np.int64)}
    out.update(probes)
    if inputs is not None:
        out["inputs"] = inputs
    state = await tb.read_state()
    out.update({f"state_{key}": value for key, value in state.items()})
    if snapshot_every:
        out["weight_snapshots"] = (np.stack(snaps) if snaps else np.zeros((0, net.m + net.n, net.n), np.int64))
        out["snapshot_steps"] = np.array(snap_steps, np.int64)
    np.savez(folder / "recording.npz", **out)
