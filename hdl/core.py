"""The neurofabric core: an all-to-all LIF core with on-chip STDP (spec section 5).

One clock domain. Weights, neuron parameters, neuron state, traces, masks and
the event lists live in `lib.memory.Memory` instances, so a new network needs
no rebuild; the sizes and widths of `CoreConfig` are build-time parameters.

A step (see docs/core.md for the timing):

1. RECV: the input list arrives on `step_in` (deduplicated, inputs >= m_used
   dropped) into the delivered list `D`; PREP waits for the real-time period;
   GEN (5.0) advances the generator state g once per used input, `g =
   xorshift32(g)`, and appends input k to `D` when `(g >> 16) < rate[k]` and the
   host did not send it; `D` then holds the step's inputs U. COPY appends last
   step's spikes (`m + j`) to `D`.
2. ACCUM (spec 5 step 2, and 5.2 fused): for each weight word column `c` of the
   used neurons, for each delivered source `d`, read word `(d, c)` and add its
   `lanes` weights to `lanes` exact accumulators; when learning, write the word
   back depressed (plastic lanes of plastic rows, clamped) through the STDP
   pipeline. Each word is visited once per step, so the read-modify-write never
   hazards, and the accumulation reads the weights of the end of last step.
3. NEURON (steps 3, 4 and 5.4): one neuron per cycle, pipelined; spikes go to
   the spike list, post traces update, the words holding spiking plastic
   neurons go to the potentiation work list, and each spiking neuron's counter
   (`Space.COUNT`, modulo 2^16; RESET_STATE clears them) counts the spike.
4. XPASS (5.1): one source per cycle, pre traces.
5. POT (5.3): for each word of the work list, every used source row, one word
   per cycle, potentiating the spiking plastic lanes of plastic rows.
6. OUT: the inputs U when asked, the spike list, the probes when asked, then END,
   on `step_out`.
"""

from types import SimpleNamespace

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from neurofabric.contract.device import SPIKE_COUNT_BITS

from .arith import (DECAY_FACTOR_BITS, NeuronUpdate, decay_keep, gen_fires, stdp_apply, stdp_product, trace_update,
                    xorshift32, xorshift32_jump)
from .core_ports import CoreConfig, Op, Space, StepEvent
from .registers import RegisterFile
from .spram import CELLS, TwoBankMemory, spram_tiles

__all__ = ["Core", "registered_read_port", "PIPELINES", "COLUMN_MEMORIES", "OVERLAPS", "GEN_JUMP"]

#: `Core(pipeline=...)`: "long" for fast clocks, "short" for small fabrics.
PIPELINES = ("long", "short")
#: `Core(column_memories=...)`: where the memories of one word per column go.
COLUMN_MEMORIES = ("block", "distributed")
#: `Core(overlap=...)`: the neuron and pre trace passes during the accumulation, or after it.
OVERLAPS = ("on", "off")
#: Generator steps per cycle of the long pipeline's GEN_SKIP pass (all rates 0).
GEN_JUMP = 16


def registered_read_port(m, mem, name, write_port=None):
    """A synchronous read port of `mem` built as an asynchronous read port and a
    register on its data, with `addr`, `data` and `en` (default 1; 0 holds the data)
    like `lib.memory.ReadPort`, and the same read-first timing.

    Yosys merges the register into the memory's read port (`memory_dff`), and only
    on that path does it honour the memory's `no_rw_check` attribute: a read port
    built by Amaranth as synchronous keeps its read-first collision behaviour, which
    the iCE40 and ECP5 block RAMs do not have and Yosys then emulates in logic.

    With `write_port` (simulation builds), a read of the address being written in
    the same cycle returns the complement of the word instead: the block RAM's
    result is undefined there, so a schedule that used such a read fails the
    bit-exact tests instead of passing by luck.
    """
    port = mem.read_port(domain="comb")
    reg = SimpleNamespace(addr=port.addr, en=Signal(init=1, name=f"{name}_rd_en"),
                          data=Signal(mem.shape, reset_less=True, name=f"{name}_rd_data"))
    word = Value.cast(port.data)
    if write_port is not None:
        collision = Value.cast(write_port.en).any() & (write_port.addr == port.addr)
        word = Mux(collision, ~word, word)
    with m.If(reg.en):
        m.d.sync += reg.data.eq(word)
    return reg


