"""A cocotb testbench and bus model for the core (`neurofabric.hdl.core.Core`).

`CoreTB` owns the clock and reset and drives the core's streams from a single
coroutine at falling clock edges: the core's `ready` and `valid` outputs
depend on registered state only, so what is read at a falling edge holds for
the next rising edge. On top of the raw `read`/`write` it loads a `Network`
(smaller networks map onto the core: inputs `0..m'-1`, neurons `0..n'-1`),
writes the stimulus generator's rates and seed, runs steps (checking the order
of each step's output records), and reads weights, state and the generator
state back in the network's shape.
"""

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from neurofabric.contract.device import NEURON_PARAMS_WORD, network_register_values
from neurofabric.hdl.core_ports import (CoreConfig, Op, Reg, Space, StepEvent, join_lanes, pack, split_lanes,
                                        unpack)

__all__ = ["CoreTB", "StepResult"]


class StepResult:
    """What one step returned: spike list, probes (or None), the input set U
    (sorted input numbers, or None when not asked for) and cycles."""

    def __init__(self, spikes, v, i, cycles, inputs=None):
        self.spikes, self.v, self.i, self.cycles, self.inputs = spikes, v, i, cycles, inputs

    def input_bits(self, m):
        """U as a bool `(m,)` array."""
        bits = np.zeros(m, bool)
        bits[self.inputs] = True
        return bits