class Core(wiring.Component):
    """The LIF/STDP core.

    Ports:

    - `cmd` (in stream, `CoreConfig.command_layout`): memory and register
      access and `RESET_STATE`; accepted only while idle.
    - `rdata` (out stream): the answer to each `Op.READ`, `data_bits` wide.
    - `step_in` (in stream, `step_input_layout`): a step's input list.
    - `step_out` (out stream, `step_output_layout`): a step's inputs (when asked),
      spikes, probes (when asked), END.
    - `busy`, `steps_done`, `step_cycles`: status.

    `ready` of the input streams and `valid` of the output streams depend on
    registered state only, never combinationally on the other side.

    `weight_cells` (with `CoreConfig.weight_memory = "spram"` only): what the
    single-port weight banks are built from: `"sb_spram256ka"` (the iCE40UP's
    SPRAM primitives), `"model"` (their behavioural model, for simulation and
    other FPGAs), or `"auto"`: the primitives when elaborated for an iCE40UP
    platform (`platform.device`), else the model.

    `pipeline`: `"long"` registers a host command before carrying it out, the
    delivered row before its weight read, the neuron pass's, the pre trace pass's
    and the generator pass's block RAM data before their updates, the neuron
    update's decay products, and splits the STDP update of a weight word into two
    stages and a registered write-back (the ULX3S-85F at 50 MHz: ECP5 block RAM
    data comes 5.8 ns after the clock, and the weights span the die); `"short"`
    has none of these registers (5 cycles fewer per step, and 2 per potentiated
    word, and no flip-flops the iCE40UP's 12 MHz clock does not need); `"auto"`:
    short on an iCE40 platform, long elsewhere. The results are the same.

    `column_memories`: the accumulators, post traces, plastic_post and the work
    list (one word per word column: n/lanes deep) in `"block"` RAM or in
    `"distributed"` (LUT) RAM; `"auto"`: distributed on an ECP5 platform, where
    they would take 6 of the block RAMs the weights need (the ULX3S-85F's core),
    block elsewhere.

    `overlap`: `"on"` runs the neuron pass and the pre trace pass during the
    accumulation: a neuron is updated as soon as the accumulation has finished its
    word column, and the pre traces, which nothing before potentiation reads, are
    updated beside both. A step then costs about the accumulation's cycles plus one
    word column of neurons, instead of their sum (and the pre trace pass's).
    It needs a second read port on the post traces and on plastic_post (a second
    copy of each, in LUT RAM on the ECP5, a block RAM each on the iCE40) and a trace
    unit of its own for the pre traces. `"off"`: the passes one after the other.
    `"auto"`: on with the long pipeline, off with the short one (the iCE40UP5K has
    neither the block RAMs nor the DSP tile to spare). The results are the same.

    `poison_collisions` (simulation builds): a memory read in the cycle its address
    is written returns garbage, as the block RAMs may (see `registered_read_port`).
    """

    def __init__(self, config: CoreConfig, *, weight_cells="auto", pipeline="auto", column_memories="auto",
                 overlap="auto", poison_collisions=False):
        for name, value, allowed in (("weight_cells", weight_cells, CELLS), ("pipeline", pipeline, PIPELINES),
                                     ("column_memories", column_memories, COLUMN_MEMORIES),
                                     ("overlap", overlap, OVERLAPS)):
            if value not in ("auto", *allowed):
                self._MustUse__silence = True   # refused: no "created but never used" warning
                raise ValueError(f"Core {name} = {value!r}: allowed 'auto', " + ", ".join(repr(c) for c in allowed))
        self.config = config
        self.weight_cells = weight_cells
        self.pipeline = pipeline
        self.column_memories = column_memories
        self.overlap = overlap
        self.poison_collisions = poison_collisions
        super().__init__({
            "cmd": In(stream.Signature(config.command_layout)),
            "rdata": Out(stream.Signature(unsigned(config.data_bits))),
            "step_in": In(stream.Signature(config.step_input_layout)),
            "step_out": Out(stream.Signature(config.step_output_layout)),
            "busy": Out(1),
            "steps_done": Out(32),
            "step_cycles": Out(32),
        })

    #: SB_SPRAM256KA blocks in an iCE40UP3K/UP5K.
    SPRAM_BLOCKS = 4

    @staticmethod
    def _device(platform):
        return str(getattr(platform, "device", "") or "").upper()

    def _cells(self, platform):
        if self.weight_cells != "auto":
            return self.weight_cells
        return "sb_spram256ka" if self._device(platform).startswith("ICE40UP") else "model"

    def _pipeline(self, platform):
        if self.pipeline != "auto":
            return self.pipeline
        return "short" if self._device(platform).startswith("ICE40") else "long"

    def _overlap(self, platform):
        if self.overlap != "auto":
            return self.overlap == "on"
        return self._pipeline(platform) == "long"

    def _column_memories(self, platform):
        if self.column_memories != "auto":
            return self.column_memories
        return "distributed" if self._device(platform).startswith("LFE5") else "block"

    def elaborate(self, platform):
        cfg = self.config
        n, M, W, T, L = cfg.n, cfg.m, cfg.W, cfg.T, cfg.lanes
        NW, LB, A = cfg.words_per_row, cfg.lane_bits, cfg.acc_bits
        spram = cfg.weight_memory == "spram"
        long = self._pipeline(platform) == "long"
        overlap = self._overlap(platform)
        if spram and self._cells(platform) == "sb_spram256ka":
            # Checked before any submodule exists (no "created but never used" warnings).
            bank_rows = -(-cfg.sources // 2)
            cols, rows = spram_tiles(L * W, bank_rows * NW)
            if 2 * cols * rows > self.SPRAM_BLOCKS:
                raise ValueError(f"the weights of {cfg.key()} need {2 * cols * rows} SB_SPRAM256KA "
                                 f"(2 banks of {rows} x {cols}); the iCE40UP has {self.SPRAM_BLOCKS}")
        m = Module()

        # ---- global registers (contract.device.REGISTERS) --------------------
        m.submodules.registers = registers = RegisterFile(cfg)
        learn, a_plus, a_minus, stdp_shift = registers.learn, registers.a_plus, registers.a_minus, registers.stdp_shift
        decay_pre, decay_post = registers.decay_pre, registers.decay_post
        inc_pre, inc_post = registers.inc_pre, registers.inc_post
        trace_mode, w_min, w_max = registers.trace_mode, registers.w_min, registers.w_max
        n_used, m_used, period = registers.n_used, registers.m_used, registers.period
        steps_done = Signal(32)
        last_cycles = Signal(32)
        # The stimulus generator's state g (spec 5.0): a write of `seed` and RESET_STATE load it.
        gen = Signal(32, init=registers.seed.init)
        m.d.comb += [registers.steps_done.eq(steps_done), registers.last_step_cycles.eq(last_cycles),
                     registers.gen_state.eq(gen)]
        m.d.comb += [self.steps_done.eq(steps_done), self.step_cycles.eq(last_cycles)]
        nw_used = Signal(range(NW + 1))   # words holding used neurons
        m.d.comb += nw_used.eq((n_used + (L - 1)) >> LB)

        # ---- memories --------------------------------------------------------
        # `no_rw_check`: no schedule reads a word of these memories in the cycle it is
        # written and then uses the data (the passes read ahead of their writes, at other
        # addresses; host commands come one per cycle), so Yosys need not emulate
        # read-first collisions with registers and comparators (about 300 LUTs and 270
        # flip-flops on the iCE40). The post traces are the exception when lanes > 2
        # (short pipeline) or > 4 (long): the neuron pass reads the word of neuron j + 2
        # (j + 4 with the long pipeline) while it writes neuron j's lane, and with more
        # lanes that can be the same word; they keep the default then.
        # See `registered_read_port`.
        NO_RW = {"no_rw_check": 1}
        # The memories of one word per word column are shallow (n/lanes) and, but for
        # the accumulators, narrow: in LUT RAM they cost a few hundred LUTs and leave
        # the block RAMs to the weights (Yosys' `ram_style`).
        COL = ({"ram_style": "distributed"} if self._column_memories(platform) == "distributed" else {})
        # pot_banks > 1: the weights in B memories by word column (column c in bank
        # c mod B, at row * NW/B + c / B): the low bits of a word's address name its bank.
        B = cfg.pot_banks
        BB = B.bit_length() - 1
        w_mem = (None if spram or B > 1 else
                 Memory(shape=unsigned(L * W), depth=cfg.weight_words, init=[], attrs=NO_RW))
        w_bank_mems = [Memory(shape=unsigned(L * W), depth=cfg.weight_words // B, init=[], attrs=NO_RW)
                       for _ in range(B)] if B > 1 else []
        # With P neurons per cycle the neuron parameters and state are P memories (neuron j
        # in bank j mod P, at j / P), and so is the spike list (entry e in bank e mod P):
        # the neuron pass reads and writes the banks of P neurons, and appends up to P
        # spikes, in a cycle. The other passes and the host see one memory of each
        # (`Core._banked_view`).
        P = cfg.neurons_per_cycle
        PB = P.bit_length() - 1
        acc_mem = Memory(shape=unsigned(L * A), depth=NW, init=[], attrs=NO_RW | COL)
        neurons = [NeuronUpdate(cfg, pipelined=True, registered_products=long) for _ in range(P)]
        # Cycles from a neuron's reads to its writes in the neuron pass: the distance, in
        # neurons, between the word the pass reads and the lanes it writes.
        neuron_distance = (1 + long + neurons[0].latency) * P
        y_rw_free = L <= neuron_distance
        y_mem = Memory(shape=unsigned(L * T), depth=NW, init=[],       # post traces, by word
                       attrs=(NO_RW if y_rw_free else {}) | COL or None)
        ppost_mem = Memory(shape=unsigned(L), depth=NW, init=[], attrs=NO_RW | COL)       # plastic_post, by word
        x_mem = Memory(shape=unsigned(T), depth=cfg.sources, init=[], attrs=NO_RW)  # pre traces
        ppre_mem = Memory(shape=unsigned(1), depth=cfg.sources, init=[], attrs=NO_RW)
        deliv_mem = Memory(shape=unsigned(1), depth=cfg.sources, init=[], attrs=NO_RW)  # k in D this step
        d_mem = Memory(shape=unsigned(cfg.source_bits), depth=cfg.sources, init=[], attrs=NO_RW)  # list D
        wl_layout = data.StructLayout({"word": unsigned(bits_for(max(NW - 1, 1))), "mask": unsigned(L)})
        wl_mem = Memory(shape=wl_layout, depth=NW, init=[], attrs=NO_RW | COL)  # potentiation work list
        rate_mem = Memory(shape=unsigned(16), depth=M, init=[], attrs=NO_RW)   # the generator's rate[k]
        mems = dict(acc=acc_mem, y=y_mem, ppost=ppost_mem,
                    x=x_mem, ppre=ppre_mem, deliv=deliv_mem, d=d_mem, wl=wl_mem, rate=rate_mem)
        banked = dict(params=cfg.neuron_params_layout, state=cfg.neuron_state_layout,
                      sp=unsigned(cfg.neuron_bits))    # the spike list
        counters = cfg.spike_counters
        if counters:
            banked["cnt"] = unsigned(SPIKE_COUNT_BITS)  # the spike counters (Space.COUNT)
        for name, shape in banked.items():
            for b in range(P):
                mems[f"{name}{b}" if P > 1 else name] = Memory(shape=shape, depth=-(-n // P), init=[], attrs=NO_RW)
        if w_mem is not None:
            mems["w"] = w_mem
        for b, mem in enumerate(w_bank_mems):
            mems[f"w{b}"] = mem
        for name, mem in mems.items():
            m.submodules[f"{name}_mem"] = mem
        wr = {name: mem.write_port(granularity=(T if name == "y" else 1 if name == "ppost" else None))
              for name, mem in mems.items()}
        rd = {name: mem.read_port() if name == "y" and not y_rw_free else
              registered_read_port(m, mem, name, wr[name] if self.poison_collisions else None)
              for name, mem in mems.items()}
        # The neuron pass's ports of the banked memories; one memory's view of them for the rest.
        banks = {name: ([rd[name]], [wr[name]]) if P == 1 else
                 ([rd[f"{name}{b}"] for b in range(P)], [wr[f"{name}{b}"] for b in range(P)]) for name in banked}
        if P > 1:
            for name, shape in banked.items():
                rd[name], wr[name] = self._banked_view(m, name, shape, n, PB, *banks[name])
        # The accumulation's reads of the post traces and plastic_post: ports of their own
        # when the neuron pass, which reads other words of them, runs beside it.
        acc_rd = ({name: registered_read_port(m, mems[name], f"{name}_acc",
                                              wr[name] if self.poison_collisions else None)
                   for name in ("y", "ppost")} if overlap else {name: rd[name] for name in ("y", "ppost")})
        # Potentiation's reads of the pre traces: a port of its own when it trails their pass.
        pot_x = (registered_read_port(m, x_mem, "x_pot", wr["x"] if self.poison_collisions else None) if overlap
                 else rd["x"])
        if spram:
            # Single-port weights: even rows in bank 0, odd rows in bank 1 (the row's
            # low bit is address bit log2(n/lanes)). A read and a write share a cycle
            # only when they go to different banks; the schedules below see to it.
            cells = self._cells(platform)
            # The model starts from junk where that is cheap (small cores), as the
            # SPRAM does at power-up: a word read before the host wrote it shows.
            seed = 1 if cells == "model" and cfg.weight_words <= 4096 else None
            w_banks = TwoBankMemory(L * W, cfg.weight_words, bank_bit=ceil_log2(NW), cells=cells,
                                    init_seed=seed)
            m.submodules.w_banks = w_banks
            rd["w"] = SimpleNamespace(addr=w_banks.r_addr, data=w_banks.r_data, en=w_banks.r_en)
            wr["w"] = SimpleNamespace(addr=w_banks.w_addr, data=w_banks.w_data, en=w_banks.w_en)

        if B > 1:
            # One memory's ports for the host and the accumulation (a word of bank
            # `addr mod B`, its read data from the bank its address named a cycle before);
            # potentiation drives the banks' own ports (POT_SWEEP).
            rd["w"] = SimpleNamespace(addr=Signal(range(cfg.weight_words), name="w_rd_addr"),
                                      en=Signal(init=1, name="w_rd_en"), data=Signal(L * W, name="w_rd_word"))
            wr["w"] = SimpleNamespace(addr=Signal(range(cfg.weight_words), name="w_wr_addr"),
                                      data=Signal(L * W, name="w_wr_word"), en=Signal(name="w_wr_en"))
            w_rd_bank = Signal(BB, name="w_rd_bank")
            with m.If(rd["w"].en):
                m.d.sync += w_rd_bank.eq(rd["w"].addr[:BB])
            m.d.comb += rd["w"].data.eq(Cat(*[rd[f"w{b}"].data for b in range(B)]).word_select(w_rd_bank, L * W))
            for b in range(B):
                m.d.comb += [rd[f"w{b}"].addr.eq(rd["w"].addr >> BB), rd[f"w{b}"].en.eq(rd["w"].en),
                             wr[f"w{b}"].addr.eq(wr["w"].addr >> BB), wr[f"w{b}"].data.eq(wr["w"].data),
                             wr[f"w{b}"].en.eq(wr["w"].en & (wr["w"].addr[:BB] == b))]

        def lanes_of(value, bits):
            return [value[l * bits:(l + 1) * bits] for l in range(L)]

        def word_address(row, column):
            """The weight word `row * n/lanes + column` (`column < n/lanes`): wiring
            only when n/lanes is a power of two, no adder before the address's route."""
            if NW & (NW - 1) == 0:
                return Cat(column[:ceil_log2(NW)], row)
            return row * NW + column

        # ---- bookkeeping registers ------------------------------------------
        d_count = Signal(range(cfg.sources + 1))
        # spram: D holds even rows from the front (d_even of them) and odd rows from
        # the back (d_odd), so the accumulation can alternate banks.
        d_even = Signal(range(cfg.sources + 1))
        d_odd = Signal(range(cfg.sources + 1))
        sp_count = Signal(range(n + 1))
        # The entries of D that are this step's inputs U (host and generated), before COPY
        # appends the neurons: the first u_count (spram: u_even from the front, u_odd from
        # the back).
        u_count = Signal(range(M + 1))
        u_even = Signal(range(M + 1))
        report_inputs = Signal(1)   # the step's end record asked for U
        # The long pipeline skips the generator pass's reads when every rate of the used
        # inputs was 0 in the last full pass and neither the rates nor m_used were written
        # since: g then advances GEN_JUMP steps per cycle (GEN_SKIP), and nothing fires.
        # The short pipeline has no GEN_SKIP state (its rates_zero stays 0): Yosys does
        # not find the core's FSM unreachable states, so the jump's XOR trees and gen_left
        # would stay in the netlist.
        skip_zero_rates = long
        rates_zero = Signal(1)      # every rate[k], k < m_used, is 0 (known)
        all_zero = Signal(1)        # ... so far in this full pass
        gen_left = Signal(range(M + 1))
        wl_count = Signal(range(NW + 1))
        probe = Signal(1)
        dirty = Signal(1)        # the host wrote STATE or N_USED: rebuild the spike list
        zero_acc = Signal(1)     # D was empty: a = 0 for every neuron
        # Cycles since the last step started, counting that cycle as 1 (saturating):
        # both the real-time spacing and the step's cycle count (LAST_STEP_CYCLES).
        since_start = Signal(32, init=1)
        with m.If(since_start != 0xFFFF_FFFF):
            m.d.sync += since_start.eq(since_start + 1)

        # ---- host command decode --------------------------------------------
        # The long pipeline registers a command when it accepts it and carries it out
        # in the next cycle: the memory ports (the weights' span the whole die) then
        # see no path from the sender of the command (the link's logic on a board).
        # The short one carries it out in the cycle it accepts it (90 flip-flops fewer).
        if long:
            cmd = Signal(cfg.command_layout, name="cmd_r", reset_less=True)
            cmd_pending = Signal()
            cmd_execute = cmd_pending
        else:
            cmd = self.cmd.payload
            cmd_pending = C(0, 1)
            cmd_execute = self.cmd.valid
        lane_sel = Signal(LB + 1)
        rd_space = Signal(Space)
        rd_addr = Signal(cfg.addr_bits)
        rdata_reg = Signal(cfg.data_bits)
        m.d.comb += self.rdata.payload.eq(rdata_reg)
        cmd_lane = cmd.addr[:LB] if LB else C(0, 1)
        cmd_word = cmd.addr >> LB
        lane_onehot = Signal(L)
        m.d.comb += lane_onehot.eq(C(1, L) << cmd_lane)

        # ---- iteration counters shared by the passes -------------------------
        idx = Signal(range(max(cfg.sources, n, NW) + 1))   # issue counter (list index, neuron, source)
        col = Signal(range(NW + 1))                         # accumulation word column
        ent = Signal(range(max(n, NW, M) + 1))              # entry index (work list, output)
        issuing = Signal(1)
        v1 = Signal(1)
        v2 = Signal(1)
        t_idx1 = Signal.like(idx)       # stage-1 tags
        t_col1 = Signal.like(col)
        t_last1 = Signal(1)
        t_col2 = Signal.like(col)       # stage-2 tags
        t_last2 = Signal(1)
        t_waddr2 = Signal(range(cfg.weight_words))
        pot_word = Signal(range(NW))
        pot_mask = Signal(L)
        mask_acc = Signal(L)
        accs = [Signal(signed(A), name=f"acc{l}") for l in range(L)]
        # The neuron pass's own counters and stage tags (it may run during ACCUM).
        nidx = Signal(range(n + 1))
        n_issuing, nv1, nv2 = Signal(), Signal(), Signal()
        nt_idx1 = Signal(range(n + 1))
        cols_done = Signal(range(NW + 1))   # word columns whose sums ACCUM has written
        neuron_on = Signal()                # the neuron pass runs this cycle
        neuron_gate = Signal(init=1)        # ... and may issue neuron nidx
        n_drained = Signal()
        # The pre trace pass's (it may run during ACCUM and NEURON).
        xidx = Signal(range(cfg.sources + 1))
        x_issuing, xv1 = Signal(), Signal()
        xt_idx1 = Signal(range(cfg.sources + 1))
        xpass_on = Signal()
        x_drained = Signal()
        x_written = Signal(range(cfg.sources + 1))   # the pass has written the rows before this one

        def first_source():
            return Mux(m_used == 0, C(M, idx.shape()), C(0, idx.shape()))

        def next_source(k):
            return Mux(k + 1 == m_used, M, k + 1)

        last_source = (idx == M + n_used - 1)

        for p, unit in enumerate(neurons):
            m.submodules[f"neuron{p}" if p else "neuron"] = unit

        def stage(pairs):
            """Pipeline registers of the long pipeline; wires in the short one."""
            m.d["sync" if long else "comb"] += [dst.eq(src) for dst, src in pairs]

        # One STDP datapath for depression (ACCUM, 5.2) and potentiation (POT_SWEEP,
        # 5.3), which never share a cycle: the word just read, its lanes `syn_lanes`
        # changed by -/+ (amplitude * trace) >> stdp_shift, clamped (L multipliers,
        # shifters and adders, not 2L). Stages from the cycle the word's read data
        # arrives (the pass drives the `syn_*` inputs then):
        #   R: the products amplitude * trace; registered with the word (`p_*`);
        #   P: shift, add, clamp (`stdp_apply`), and the accumulation of the word
        #      (ACCUM); the new word registered (`q_*`);
        #   Q: the word written back, three cycles after its read.
        # The short pipeline has no registers between them: the word is written back
        # in the cycle its read data arrives, one cycle after its read. In one cycle
        # (block RAM output, trace select, multiplier, shift, add, clamp, then the
        # write data's route to every weight block) this was the ECP5 core's critical
        # path: about 34 ns for the ULX3S-85F's 192 weight blocks. No read sees a word
        # whose write-back is still in the pipeline: a pass visits a word once, and
        # every pass drains the pipeline before the next one starts.
        syn_valid = Signal()        # stage R holds a word of this pass
        syn_we = Signal()           # ... to write back (learning on, plastic row)
        syn_acc = Signal()          # ... to accumulate (ACCUM)
        syn_amplitude = Signal(8)
        syn_depress = Signal()
        syn_lanes = Signal(L)
        syn_traces = [Signal(T, name=f"syn_trace{l}") for l in range(L)]
        # Only the valid and write-enable bits need a reset.
        p_valid, p_we, p_acc = (Signal(name=f"p_{x}") for x in ("valid", "we", "acc"))
        p_last = Signal(name="p_last", reset_less=True)
        p_depress = Signal(name="p_depress", reset_less=True)
        p_col = Signal.like(col, name="p_col", reset_less=True)
        p_waddr = Signal.like(t_waddr2, name="p_waddr", reset_less=True)
        p_word = Signal(L * W, name="p_word", reset_less=True)
        p_lanes = Signal(L, name="p_lanes", reset_less=True)
        p_prods = [Signal(8 + T, name=f"p_prod{l}", reset_less=True) for l in range(L)]
        q_valid, q_we = Signal(name="q_valid"), Signal(name="q_we")
        q_waddr = Signal.like(t_waddr2, name="q_waddr", reset_less=True)
        q_word = Signal(L * W, name="q_word", reset_less=True)
        stage([
            (p_valid, syn_valid), (p_we, syn_valid & syn_we), (p_acc, syn_valid & syn_acc),
            (p_last, t_last2), (p_col, t_col2), (p_waddr, t_waddr2), (p_word, rd["w"].data),
            (p_lanes, syn_lanes), (p_depress, syn_depress),
            *[(p_prods[l], stdp_product(syn_amplitude, syn_traces[l])) for l in range(L)],
        ])
        p_lanes_w = [x.as_signed() for x in lanes_of(p_word, W)]
        stage([
            (q_valid, p_valid), (q_we, p_we), (q_waddr, p_waddr),
            (q_word, Cat(*[Mux(p_lanes[l], stdp_apply(w, p_prods[l], stdp_shift, p_depress, w_min, w_max, W), w)
                           for l, w in enumerate(p_lanes_w)])),
        ])
        # The weight write port: the write-back, or a host write (IDLE, `_host_write`
        # sets the enable). Address and data do not wait for the state decode: their
        # route to every weight block is long enough (6 ns on the ULX3S-85F).
        m.d.comb += [wr["w"].addr.eq(Mux(q_we, q_waddr, cmd.addr)), wr["w"].data.eq(Mux(q_we, q_word, cmd.data)),
                     rd["w"].addr.eq(cmd.addr)]   # the passes' reads override the read address
        with m.If(q_we):
            m.d.comb += wr["w"].en.eq(1)
        # 2. The exact sums, from the registered word (stage P).
        with m.If(p_acc):
            sums = [accs[l] + p_lanes_w[l] for l in range(L)]
            with m.If(p_last):
                m.d.comb += [wr["acc"].addr.eq(p_col), wr["acc"].en.eq(1),
                             wr["acc"].data.eq(Cat(*[x[:A] for x in sums]))]
                m.d.sync += [acc.eq(0) for acc in accs]
                m.d.sync += cols_done.eq(cols_done + 1)
            with m.Else():
                m.d.sync += [accs[l].eq(sums[l]) for l in range(L)]
        # The trace updates of the post traces (NEURON, 5.4) and the pre traces (XPASS, 5.1):
        # one shared by both passes in the short pipeline (the iCE40's DSP tiles), one each
        # in the long one, where the shared unit's input selection before its multiplier
        # made the ECP5 core's longest path. `4096 - decay_pre` / `decay_post` are
        # registered (the registers change only while the core is idle), so no subtractor
        # stands before a multiplier either.
        keep_pre, keep_post = Signal(DECAY_FACTOR_BITS), Signal(DECAY_FACTOR_BITS)
        m.d.sync += [keep_pre.eq(decay_keep(decay_pre)), keep_post.eq(decay_keep(decay_post))]

        def trace_unit(name):
            unit = SimpleNamespace(old=Signal(T, name=f"{name}_old"),
                                   keep=Signal(DECAY_FACTOR_BITS, name=f"{name}_keep"),
                                   spiked=Signal(name=f"{name}_spiked"), inc=Signal(T, name=f"{name}_inc"),
                                   new=Signal(T, name=f"{name}_new"))
            m.d.comb += unit.new.eq(trace_update(unit.old, None, unit.spiked, unit.inc, T, trace_mode, keep=unit.keep))
            return unit

        post_tr = [trace_unit("post_tr" if long else "tr"), *[trace_unit(f"post_tr{p}") for p in range(1, P)]]
        pre_tr = trace_unit("pre_tr") if long or overlap else post_tr[0]

        if B > 1:
            # The banked potentiation's round (its in-bank column, its lanes per bank) and
            # datapath: R registers the banks' words and the row's product (one multiplier:
            # a_plus * x[k] is the same in every lane), P adds and clamps, Q writes back.
            RB = ceil_log2(NW // B)
            bank_depth = cfg.weight_words // B
            pb = SimpleNamespace(
                on=Signal(name="pot_on"), first=Signal(name="pot_first"),
                round=Signal(max(RB, 1), name="pot_round"),
                masks=[Signal(L, name=f"pot_mask{b}") for b in range(B)],
                addr1=Signal(range(bank_depth), name="pot_addr1"),
                r_valid=Signal(name="pot_r_valid"), r_we=Signal(name="pot_r_we"),
                r_addr=Signal(range(bank_depth), name="pot_r_addr", reset_less=True),
                r_prod=Signal(8 + T, name="pot_r_prod", reset_less=True),
                r_words=[Signal(L * W, name=f"pot_r_word{b}", reset_less=True) for b in range(B)],
                q_valid=Signal(name="pot_q_valid"), q_we=[Signal(name=f"pot_q_we{b}") for b in range(B)],
                q_addr=Signal(range(bank_depth), name="pot_q_addr", reset_less=True),
                q_words=[Signal(L * W, name=f"pot_q_word{b}", reset_less=True) for b in range(B)])

        m.d.comb += self.busy.eq(1)
        with m.FSM(name="core") as core_fsm:
            # ================= idle: host access ==============================
            with m.State("IDLE"):
                m.d.comb += [self.busy.eq(cmd_pending), self.cmd.ready.eq(~cmd_pending)]
                if long:
                    with m.If(self.cmd.valid & ~cmd_pending):
                        m.d.sync += [cmd.eq(self.cmd.payload), cmd_pending.eq(1)]
                with m.If(cmd_execute):
                    if long:
                        m.d.sync += cmd_pending.eq(0)
                    with m.Switch(cmd.op):
                        with m.Case(Op.WRITE):
                            self._host_write(m, cfg, cmd, wr, registers, dirty, cmd_word, lane_onehot, gen)
                            with m.If((cmd.space == Space.RATE) | registers.sizes_written):
                                m.d.sync += rates_zero.eq(0)   # GEN_SKIP's premise no longer known
                        with m.Case(Op.READ):
                            m.d.comb += [
                                rd["w"].addr.eq(cmd.addr), rd["w"].en.eq(1), rd["params"].addr.eq(cmd.addr),
                                rd["state"].addr.eq(cmd.addr), rd["x"].addr.eq(cmd.addr),
                                rd["ppre"].addr.eq(cmd.addr), rd["y"].addr.eq(cmd_word),
                                rd["ppost"].addr.eq(cmd_word), rd["rate"].addr.eq(cmd.addr),
                            ]
                            if counters:
                                m.d.comb += rd["cnt"].addr.eq(cmd.addr)
                            m.d.sync += [rd_space.eq(cmd.space), rd_addr.eq(cmd.addr), lane_sel.eq(cmd_lane)]
                            m.next = "READ_WAIT"
                        with m.Case(Op.RESET_STATE):
                            m.d.sync += [idx.eq(0), gen.eq(registers.seed)]
                            m.next = "CLEAR"
                with m.Elif(~self.cmd.valid & self.step_in.valid):
                    m.next = "RECV"

            with m.State("READ_WAIT"):
                with m.Switch(rd_space):
                    with m.Case(Space.GLOBAL):
                        m.d.comb += registers.read_addr.eq(rd_addr)
                        m.d.sync += rdata_reg.eq(registers.read_data)
                    with m.Case(Space.WEIGHT):
                        m.d.sync += rdata_reg.eq(rd["w"].data)
                    with m.Case(Space.NEURON):
                        m.d.sync += rdata_reg.eq(rd["params"].data.as_value())
                    with m.Case(Space.STATE):
                        m.d.sync += rdata_reg.eq(rd["state"].data.as_value())
                    with m.Case(Space.PRE_TRACE):
                        m.d.sync += rdata_reg.eq(rd["x"].data)
                    with m.Case(Space.POST_TRACE):
                        m.d.sync += rdata_reg.eq(rd["y"].data.word_select(lane_sel[:max(LB, 1)], T))
                    with m.Case(Space.PRE_MASK):
                        m.d.sync += rdata_reg.eq(rd["ppre"].data)
                    with m.Case(Space.POST_MASK):
                        m.d.sync += rdata_reg.eq(rd["ppost"].data.bit_select(lane_sel[:max(LB, 1)], 1))
                    with m.Case(Space.RATE):
                        m.d.sync += rdata_reg.eq(rd["rate"].data)
                    if counters:
                        with m.Case(Space.COUNT):
                            m.d.sync += rdata_reg.eq(rd["cnt"].data)
                m.next = "READ_RESP"

            with m.State("READ_RESP"):
                m.d.comb += self.rdata.valid.eq(1)
                with m.If(self.rdata.ready):
                    m.next = "IDLE"

            # ================= reset of the state (spec section 4) ===========
            with m.State("CLEAR"):
                m.d.comb += [
                    wr["state"].addr.eq(idx), wr["state"].data.eq(0), wr["state"].en.eq(idx < n),
                    wr["x"].addr.eq(idx), wr["x"].data.eq(0), wr["x"].en.eq(1),
                    wr["deliv"].addr.eq(idx), wr["deliv"].data.eq(0), wr["deliv"].en.eq(1),
                    wr["y"].addr.eq(idx), wr["y"].data.eq(0), wr["y"].en.eq(Mux(idx < NW, (1 << L) - 1, 0)),
                ]
                if counters:
                    m.d.comb += [wr["cnt"].addr.eq(idx), wr["cnt"].data.eq(0), wr["cnt"].en.eq(idx < n)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == cfg.sources - 1):
                    m.d.sync += [sp_count.eq(0), wl_count.eq(0), d_count.eq(0), d_even.eq(0), d_odd.eq(0),
                                 dirty.eq(0), steps_done.eq(0)]
                    m.next = "IDLE"

            # ================= 1. the input list ===============================
            with m.State("RECV"):
                m.d.comb += self.step_in.ready.eq(1)
                src = self.step_in.payload.source
                with m.If(self.step_in.valid):
                    with m.If(self.step_in.payload.end):
                        m.d.sync += [probe.eq(self.step_in.payload.probe),
                                     report_inputs.eq(self.step_in.payload.inputs)]
                        m.next = "PREP"
                    with m.Elif(src < m_used):
                        m.d.comb += rd["deliv"].addr.eq(src)
                        m.d.sync += t_idx1.eq(src)
                        m.next = "RECV_CHECK"

            with m.State("RECV_CHECK"):
                with m.If(~rd["deliv"].data):   # not yet in D: append (inputs deduplicated)
                    m.d.comb += [
                        wr["d"].addr.eq(d_count), wr["d"].data.eq(t_idx1), wr["d"].en.eq(1),
                        wr["deliv"].addr.eq(t_idx1), wr["deliv"].data.eq(1), wr["deliv"].en.eq(1),
                    ]
                    m.d.sync += d_count.eq(d_count + 1)
                    if spram:
                        self._append_split(m, cfg, wr["d"], t_idx1, d_even, d_odd)
                m.next = "RECV"

            with m.State("PREP"):
                # Real-time mode: step starts at least `period` cycles apart.
                with m.If(since_start > period):
                    m.d.sync += [since_start.eq(1), idx.eq(0), issuing.eq(m_used != 0), v1.eq(0), v2.eq(0)]
                    if skip_zero_rates:
                        m.d.sync += [all_zero.eq(1), gen_left.eq(m_used)]
                        with m.If(rates_zero):
                            m.next = "GEN_SKIP"
                        with m.Else():
                            m.next = "GEN"
                    else:
                        m.next = "GEN"

            def gen_done():
                """After the generator: D holds U, the host's inputs and the generated ones."""
                m.d.sync += [u_count.eq(d_count), u_even.eq(d_even),
                             idx.eq(0), ent.eq(0), issuing.eq(1), v1.eq(0), v2.eq(0)]
                with m.If(dirty):
                    m.d.sync += sp_count.eq(0)
                    m.next = "REBUILD"
                with m.Else():
                    m.next = "COPY"

            if skip_zero_rates:
                with m.State("GEN_SKIP"):
                    with m.If(gen_left >= GEN_JUMP):
                        m.d.sync += [gen.eq(xorshift32_jump(gen, GEN_JUMP)), gen_left.eq(gen_left - GEN_JUMP)]
                    with m.Elif(gen_left != 0):
                        m.d.sync += [gen.eq(xorshift32(gen)), gen_left.eq(gen_left - 1)]
                    with m.Else():
                        gen_done()

            # ================= 5.0: the generated inputs ========================
            with m.State("GEN"):
                # stage 0: read rate[k] and k's delivered bit, k = 0 .. m_used - 1 in order
                with m.If(issuing):
                    m.d.comb += [rd["rate"].addr.eq(idx), rd["deliv"].addr.eq(idx)]
                    m.d.sync += [idx.eq(idx + 1), t_idx1.eq(idx)]
                    with m.If(idx + 1 >= m_used):
                        m.d.sync += issuing.eq(0)
                m.d.sync += v1.eq(issuing)
                # stage 1 (the long pipeline registers the memories' data first): g advances
                # once per input, whatever its rate; a spike joins D unless the host sent it
                g_valid = Signal(name="g_valid")
                g_idx = Signal.like(t_idx1, name="g_idx", reset_less=True)
                g_rate = Signal(16, name="g_rate", reset_less=True)
                g_deliv = Signal(name="g_deliv", reset_less=True)
                stage([(g_valid, v1), (g_idx, t_idx1), (g_rate, rd["rate"].data), (g_deliv, rd["deliv"].data)])
                gen_next = Signal(32)
                m.d.comb += gen_next.eq(xorshift32(gen))
                with m.If(g_valid):
                    m.d.sync += gen.eq(gen_next)
                    if skip_zero_rates:
                        m.d.sync += all_zero.eq(all_zero & (g_rate == 0))
                    with m.If(gen_fires(gen_next, g_rate) & ~g_deliv):
                        m.d.comb += [
                            wr["d"].addr.eq(d_count), wr["d"].data.eq(g_idx), wr["d"].en.eq(1),
                            wr["deliv"].addr.eq(g_idx), wr["deliv"].data.eq(1), wr["deliv"].en.eq(1),
                        ]
                        m.d.sync += d_count.eq(d_count + 1)
                        if spram:
                            self._append_split(m, cfg, wr["d"], g_idx, d_even, d_odd)
                with m.If(~issuing & ~v1 & ~g_valid):
                    if skip_zero_rates:
                        m.d.sync += rates_zero.eq(all_zero)
                    gen_done()

            # Rebuild the spike list from the s bits after the host wrote state.
            with m.State("REBUILD"):
                with m.If(issuing):
                    m.d.comb += rd["state"].addr.eq(idx)
                    m.d.sync += [idx.eq(idx + 1), t_idx1.eq(idx)]
                    with m.If((idx + 1 >= n_used) | (n_used == 0)):
                        m.d.sync += issuing.eq(0)
                m.d.sync += v1.eq(issuing & (n_used != 0))
                with m.If(v1 & rd["state"].data.s):
                    m.d.comb += [wr["sp"].addr.eq(sp_count), wr["sp"].data.eq(t_idx1), wr["sp"].en.eq(1)]
                    m.d.sync += sp_count.eq(sp_count + 1)
                with m.If(~issuing & ~v1):
                    m.d.sync += [dirty.eq(0), ent.eq(0), issuing.eq(1)]
                    m.next = "COPY"

            # Append last step's spikes, as sources m + j, to D.
            with m.State("COPY"):
                with m.If(issuing & (ent < sp_count)):
                    m.d.comb += rd["sp"].addr.eq(ent)
                    m.d.sync += ent.eq(ent + 1)
                m.d.sync += v1.eq(issuing & (ent < sp_count))
                with m.If(v1):
                    j = rd["sp"].data
                    m.d.comb += [
                        wr["d"].addr.eq(d_count), wr["d"].data.eq(j + M), wr["d"].en.eq(1),
                        wr["deliv"].addr.eq(j + M), wr["deliv"].data.eq(1), wr["deliv"].en.eq(1),
                    ]
                    m.d.sync += d_count.eq(d_count + 1)
                    if spram:
                        self._append_split(m, cfg, wr["d"], j + M, d_even, d_odd)
                with m.If(~(issuing & (ent < sp_count)) & ~v1):
                    # The neuron pass restarts the spike list and the work list.
                    m.d.sync += [idx.eq(0), col.eq(0), issuing.eq(1), v1.eq(0), v2.eq(0),
                                 zero_acc.eq(d_count == 0), sp_count.eq(0), wl_count.eq(0),
                                 nidx.eq(0), n_issuing.eq(1), nv1.eq(0), cols_done.eq(0)]
                    if overlap:
                        m.d.sync += [xidx.eq(first_source()), x_issuing.eq(1), xv1.eq(0)]
                    m.d.sync += [acc.eq(0) for acc in accs]
                    with m.If((d_count == 0) | (nw_used == 0)):
                        m.next = "NEURON"
                    with m.Else():
                        m.next = "ACCUM"

            # ================= 2. accumulation (+ 5.2 depression) ==============
            with m.State("ACCUM"):
                # stage 0: read D[idx] for word column `col`
                if spram:
                    self._accum_issue_split(m, cfg, rd["d"], learn, issuing, v1, col, nw_used, t_col1,
                                            t_last1, d_even, d_odd)
                else:
                    with m.If(issuing):
                        m.d.comb += rd["d"].addr.eq(idx)
                        m.d.sync += [t_col1.eq(col), t_last1.eq(idx == d_count - 1)]
                        with m.If(idx == d_count - 1):
                            m.d.sync += [idx.eq(0), col.eq(col + 1)]
                            with m.If(col == nw_used - 1):
                                m.d.sync += issuing.eq(0)
                        with m.Else():
                            m.d.sync += idx.eq(idx + 1)
                    m.d.sync += v1.eq(issuing)
                # stage 1: read word (d, col), the row's plastic_pre, the column's y and
                # plastic_post; the long pipeline first registers the row (the block RAM
                # output and the address's route to every weight block: 19 ns on the ECP5)
                a_valid = Signal(name="a_valid")
                a_src = Signal(cfg.source_bits, name="a_src", reset_less=True)
                a_col = Signal.like(t_col1, name="a_col", reset_less=True)
                a_last = Signal(name="a_last", reset_less=True)
                stage([(a_valid, v1), (a_src, rd["d"].data), (a_col, t_col1), (a_last, t_last1)])
                waddr1 = word_address(a_src, a_col)
                with m.If(a_valid):
                    m.d.comb += [rd["w"].addr.eq(waddr1), rd["w"].en.eq(1), rd["ppre"].addr.eq(a_src),
                                 acc_rd["y"].addr.eq(a_col), acc_rd["ppost"].addr.eq(a_col)]
                    with m.If(~learn & (a_col == 0)):   # learning off: clear the D bits here
                        m.d.comb += [wr["deliv"].addr.eq(a_src), wr["deliv"].data.eq(0),
                                     wr["deliv"].en.eq(1)]
                m.d.sync += [v2.eq(a_valid), t_col2.eq(a_col), t_last2.eq(a_last), t_waddr2.eq(waddr1)]
                # stage 2 (R of the STDP pipeline): the word into the sums and, depressed,
                # back to the memory (stages P and Q)
                m.d.comb += [syn_valid.eq(v2), syn_acc.eq(1), syn_we.eq(learn & rd["ppre"].data),
                             syn_amplitude.eq(a_minus), syn_depress.eq(1), syn_lanes.eq(acc_rd["ppost"].data)]
                m.d.comb += [syn_traces[l].eq(y) for l, y in enumerate(lanes_of(acc_rd["y"].data, T))]
                with m.If(~issuing & ~v1 & ~a_valid & ~v2 & ~p_valid & ~q_we):
                    m.next = "NEURON"

            # ================= 3, 4, 5.4: the neuron pass ======================
            # (the pass itself is below the FSM: with `overlap` it starts during ACCUM)
            with m.State("NEURON"):
                m.d.comb += neuron_on.eq(1)
                with m.If(n_drained):
                    m.d.sync += [ent.eq(0), idx.eq(first_source())]
                    with m.If(learn):
                        if overlap:     # potentiation trails the pre trace pass (POT_SWEEP)
                            m.next = "POT_FETCH"
                        else:
                            m.d.sync += [xidx.eq(first_source()), x_issuing.eq(1), xv1.eq(0)]
                            m.next = "XPASS"
                    with m.Else():
                        m.next = "OUT_INPUT"

            # ================= 5.1: pre traces =================================
            # (below the FSM too: with `overlap` it runs from ACCUM on, beside potentiation)
            with m.State("XPASS"):
                m.d.comb += xpass_on.eq(1)
                with m.If(x_drained):
                    m.d.sync += ent.eq(0)
                    m.next = "POT_FETCH"

            # ================= 5.3: potentiation ===============================
            if B == 1:
                with m.State("POT_FETCH"):
                    with m.If(ent < wl_count):
                        m.d.comb += rd["wl"].addr.eq(ent)
                        m.next = "POT_LOAD"
                    with m.Elif(x_drained if overlap else C(1, 1)):
                        m.d.sync += ent.eq(0)
                        m.next = "OUT_INPUT"

                with m.State("POT_LOAD"):
                    m.d.sync += [pot_word.eq(rd["wl"].data.word), pot_mask.eq(rd["wl"].data.mask),
                                 idx.eq(first_source()), issuing.eq(1), v1.eq(0)]
                    m.next = "POT_SWEEP"

                with m.State("POT_SWEEP"):
                    waddr0 = word_address(idx, pot_word)
                    if spram:
                        # A read of the bank written this cycle (the word read one cycle
                        # before, three with the long pipeline) waits a cycle. Consecutive
                        # rows alternate banks, so rows 1 and 3 apart do too; only the jump
                        # from the inputs to the neurons (m_used - 1 to m) can repeat a
                        # parity, once per swept word.
                        bank_bit = ceil_log2(NW)
                        go = issuing & ~(q_valid & (idx[0] == q_waddr[bank_bit]))
                    else:
                        go = issuing
                    if overlap:
                        # Row idx's pre trace must be this step's: the pass has written it (it
                        # writes the rows in the sweep's order, one per cycle).
                        go = go & (x_drained | (idx < x_written))
                    with m.If(go):
                        m.d.comb += [rd["w"].addr.eq(waddr0), rd["w"].en.eq(1), pot_x.addr.eq(idx),
                                     rd["ppre"].addr.eq(idx)]
                        m.d.sync += [idx.eq(next_source(idx)), t_waddr2.eq(waddr0)]
                        with m.If(last_source | (n_used == 0) & (idx + 1 >= m_used)):
                            m.d.sync += issuing.eq(0)
                    m.d.sync += v1.eq(go)
                    m.d.comb += [syn_valid.eq(v1), syn_we.eq(rd["ppre"].data), syn_amplitude.eq(a_plus),
                                 syn_depress.eq(0), syn_lanes.eq(pot_mask)]
                    m.d.comb += [trace.eq(pot_x.data) for trace in syn_traces]
                    with m.If(~issuing & ~v1 & ~p_valid & ~q_we):
                        m.d.sync += ent.eq(ent + 1)
                        m.next = "POT_FETCH"

            else:
                # pot_banks > 1: a round takes the work list's entries of one in-bank column
                # (consecutive: the list is in word order), at most one per bank, and sweeps
                # the rows once for all of them, every bank reading the same address.
                with m.State("POT_FETCH"):
                    with m.If(ent < wl_count):
                        m.d.comb += rd["wl"].addr.eq(ent)
                        m.d.sync += [pb.first.eq(1), *[mask.eq(0) for mask in pb.masks]]
                        m.next = "POT_GATHER"
                    with m.Elif(x_drained if overlap else C(1, 1)):
                        m.d.sync += ent.eq(0)
                        m.next = "OUT_INPUT"

                with m.State("POT_GATHER"):
                    entry = rd["wl"].data
                    start = [idx.eq(first_source()), issuing.eq(1), v1.eq(0)]
                    with m.If(pb.first | ((entry.word >> BB) == pb.round)):
                        m.d.sync += [pb.first.eq(0), pb.round.eq(entry.word >> BB), ent.eq(ent + 1)]
                        for b in range(B):
                            with m.If(entry.word[:BB] == b):
                                m.d.sync += pb.masks[b].eq(entry.mask)
                        with m.If(ent + 1 < wl_count):
                            m.d.comb += rd["wl"].addr.eq(ent + 1)
                        with m.Else():
                            m.d.sync += start
                            m.next = "POT_SWEEP"
                    with m.Else():
                        m.d.sync += start
                        m.next = "POT_SWEEP"

                with m.State("POT_SWEEP"):
                    m.d.comb += pb.on.eq(1)
                    addr0 = Cat(pb.round[:RB], idx) if RB else idx
                    go = issuing
                    if overlap:
                        go = go & (x_drained | (idx < x_written))
                    with m.If(go):
                        m.d.comb += [*[rd[f"w{b}"].addr.eq(addr0) for b in range(B)], pot_x.addr.eq(idx),
                                     rd["ppre"].addr.eq(idx)]
                        m.d.sync += [idx.eq(next_source(idx)), pb.addr1.eq(addr0)]
                        with m.If(last_source | (n_used == 0) & (idx + 1 >= m_used)):
                            m.d.sync += issuing.eq(0)
                    m.d.sync += v1.eq(go)
                    with m.If(~issuing & ~v1 & ~pb.r_valid & ~pb.q_valid):
                        m.next = "POT_FETCH"

            # ================= 6. output ======================================
            out = self.step_out.payload
            # The lists go out one record per cycle while the receiver takes them: a record's
            # HOLD state reads the next entry as the receiver takes the current one.
            def u_addr(e):
                """This step's U when asked: the input entries of D (spram: u_even from the
                front, the rest from the back), any order."""
                return Mux(e < u_even, e, cfg.sources - 1 + u_even - e) if spram else e

            with m.State("OUT_INPUT"):
                with m.If(report_inputs & (ent < u_count)):
                    m.d.comb += rd["d"].addr.eq(u_addr(ent))
                    m.next = "OUT_INPUT_HOLD"
                with m.Else():
                    m.d.sync += ent.eq(0)
                    m.next = "OUT_SPIKE"

            with m.State("OUT_INPUT_HOLD"):
                m.d.comb += [self.step_out.valid.eq(1), out.kind.eq(StepEvent.INPUT), out.neuron.eq(rd["d"].data)]
                with m.If(self.step_out.ready):
                    m.d.sync += ent.eq(ent + 1)
                    with m.If(ent + 1 < u_count):
                        m.d.comb += rd["d"].addr.eq(u_addr(ent + 1))
                    with m.Else():
                        m.d.sync += ent.eq(0)
                        m.next = "OUT_SPIKE"
                with m.Else():
                    m.d.comb += rd["d"].en.eq(0)

            with m.State("OUT_SPIKE"):
                with m.If(ent < sp_count):
                    m.d.comb += rd["sp"].addr.eq(ent)
                    m.next = "OUT_SPIKE_HOLD"
                with m.Elif(probe & (n_used != 0)):
                    m.d.sync += ent.eq(0)
                    m.next = "OUT_PROBE"
                with m.Else():
                    m.next = "OUT_END"

            with m.State("OUT_SPIKE_HOLD"):
                m.d.comb += [self.step_out.valid.eq(1), out.kind.eq(StepEvent.SPIKE), out.neuron.eq(rd["sp"].data)]
                with m.If(self.step_out.ready):
                    m.d.sync += ent.eq(ent + 1)
                    with m.If(ent + 1 < sp_count):
                        m.d.comb += rd["sp"].addr.eq(ent + 1)
                    with m.Else():
                        m.next = "OUT_SPIKE"
                with m.Else():
                    m.d.comb += rd["sp"].en.eq(0)

            with m.State("OUT_PROBE"):
                m.d.comb += rd["state"].addr.eq(ent)
                m.d.sync += t_idx1.eq(ent)
                m.next = "OUT_PROBE_HOLD"

            with m.State("OUT_PROBE_HOLD"):
                m.d.comb += [rd["state"].en.eq(0), self.step_out.valid.eq(1),
                             out.kind.eq(StepEvent.PROBE), out.neuron.eq(t_idx1),
                             out.v.eq(rd["state"].data.v), out.i.eq(rd["state"].data.i)]
                with m.If(self.step_out.ready):
                    m.d.sync += ent.eq(ent + 1)
                    with m.If(ent + 1 >= n_used):
                        m.next = "OUT_END"
                    with m.Else():
                        m.next = "OUT_PROBE"

            with m.State("OUT_END"):
                m.d.comb += [self.step_out.valid.eq(1), out.kind.eq(StepEvent.END)]
                with m.If(self.step_out.ready):
                    m.d.sync += [d_count.eq(0), d_even.eq(0), d_odd.eq(0),
                                 steps_done.eq(steps_done + 1), last_cycles.eq(since_start),
                                 wl_count.eq(0)]
                    m.next = "IDLE"

        # ================= 3, 4, 5.4: the neuron pass ============================
        # One neuron per cycle, pipelined. With `overlap` it runs during ACCUM too, where
        # a neuron is issued once the accumulation has written its word column's sums.
        if overlap:
            with m.If(core_fsm.ongoing("ACCUM")):
                m.d.comb += [neuron_on.eq(1), neuron_gate.eq((nidx >> LB) < cols_done)]
                with m.If(learn):
                    m.d.comb += xpass_on.eq(1)
            with m.If((core_fsm.ongoing("NEURON") | core_fsm.ongoing("POT_FETCH") | core_fsm.ongoing("POT_LOAD")
                       | core_fsm.ongoing("POT_SWEEP")) & learn):
                m.d.comb += xpass_on.eq(1)
        # Neurons nidx .. nidx + P - 1 (nidx a multiple of P; one word holds them all).
        (params_rd, state_rd, sp_rd), (params_wr, state_wr, sp_wr) = zip(
            *[banks[name] for name in ("params", "state", "sp")])
        # The issue and the writes wait for the pass (`neuron_on`); the datapath between
        # them runs every cycle, its valid bits 0 outside the pass, so that no FSM state
        # decode stands before the neuron and trace updates' multipliers.
        with m.If(neuron_on & n_issuing & neuron_gate):
            m.d.comb += [rd["acc"].addr.eq(nidx >> LB), rd["y"].addr.eq(nidx >> LB),
                         rd["ppost"].addr.eq(nidx >> LB)]
            m.d.comb += [port.addr.eq(nidx >> PB) for port in (*params_rd, *state_rd)]
            m.d.sync += [nidx.eq(nidx + P), nt_idx1.eq(nidx)]
            with m.If((nidx + P >= n_used) | (n_used == 0)):
                m.d.sync += n_issuing.eq(0)
        m.d.sync += nv1.eq(neuron_on & n_issuing & neuron_gate & (n_used != 0))
        # stage 1: the memories' data (registered once more in the long pipeline)
        # into the first half of the neuron updates
        lane1 = nt_idx1[:LB] if LB else C(0, 1)
        n_valid = Signal(name="n_valid")
        n_idx = Signal.like(nt_idx1, name="n_idx", reset_less=True)
        stage([(n_valid, nv1), (n_idx, nt_idx1)])
        tags = [n_valid, n_idx]
        for p, unit in enumerate(neurons):
            a = rd["acc"].data.word_select(lane1 + p, A).as_signed()
            n_used_p = Signal(name=f"n_used{p}", reset_less=True)     # neuron nidx + p is used
            n_params = Signal(cfg.neuron_params_layout, name=f"n_params{p}", reset_less=True)
            n_state = Signal(cfg.neuron_state_layout, name=f"n_state{p}", reset_less=True)
            n_a = Signal(signed(A), name=f"n_a{p}", reset_less=True)
            n_y = Signal(T, name=f"n_y{p}", reset_less=True)
            n_post_plastic = Signal(name=f"n_post_plastic{p}", reset_less=True)
            stage([(n_used_p, nt_idx1 + p < n_used), (n_params, params_rd[p].data), (n_state, state_rd[p].data),
                   (n_a, Mux(zero_acc, 0, a)), (n_y, rd["y"].data.word_select(lane1 + p, T)),
                   (n_post_plastic, rd["ppost"].data.bit_select(lane1 + p, 1))])
            m.d.comb += [unit.params.eq(n_params), unit.state.eq(n_state), unit.a.eq(n_a)]
            tags += [n_used_p, n_y, n_post_plastic]
        # The neurons' tags follow them through the updates' `latency` registers.
        in_update = []     # valid bits of the update's inner stages
        for depth in range(1, neurons[0].latency):
            later = [Signal.like(tag, name=f"{tag.name}_u{depth}", reset_less=tag is not n_valid)
                     for tag in tags]
            m.d.sync += [dst.eq(src) for dst, src in zip(later, tags)]
            tags = later
            in_update.append(later[0])
        final = [Signal.like(tag, name=f"{tag.name}_w", reset_less=tag is not n_valid) for tag in tags[1:]]
        m.d.sync += [nv2.eq(tags[0]), *[dst.eq(src) for dst, src in zip(final, tags[1:])]]
        nt_idx2 = final[0]
        # stage 2: the neurons' new states and spikes; the writes
        lane = nt_idx2[:LB] if LB else C(0, 1)
        word = nt_idx2 >> LB
        y_new, fired, plastic_fired = [], [], []
        for p, unit in enumerate(neurons):
            used_p, y_old, post_plastic = final[1 + 3 * p:4 + 3 * p]
            tr = post_tr[p]
            m.d.comb += [tr.old.eq(y_old), tr.keep.eq(keep_post), tr.spiked.eq(unit.spike), tr.inc.eq(inc_post)]
            y_new.append(tr.new)
            fired.append(nv2 & used_p & unit.spike)
            plastic_fired.append(unit.spike & post_plastic & learn & used_p)
            with m.If(nv2 & used_p):
                m.d.comb += [state_wr[p].addr.eq(nt_idx2 >> PB), state_wr[p].data.eq(unit.new_state),
                             state_wr[p].en.eq(1)]
        if counters:
            # The spike counters, off the neuron pass's issue path: a spiking neuron's counter
            # is read as its state is written (the address from registers) and written back
            # plus one in the next cycle; consecutive neurons have other addresses.
            cnt_rd, cnt_wr = banks["cnt"]
            for p, unit in enumerate(neurons):
                c_valid = Signal(name=f"cnt_valid{p}")
                c_addr = Signal.like(cnt_wr[p].addr, name=f"cnt_addr{p}", reset_less=True)
                with m.If(nv2):
                    m.d.comb += cnt_rd[p].addr.eq(nt_idx2 >> PB)
                m.d.sync += [c_valid.eq(nv2 & final[1 + 3 * p] & unit.spike), c_addr.eq(nt_idx2 >> PB)]
                with m.If(c_valid):
                    m.d.comb += [cnt_wr[p].addr.eq(c_addr), cnt_wr[p].data.eq(cnt_rd[p].data + 1),
                                 cnt_wr[p].en.eq(1)]
        with m.If(nv2):
            with m.If(learn):
                used = Cat(*[final[1 + 3 * p] for p in range(P)])
                m.d.comb += [wr["y"].addr.eq(word), wr["y"].data.eq(Cat(*y_new).replicate(L // P)),
                             wr["y"].en.eq(used << lane)]
            # The spikes go to list entries sp_count, sp_count + 1 ... in neuron order:
            # entry e in bank e mod P (consecutive entries in different banks).
            position = sp_count
            for p in range(P):
                bank = position[:PB] if PB else C(0, 1)
                for b in range(P):
                    with m.If(fired[p] & (bank == b)):
                        m.d.comb += [sp_wr[b].addr.eq(position >> PB), sp_wr[b].data.eq(nt_idx2 + p),
                                     sp_wr[b].en.eq(1)]
                position = position + fired[p]
            m.d.sync += sp_count.eq(position)
            new_mask = mask_acc | (Cat(*plastic_fired) << lane)
            with m.If((lane + P - 1 == L - 1) | (nt_idx2 + P >= n_used)):
                with m.If(new_mask != 0):
                    m.d.comb += [wr["wl"].addr.eq(wl_count), wr["wl"].data.word.eq(word),
                                 wr["wl"].data.mask.eq(new_mask), wr["wl"].en.eq(1)]
                    m.d.sync += wl_count.eq(wl_count + 1)
                m.d.sync += mask_acc.eq(0)
            with m.Else():
                m.d.sync += mask_acc.eq(new_mask)
        m.d.comb += n_drained.eq(~n_issuing & ~nv1 & ~n_valid & ~Cat(*in_update).any() & ~nv2)

        # ================= 5.1: pre traces ========================================
        # One source per cycle. With `overlap` it runs from the start of ACCUM.
        x_last = (xidx == M + n_used - 1)
        with m.If(xpass_on & x_issuing):
            m.d.comb += [rd["x"].addr.eq(xidx), rd["deliv"].addr.eq(xidx)]
            m.d.sync += [xidx.eq(next_source(xidx)), xt_idx1.eq(xidx)]
            with m.If(x_last | (n_used == 0) & (xidx + 1 >= m_used)):
                m.d.sync += x_issuing.eq(0)
        m.d.sync += xv1.eq(xpass_on & x_issuing & ((m_used != 0) | (n_used != 0)))
        # The long pipeline registers the trace and the delivered bit before the
        # trace update (block RAM output, shift, add, saturation and the write
        # data's route back: 22 ns on the ECP5 without).
        x_valid = Signal(name="x_valid")
        x_idx = Signal.like(xt_idx1, name="x_idx", reset_less=True)
        x_old = Signal(T, name="x_old", reset_less=True)
        x_deliv = Signal(name="x_deliv", reset_less=True)
        stage([(x_valid, xv1), (x_idx, xt_idx1), (x_old, rd["x"].data), (x_deliv, rd["deliv"].data)])
        # A trace update of its own takes its inputs every cycle; one shared with the neuron
        # pass (the short pipeline without overlap) only during the pass.
        with m.If(C(1, 1) if pre_tr is not post_tr[0] else xpass_on):
            m.d.comb += [pre_tr.old.eq(x_old), pre_tr.keep.eq(keep_pre), pre_tr.spiked.eq(x_deliv),
                         pre_tr.inc.eq(inc_pre)]
        with m.If(x_valid):
            m.d.comb += [
                wr["x"].addr.eq(x_idx), wr["x"].en.eq(1), wr["x"].data.eq(pre_tr.new),
                wr["deliv"].addr.eq(x_idx), wr["deliv"].data.eq(0), wr["deliv"].en.eq(1),
            ]
        m.d.comb += [x_drained.eq(~x_issuing & ~xv1 & ~x_valid), x_written.eq(Mux(x_valid, x_idx, 0))]

        if B > 1:
            # ================= 5.3 with banked weights: the datapath ==================
            issued = v1 & pb.on
            stage([(pb.r_valid, issued), (pb.r_we, issued & rd["ppre"].data), (pb.r_addr, pb.addr1),
                   (pb.r_prod, stdp_product(a_plus, pot_x.data)),
                   *[(pb.r_words[b], rd[f"w{b}"].data) for b in range(B)]])
            stage([(pb.q_valid, pb.r_valid), (pb.q_addr, pb.r_addr),
                   *[(pb.q_we[b], pb.r_we & pb.masks[b].any()) for b in range(B)],
                   *[(pb.q_words[b], Cat(*[Mux(pb.masks[b][l], stdp_apply(w, pb.r_prod, stdp_shift, C(0, 1),
                                                                            w_min, w_max, W), w)
                                           for l, w in enumerate(x.as_signed() for x in lanes_of(pb.r_words[b], W))]))
                     for b in range(B)]])
            for b in range(B):
                with m.If(pb.q_we[b]):
                    m.d.comb += [wr[f"w{b}"].addr.eq(pb.q_addr), wr[f"w{b}"].data.eq(pb.q_words[b]),
                                 wr[f"w{b}"].en.eq(1)]

        return m

    @staticmethod
    def _banked_view(m, name, shape, depth, PB, bank_rd, bank_wr):
        """One memory of `depth` entries over the banks of a banked memory (entry e in bank
        e mod 2^PB, at e >> PB): a read port and a write port like those of the other
        memories (`addr`, `data`, `en`). Statements after these on the banks' own ports
        (the neuron pass's) take precedence."""
        rd = SimpleNamespace(addr=Signal(range(depth), name=f"{name}_view_raddr"),
                             en=Signal(init=1, name=f"{name}_view_ren"), data=Signal(shape, name=f"{name}_view_rdata"))
        wr = SimpleNamespace(addr=Signal(range(depth), name=f"{name}_view_waddr"), en=Signal(name=f"{name}_view_wen"),
                             data=Signal(shape, name=f"{name}_view_wdata"))
        sel = Signal(PB, name=f"{name}_view_sel")
        with m.If(rd.en):
            m.d.sync += sel.eq(rd.addr[:PB])
        for b, (r, w) in enumerate(zip(bank_rd, bank_wr)):
            m.d.comb += [r.addr.eq(rd.addr >> PB), r.en.eq(rd.en),
                         w.addr.eq(wr.addr >> PB), w.data.eq(wr.data), w.en.eq(wr.en & (wr.addr[:PB] == b))]
        assert len(bank_rd) == 2
        m.d.comb += rd.data.eq(Mux(sel, Value.cast(bank_rd[1].data), Value.cast(bank_rd[0].data)))
        return rd, wr

    @staticmethod
    def _append_split(m, cfg, wr_d, row, d_even, d_odd):
        """spram: put row `row` into D, even rows from the front, odd rows from the back."""
        m.d.comb += wr_d.addr.eq(Mux(row[0], cfg.sources - 1 - d_odd, d_even))
        with m.If(row[0]):
            m.d.sync += d_odd.eq(d_odd + 1)
        with m.Else():
            m.d.sync += d_even.eq(d_even + 1)

    @staticmethod
    def _accum_issue_split(m, cfg, rd_d, learn, issuing, v1, col, nw_used, t_col1, t_last1, d_even, d_odd):
        """spram, ACCUM stage 0: pick the next delivered row of column `col`.

        With learning on, a word read in stage 1 is written back (depressed) in
        stage 2, one cycle later, while stage 1 reads the next word: consecutive
        reads must go to different banks (row parities), so the picks alternate
        between the even and the odd rows of D, with a bubble when only one
        parity is left. A column costs about 2 * max(even, odd) - 1 cycles instead
        of even + odd. With learning off nothing is written and nothing waits.
        """
        ie = Signal(range(cfg.sources + 1))     # even rows of D taken in this column
        io = Signal(range(cfg.sources + 1))     # odd rows taken
        last_odd = Signal()                     # the last pick was an odd row
        last_valid = Signal()                   # the last cycle picked a row at all
        ok_e = (ie < d_even) & ~(learn & last_valid & ~last_odd)
        ok_o = (io < d_odd) & ~(learn & last_valid & last_odd)
        pick_o = Signal()
        pick_e = Signal()
        m.d.comb += [pick_o.eq(ok_o & (~ok_e | (last_valid & ~last_odd))), pick_e.eq(ok_e & ~pick_o)]
        ie_next = ie + pick_e
        io_next = io + pick_o
        col_done = (ie_next == d_even) & (io_next == d_odd)
        with m.If(issuing):
            m.d.comb += rd_d.addr.eq(Mux(pick_o, cfg.sources - 1 - io, ie))
            m.d.sync += [t_col1.eq(col), t_last1.eq(col_done), last_valid.eq(pick_e | pick_o),
                         last_odd.eq(pick_o)]
            with m.If(col_done):
                m.d.sync += [ie.eq(0), io.eq(0), col.eq(col + 1)]
                with m.If(col == nw_used - 1):
                    m.d.sync += issuing.eq(0)
            with m.Else():
                m.d.sync += [ie.eq(ie_next), io.eq(io_next)]
        with m.Else():
            m.d.sync += last_valid.eq(0)
        m.d.sync += v1.eq(issuing & (pick_e | pick_o))

    @staticmethod
    def _host_write(m, cfg, cmd, wr, registers, dirty, cmd_word, lane_onehot, gen):
        L, T = cfg.lanes, cfg.T
        addr, payload = cmd.addr, cmd.data
        m.d.comb += [registers.write_addr.eq(addr), registers.write_data.eq(payload)]
        with m.Switch(cmd.space):
            with m.Case(Space.GLOBAL):
                m.d.comb += registers.write.eq(1)
                with m.If(registers.sizes_written):   # n_used or m_used: the spike list must be rebuilt
                    m.d.sync += dirty.eq(1)
                with m.If(registers.seed_written):    # a new seed also sets g (spec section 4)
                    m.d.sync += gen.eq(payload[:32])
            with m.Case(Space.WEIGHT):   # address and data: see the weight write port
                m.d.comb += wr["w"].en.eq(addr < cfg.weight_words)
            with m.Case(Space.NEURON):
                m.d.comb += [wr["params"].addr.eq(addr), wr["params"].data.eq(payload),
                             wr["params"].en.eq(addr < cfg.n)]
            with m.Case(Space.STATE):
                m.d.comb += [wr["state"].addr.eq(addr), wr["state"].data.eq(payload),
                             wr["state"].en.eq(addr < cfg.n)]
                m.d.sync += dirty.eq(1)
            with m.Case(Space.PRE_TRACE):
                m.d.comb += [wr["x"].addr.eq(addr), wr["x"].data.eq(payload),
                             wr["x"].en.eq(addr < cfg.sources)]
            with m.Case(Space.POST_TRACE):
                m.d.comb += [wr["y"].addr.eq(cmd_word), wr["y"].data.eq(payload[:T].replicate(L)),
                             wr["y"].en.eq(Mux(addr < cfg.n, lane_onehot, 0))]
            with m.Case(Space.PRE_MASK):
                m.d.comb += [wr["ppre"].addr.eq(addr), wr["ppre"].data.eq(payload[0]),
                             wr["ppre"].en.eq(addr < cfg.sources)]
            with m.Case(Space.POST_MASK):
                m.d.comb += [wr["ppost"].addr.eq(cmd_word), wr["ppost"].data.eq(payload[0].replicate(L)),
                             wr["ppost"].en.eq(Mux(addr < cfg.n, lane_onehot, 0))]
            with m.Case(Space.RATE):
                m.d.comb += [wr["rate"].addr.eq(addr), wr["rate"].data.eq(payload[:16]),
                             wr["rate"].en.eq(addr < cfg.m)]
            if cfg.spike_counters:
                with m.Case(Space.COUNT):
                    m.d.comb += [wr["cnt"].addr.eq(addr), wr["cnt"].data.eq(payload[:SPIKE_COUNT_BITS]),
                                 wr["cnt"].en.eq(addr < cfg.n)]