class CoreTB:
    """Clock, reset and bus model of one core instance."""

    def __init__(self, dut, config: CoreConfig):
        self.dut, self.cfg = dut, config
        self.cmd_layout = config.command_layout
        self.in_layout = config.step_input_layout
        self.out_layout = config.step_output_layout
        self.network = None
        self.cycles = 0

    async def start(self):
        dut = self.dut
        dut.cmd__valid.value = 0
        dut.step_in__valid.value = 0
        dut.rdata__ready.value = 1
        dut.step_out__ready.value = 1
        dut.cmd__payload.value = 0
        dut.step_in__payload.value = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    # -- raw access -------------------------------------------------------------
    async def _send(self, valid, ready, payload, words):
        """Send `words` on a stream, one per cycle when the core is ready."""
        i = 0
        while i < len(words):
            await FallingEdge(self.dut.clk)
            self.cycles += 1
            valid.value = 1
            payload.value = words[i]
            if ready.value:
                i += 1
        await FallingEdge(self.dut.clk)
        self.cycles += 1
        valid.value = 0

    def _cmd(self, op, space=Space.GLOBAL, addr=0, data=0):
        return pack(self.cmd_layout, op=op, space=space, addr=addr, data=data)

    async def write_many(self, items):
        """Write `(space, addr, data)` items, one per cycle."""
        dut = self.dut
        await self._send(dut.cmd__valid, dut.cmd__ready, dut.cmd__payload,
                         [self._cmd(Op.WRITE, s, a, d) for s, a, d in items])

    async def write(self, space, addr, data):
        await self.write_many([(space, addr, data)])

    async def read_many(self, items):
        """Read `(space, addr)` items; returns the raw data words."""
        dut, out = self.dut, []
        for space, addr in items:
            await self._send(dut.cmd__valid, dut.cmd__ready, dut.cmd__payload, [self._cmd(Op.READ, space, addr)])
            while not dut.rdata__valid.value:
                await FallingEdge(dut.clk)
                self.cycles += 1
            out.append(int(dut.rdata__payload.value))
        return out

    async def read(self, space, addr):
        return (await self.read_many([(space, addr)]))[0]

    async def reset_state(self):
        dut = self.dut
        await self._send(dut.cmd__valid, dut.cmd__ready, dut.cmd__payload, [self._cmd(Op.RESET_STATE)])
        while not dut.cmd__ready.value:
            await FallingEdge(dut.clk)

    # -- networks ---------------------------------------------------------------
    def _row(self, k):
        """Core row of network source `k`."""
        return k if k < self.network.m else self.cfg.m + (k - self.network.m)

    async def load(self, net):
        """Write a network's registers, parameters, masks and weights; reset the state."""
        cfg = self.cfg
        if net.n > cfg.n or net.m > cfg.m:
            raise ValueError(f"network n={net.n}, m={net.m} does not fit core n={cfg.n}, m={cfg.m}")
        if (net.state_bits, net.weight_bits, net.trace_bits) != (cfg.S, cfg.W, cfg.T):
            raise ValueError("network widths differ from the core's")
        self.network = net
        items = [(Space.GLOBAL, Reg[name.upper()], value) for name, value in network_register_values(net).items()]
        params = cfg.neuron_params_layout
        for j in range(cfg.n):
            if j < net.n:
                word = pack(params, **{f: int(getattr(net, f)[j]) for f in NEURON_PARAMS_WORD})
                post = int(net.plastic_post[j])
            else:
                word, post = 0, 0
            items.append((Space.NEURON, j, word))
            items.append((Space.POST_MASK, j, post))
        for k in range(net.m + net.n):
            items.append((Space.PRE_MASK, self._row(k), int(net.plastic_pre[k])))
        L, NW = cfg.lanes, cfg.words_per_row
        padded = np.zeros((net.m + net.n, cfg.n), np.int64)
        padded[:, :net.n] = net.weights
        used_words = (net.n + L - 1) // L
        for k in range(net.m + net.n):
            base = self._row(k) * NW
            for c in range(used_words):
                items.append((Space.WEIGHT, base + c, join_lanes(padded[k, c * L:(c + 1) * L], cfg.W)))
        await self.write_many(items)
        await self.reset_state()

    async def write_rates(self, rates):
        """Write the generator's `rate[k]` for the network's inputs `k < len(rates)`."""
        await self.write_many([(Space.RATE, k, int(rate)) for k, rate in enumerate(rates)])

    async def write_seed(self, seed):
        """Load a generator seed: the core's g becomes `seed` too."""
        await self.write(Space.GLOBAL, Reg.SEED, int(seed))

    async def read_gen_state(self):
        """The generator state g."""
        return await self.read_reg(Reg.GEN_STATE)

    async def step(self, inputs, probe=False, report_inputs=False):
        """Run one step with the inputs `inputs` (indices or a bool array of the network's m);
        `report_inputs` asks for the step's input set U (`StepResult.inputs`)."""
        dut, net = self.dut, self.network
        inputs = np.asarray(inputs)
        if inputs.dtype == bool:
            inputs = np.flatnonzero(inputs)
        words = [pack(self.in_layout, source=int(k), end=0) for k in inputs]
        words.append(pack(self.in_layout, end=1, probe=int(probe), inputs=int(report_inputs)))
        await self._send(dut.step_in__valid, dut.step_in__ready, dut.step_in__payload, words)
        spikes, v, i, u = [], {}, {}, []
        # A step's records come in this order: INPUT (when asked), SPIKE, PROBE (when asked), END.
        order = {StepEvent.INPUT: 0, StepEvent.SPIKE: 1, StepEvent.PROBE: 2}
        last = 0
        while True:
            await FallingEdge(dut.clk)
            self.cycles += 1
            if dut.step_out__valid.value:
                rec = unpack(self.out_layout, int(dut.step_out__payload.value))
                kind = StepEvent(rec["kind"])
                if kind == StepEvent.END:
                    break
                if order[kind] < last:
                    raise AssertionError(f"a {kind.name} record after a record of a later kind")
                last = order[kind]
                if kind == StepEvent.INPUT:
                    if not report_inputs:
                        raise AssertionError(f"INPUT record for input {rec['neuron']} that was not asked for")
                    u.append(rec["neuron"])
                elif kind == StepEvent.SPIKE:
                    spikes.append(rec["neuron"])
                else:
                    if not probe:
                        raise AssertionError(f"PROBE record for neuron {rec['neuron']} that was not asked for")
                    v[rec["neuron"]], i[rec["neuron"]] = rec["v"], rec["i"]
        await FallingEdge(dut.clk)
        cycles = int(dut.step_cycles.value)
        n = net.n if net is not None else self.cfg.n
        if probe:
            v_arr = np.array([v.get(j, 0) for j in range(n)], np.int64)
            i_arr = np.array([i.get(j, 0) for j in range(n)], np.int64)
            if sorted(v) != list(range(n)):
                raise AssertionError(f"probe records for neurons {sorted(v)}, expected 0..{n - 1}")
        else:
            v_arr = i_arr = None
        if report_inputs:
            if len(set(u)) != len(u):
                raise AssertionError(f"INPUT records name an input twice: {u}")
            m = net.m if net is not None else self.cfg.m
            if any(k >= m for k in u):
                raise AssertionError(f"INPUT records {u} name inputs beyond m = {m}")
            inputs_u = sorted(u)
        else:
            inputs_u = None
        return StepResult(spikes, v_arr, i_arr, cycles, inputs_u)

    async def read_weights(self):
        """The network's weights `(m'+n', n')` as the core holds them."""
        net, cfg = self.network, self.cfg
        L, NW = cfg.lanes, cfg.words_per_row
        used_words = (net.n + L - 1) // L
        addrs = [(Space.WEIGHT, self._row(k) * NW + c) for k in range(net.m + net.n) for c in range(used_words)]
        words = await self.read_many(addrs)
        out = np.zeros((net.m + net.n, used_words * L), np.int64)
        for idx, word in enumerate(words):
            k, c = divmod(idx, used_words)
            out[k, c * L:(c + 1) * L] = split_lanes(word, L, cfg.W)
        return out[:, :net.n]

    async def read_state(self):
        """A dict of the network's state arrays: v, i, r, s, y, count (the spike counters,
        when the core has them; n') and x (m'+n')."""
        net, cfg = self.network, self.cfg
        words = await self.read_many([(Space.STATE, j) for j in range(net.n)])
        fields = [unpack(cfg.neuron_state_layout, w) for w in words]
        state = {key: np.array([f[key] for f in fields], np.int64) for key in ("v", "i", "r", "s")}
        state["y"] = np.array(await self.read_many([(Space.POST_TRACE, j) for j in range(net.n)]), np.int64)
        if cfg.spike_counters:
            state["count"] = np.array(await self.read_many([(Space.COUNT, j) for j in range(net.n)]), np.int64)
        state["x"] = np.array(await self.read_many([(Space.PRE_TRACE, self._row(k))
                                                    for k in range(net.m + net.n)]), np.int64)
        return state

    async def read_reg(self, reg):
        return await self.read(Space.GLOBAL, reg)
