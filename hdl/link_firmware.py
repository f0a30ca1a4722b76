"""The link's firmware: one routine per command, for the controller of hdl/mcu.py.

`link_program(config, hello, probe_chunk)` returns the `Assembler` with the whole
program; `Link` (hdl/link.py) runs it on `MCU`, `link_firmware` (hdl/mcu_sim.py)
on the instruction-set simulator, which also disassembles it and prints its
labelled listing (`python -m neurofabric.hdl.mcu_sim --listing`).

The program is laid out in parts, in this order (`_PARTS`): the shared routines,
the main loop with its dispatch, then a routine per command (HELLO, ECHO,
STATUS, RESET_STATE, SET_RECORD, the memory commands, RUN with its feed,
service, record and probe routines). `_layout` lays out the data RAM and gives
every part the same namespace of variable addresses and sizes; `_macros` adds the
instruction sequences used as one (16-bit increments and comparisons, sending
bytes). The ports are those of hdl/link_ports.py; docs/protocol.md says what each
command does.
"""

from types import SimpleNamespace

from neurofabric.contract.errors import BuildError
from neurofabric.contract.protocol import (
    BLOCK_MAX_STEPS, MAX_PAYLOAD, REPLY_FLAG, RUN_REPLY_FIELDS, SPIKE_ADDRESS_BYTES, STATUS_REPLY_FIELDS,
    STEP_BLOCK_FIELDS, Command, RunFlags, SpikeFormat, Status, fields_size, memory_tables, probe_value_bytes,
)
from .core_ports import CoreConfig, Op, Reg, Space, StepEvent
from .link_ports import (
    _BIG_DATA_DEPTH, _DATA_DEPTH, _F_CORE_BUSY, _F_HELD, _F_NACK, _F_RX_LAST, _F_RXH, _F_STEP_OUT, _F_STIM_END,
    _MAX_WORD_BYTES, _MEMORY_BASE, _MEMORY_REQUEST_SIZE, _PROBE_HEAD_SIZE, _RUN_REQUEST_SIZE, _SPACE_BITS,
    _SPIKE_HEAD_SIZE, TABLE_SPACES, _R, _W, every_neuron_mask,
)
from .mcu import PORT_BASE, X, Assembler

__all__ = ["link_program"]


def _layout(config, hello, probe_chunk):
    """The assembler with the firmware's data RAM laid out, and a namespace of its variables'
    addresses and the sizes the routines use."""
    n, M = config.n, config.m
    shape = config.shape
    bitmap_n = (n + 7) // 8
    bitmap_m = (M + 7) // 8
    value_bytes = probe_value_bytes(config.S)
    assert SPIKE_ADDRESS_BYTES == 2 and _SPIKE_HEAD_SIZE == 5 and _PROBE_HEAD_SIZE == 8
    assert int(Status.OK) == 0 and int(SpikeFormat.BITMAP) == 0 and StepEvent.SPIKE.value == 0

    a = Assembler(data_depth=_DATA_DEPTH)

    def P(port):
        return PORT_BASE + port

    def var(name, size=1, init=None):
        return a.var(name, size, init)

    # ---- data RAM ----
    h_cmd, h_seq, h_len = var("h_cmd"), var("h_seq"), var("h_len", 2)
    tlen = var("tlen", 2)                               # the reply's payload length
    status = var("status")
    last_valid, last_cmd = var("last_valid"), var("last_cmd")
    last_seq, last_status = var("last_seq"), var("last_status")
    running = var("running")
    k, cnt, tmp = var("k"), var("cnt"), var("tmp", 2)
    req = var("req", _MEMORY_REQUEST_SIZE)              # table, address (4), count (2)
    t_space, t_wb, ti = var("t_space"), var("t_wb"), var("ti")
    size = var("size", 3)
    end = var("end", 3)
    steps, probe, dec, run_seq, pending = var("steps", 2), var("probe"), var("dec"), var("run_seq"), var("pending")
    rec, kk, lo = var("rec", 2), var("kk", 2), var("lo")
    n_used, spikes, first, left = var("n_used", 2), var("spikes", 2), var("first", 2), var("left", 2)
    j8 = var("j8", 2)
    # The RUN's flags as STEP_END takes them, the INPUTS bit alone, and whether this
    # step's INPUT_RECORD is still to be sent.
    end_flags, want_inputs, inputs_due = var("end_flags"), var("want_inputs"), var("inputs_due")
    # What `record` sends: the frame's command, the bitmap's bytes, the most indices
    # sent as an address list + 1 (0: never), a bitmap record's length, what the
    # step field is less than steps_done.
    r_cmd, r_bytes, r_list, r_len, r_dec = var("r_cmd"), var("r_bytes"), var("r_list"), var("r_len", 2), var("r_dec")
    # steps_done and step_cycles, as the core's registers of those names hold them: read
    # whenever they change (the firmware takes a step's END, or resets the state).
    progress = var("progress", 8)
    hello_at = var("hello", len(hello), hello)
    masks = var("masks", 8, [1 << i for i in range(8)])
    # The table of tables: 8 bytes per (family, table < 4): space | 0x80 when it exists (the
    # core has it: not spike_counts without its counters), word bytes, depth.
    infos = [0] * (8 * 16)
    for info in memory_tables(shape):
        if info.name == "spike_counts" and not config.spike_counters:
            continue                        # absent: a request for it is BAD_ADDRESS
        if info.depth >= 1 << 24:
            raise BuildError(f"table {info.name} has {info.depth} words; the link addresses at most 2**24")
        if info.word_bytes > _MAX_WORD_BYTES:
            raise BuildError(f"table {info.name}: a word of {info.word_bytes} bytes is more than the link's "
                             f"{_MAX_WORD_BYTES}")
        entry = 8 * (4 * info.family + info.table)
        infos[entry:entry + 5] = [0x80 | TABLE_SPACES[info.name].value, info.word_bytes,
                                  *info.depth.to_bytes(3, "little")]
    table_info = var("table_info", len(infos), infos)
    # A step's spikes, or before them its inputs (`spikes` counts either).
    bitmap = var("bitmap", max(bitmap_n, bitmap_m))
    # The neurons a RUN with SUBSET records (SET_RECORD; every neuron at first), whether
    # this RUN has SUBSET and GENERATED, and whether the record being collected is
    # a step's spikes under SUBSET (the mask applies) rather than its inputs.
    subset, generated, masked = var("subset"), var("generated"), var("masked")
    quiet = var("quiet")            # RunFlags.NO_RECORDS of this RUN (the bit itself, or 0)
    # RunFlags.BLOCKS of this RUN; the steps still to send in the open STEP_BLOCK (0: none
    # open), the most steps a block holds, its bitmap bytes per step, a full block's
    # payload length, a 16-bit scratch (room, then steps left or a length), a counter.
    blocks, blk_left, blk_max, blk_bytes = var("blocks"), var("blk_left"), var("blk_max"), var("blk_bytes")
    blk_len, blk_acc, blk_cnt = var("blk_len", 2), var("blk_acc", 2), var("blk_cnt")
    # The bytes of rmask up to its last nonzero one (an address list of a SUBSET record
    # only looks at those), and the bytes `record` looks at for a list.
    rmask_end, r_end = var("rmask_end", 1, [bitmap_n]), var("r_end")
    if a.data_depth < len(a.data()) + bitmap_n:
        a.data_depth = _BIG_DATA_DEPTH      # a large core: the data RAM of two block RAMs
    rmask = var("rmask", bitmap_n, every_neuron_mask(n))
    return a, SimpleNamespace(
        M=M, P=P, bitmap=bitmap, bitmap_m=bitmap_m, bitmap_n=bitmap_n, cnt=cnt, dec=dec, end=end, end_flags=end_flags,
        first=first, generated=generated, h_cmd=h_cmd, h_len=h_len, h_seq=h_seq, hello_at=hello_at,
        inputs_due=inputs_due, j8=j8, k=k, kk=kk, last_cmd=last_cmd, last_seq=last_seq,
        last_status=last_status, last_valid=last_valid, left=left, lo=lo, masked=masked, masks=masks, n=n,
        n_used=n_used, pending=pending, probe=probe, progress=progress, r_bytes=r_bytes, r_cmd=r_cmd,
        r_dec=r_dec, r_end=r_end, r_len=r_len, r_list=r_list, rec=rec, req=req, rmask=rmask,
        rmask_end=rmask_end, run_seq=run_seq, running=running, shape=shape, size=size, spikes=spikes,
        status=status, steps=steps, subset=subset, t_space=t_space, t_wb=t_wb, table_info=table_info, ti=ti,
        tlen=tlen, tmp=tmp, value_bytes=value_bytes, want_inputs=want_inputs, config=config, hello=hello,
        probe_chunk=probe_chunk, quiet=quiet, blocks=blocks, blk_left=blk_left, blk_max=blk_max,
        blk_bytes=blk_bytes, blk_len=blk_len, blk_acc=blk_acc, blk_cnt=blk_cnt)


def _macros(a, v):
    """Instruction sequences the routines use as one (16-bit arithmetic, sending bytes),
    added to `v`."""
    P, tlen = v.P, v.tlen

    def inc16(v):
        a.ldx(v); a.call("inc16")

    def dec16(v):
        a.ldx(v); a.call("dec16")

    def jne16(x, y, label):
        a.ld(x); a.cmp(y); a.jnz(label); a.ld(x + 1); a.cmp(y + 1); a.jnz(label)

    def send(*values):
        """Send bytes: ints are immediates, 1-tuples variable addresses."""
        for value in values:
            if isinstance(value, tuple):
                a.ld(value[0])
            else:
                a.ldi(value)
            a.st(P(_W.TX))

    def set_tlen(length):
        a.ldi(length & 0xFF); a.st(tlen); a.ldi(length >> 8); a.st(tlen + 1)

    v.inc16, v.dec16, v.jne16, v.send, v.set_tlen = inc16, dec16, jne16, send, set_tlen


def _routines(a, v):
    """The shared routines: replies, 16-bit counters, the remembered request, headers, NACKs,
    blocks, the core's progress registers and the STATUS reply."""
    (P, h_cmd, h_len, h_seq, k, last_cmd, last_seq, last_status, last_valid, lo, progress, running, send, set_tlen,
     status, tlen, tmp) = (
        v.P, v.h_cmd, v.h_len, v.h_seq, v.k, v.last_cmd, v.last_seq, v.last_status, v.last_valid, v.lo, v.progress,
        v.running, v.send, v.set_tlen, v.status, v.tlen, v.tmp)
    # reply_status: a reply of the status byte alone (header from the request).
    # reply_hdr: the same with the payload length in tlen: header, then the status byte.
    a.jmp("start")
    a.label("reply_status")
    set_tlen(1)
    a.label("reply_hdr")
    a.ld(h_cmd); a.ori(REPLY_FLAG); a.st(P(_W.TX))
    send((h_seq,), (tlen,), (tlen + 1,), (status,))
    a.ret()

    a.label("inc16")                # the 16-bit variable at X + 1
    a.ld(X); a.addi(1); a.st(X); a.ld(X + 1); a.adci(0); a.st(X + 1); a.ret()
    a.label("dec16")                # the 16-bit variable at X - 1
    a.ld(X); a.subi(1); a.st(X); a.ld(X + 1); a.sbci(0); a.st(X + 1); a.ret()

    a.label("remember")
    a.ldi(1); a.st(last_valid); a.ld(h_cmd); a.st(last_cmd); a.ld(h_seq); a.st(last_seq)
    a.ld(status); a.st(last_status); a.ret()

    a.label("take_header")          # the latched header (released with RXH_ACK when done)
    for i, v in enumerate((h_cmd, h_seq, h_len, h_len + 1)):
        a.ld(P(_R.RXH + i)); a.st(v)
    a.ret()

    a.label("discard")              # the rest of the request's payload
    a.st(P(_W.DISCARD)); a.ret()

    a.label("send_nack")            # NACK, seq 0, the latest refusal's status
    a.st(P(_W.NACK_CLEAR)); a.ld(P(_R.NACK)); a.st(status)
    send(Command.NACK | REPLY_FLAG, 0, 1, 0, (status,))
    a.ret()

    a.label("send_block")           # A bytes (1 .. 255) from X on
    a.st(k)
    a.label("send_block_loop")
    a.ld(X); a.st(P(_W.TX)); a.inx(); a.ld(k); a.subi(1); a.st(k); a.jnz("send_block_loop")
    a.ret()

    # progress: the copies of steps_done and step_cycles, read from the core (idle).
    a.label("progress")
    a.ldi(0); a.st(P(_W.ADDR + 1)); a.st(P(_W.ADDR + 2))
    for offset, register in ((0, Reg.STEPS_DONE), (4, Reg.LAST_STEP_CYCLES)):
        a.ldi(register.value); a.st(P(_W.ADDR)); a.ldi(Op.READ.value | Space.GLOBAL.value << 2); a.st(P(_W.CMD))
        for i in range(4):
            a.ld(P(_R.RDATA + i)); a.st(progress + offset + i)
        a.st(P(_W.RDATA_ACK))
    a.ret()

    # STATUS: OK, running, then the fields (and lost_records = 0). Every field goes out as
    # one value: the copies of steps_done and step_cycles only change when the firmware
    # takes a step's END, never while it answers; an error counter (which only counts up)
    # is read high byte, low byte, high byte again, and again while the high byte moved.
    a.label("status_reply")          # (its header inline: it is called two calls deep)
    a.ld(h_cmd); a.ori(REPLY_FLAG); a.st(P(_W.TX))
    send((h_seq,), 1 + fields_size(STATUS_REPLY_FIELDS), 0, Status.OK, (running,))
    send(*[(progress + i,) for i in range(4)])
    a.ldx(_R.COUNTERS)
    a.label("status_counter")
    a.ld(PORT_BASE + 1 + X); a.st(tmp); a.ld(PORT_BASE + X); a.st(lo)
    a.ld(PORT_BASE + 1 + X); a.cmp(tmp); a.jnz("status_counter")
    a.ld(lo); a.st(P(_W.TX)); a.ld(tmp); a.st(P(_W.TX))
    a.inx(); a.inx(); a.txa(); a.cmpi(_R.COUNTERS + 10); a.jnz("status_counter")
    send(*[(progress + 4 + i,) for i in range(4)], 0, 0)
    a.ret()


def _main_loop(a, v):
    """The main loop: wait for a request or a NACK, answer retries, dispatch by command, refuse."""
    (P, h_cmd, h_len, h_seq, last_cmd, last_seq, last_status, last_valid, status) = (
        v.P, v.h_cmd, v.h_len, v.h_seq, v.last_cmd, v.last_seq, v.last_status, v.last_valid, v.status)
    # ---- the main loop ----
    a.label("next")                 # done with the request: release its header
    a.st(P(_W.RXH_ACK))
    a.label("start")
    a.call("progress")
    a.label("main", top_level=True)
    a.ldi(1); a.st(P(_W.IDLE))
    a.label("wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH | _F_NACK); a.jz("wait")
    a.ldi(0); a.st(P(_W.IDLE))
    a.ld(P(_R.FLAGS)); a.andi(_F_NACK); a.jz("request")
    a.call("send_nack"); a.jmp("main")

    a.label("request")
    a.call("take_header")
    # A request that came during a RUN (its payload was not kept): as during the RUN.
    a.ld(P(_R.FLAGS)); a.andi(_F_HELD); a.jz("request_now")
    a.call("answer_in_run"); a.jmp("main")
    a.label("request_now")
    # A retry: the same command and seq as the last answered request, a write, RESET_STATE or RUN.
    a.ld(last_valid); a.jz("fresh")
    a.ld(last_cmd); a.cmp(h_cmd); a.jnz("fresh")
    a.ld(last_seq); a.cmp(h_seq); a.jnz("fresh")
    a.ld(h_cmd); a.cmpi(Command.RESET_STATE); a.jz("retry"); a.cmpi(Command.RUN); a.jz("retry")
    a.andi(0xF9); a.cmpi(_MEMORY_BASE); a.jnz("fresh")             # the writes: 0x10, 0x12, 0x14, 0x16
    a.label("retry")                # answered again, nothing applied
    a.call("discard")
    a.ld(last_status); a.st(status)
    a.jnz("retry_status")
    a.ld(h_cmd); a.cmpi(Command.RUN); a.jnz("retry_status")
    a.call("run_reply"); a.jmp("next")
    a.label("retry_status")
    a.call("reply_status"); a.jmp("next")

    a.label("fresh")
    a.ld(h_cmd)
    for command, label in ((Command.HELLO, "c_hello"), (Command.ECHO, "c_echo"), (Command.STATUS, "c_status"),
                           (Command.RESET_STATE, "c_reset"), (Command.SET_RECORD, "c_record"),
                           (Command.RUN, "c_run")):
        a.cmpi(command); a.jz(label)
    a.andi(0xF8); a.cmpi(_MEMORY_BASE); a.jz("c_memory")
    a.ldi(Status.UNKNOWN_COMMAND); a.jmp("refuse")

    for code in (Status.BAD_LENGTH, Status.BAD_ADDRESS, Status.OVERFLOW, Status.BAD_VALUE):
        a.label(f"refuse_{code.name.lower()}")
        a.ldi(code); a.jmp("refuse")
    a.label("refuse")               # the status alone, once the payload is consumed; remembered
    a.st(status); a.call("discard")
    a.label("answer")
    a.call("reply_status")
    a.label("done")
    a.call("remember"); a.jmp("next")

    a.label("empty_only")           # Z: the payload is empty, else BAD_LENGTH
    a.ld(h_len); a.or_(h_len + 1); a.jnz("refuse_bad_length"); a.ret()


def _c_hello(a, v):
    """HELLO."""
    hello, hello_at, last_valid, set_tlen, status = v.hello, v.hello_at, v.last_valid, v.set_tlen, v.status
    # HELLO: the constant reply; forgets the remembered request.
    a.label("c_hello")
    a.call("empty_only")
    set_tlen(1 + len(hello)); a.st(status); a.call("reply_hdr")
    a.ldx(hello_at); a.ldi(len(hello)); a.call("send_block")
    a.ldi(0); a.st(last_valid); a.jmp("next")


def _c_echo(a, v):
    """ECHO."""
    P, h_len, status, tlen = v.P, v.h_len, v.status, v.tlen
    # ECHO: the payload straight back (OVERFLOW from 1024 bytes on).
    a.label("c_echo")
    a.ld(h_len + 1); a.cmpi(MAX_PAYLOAD >> 8); a.jc("refuse_overflow")
    assert MAX_PAYLOAD & 0xFF == 0
    a.ld(h_len); a.addi(1); a.st(tlen); a.ld(h_len + 1); a.adci(0); a.st(tlen + 1)
    a.ldi(Status.OK); a.st(status); a.call("reply_hdr")
    a.label("echo_loop")
    a.ld(P(_R.FLAGS)); a.andi(_F_RX_LAST); a.jnz("done")
    a.ld(P(_R.RX)); a.st(P(_W.TX)); a.jmp("echo_loop")


def _c_status(a, v):
    """STATUS."""
    a.label("c_status")
    a.call("empty_only"); a.call("status_reply"); a.jmp("done")


def _c_reset(a, v):
    """RESET_STATE."""
    P, status = v.P, v.status
    # RESET_STATE: answered once the core has cleared the state.
    a.label("c_reset")
    a.call("empty_only")
    a.ldi(Op.RESET_STATE.value); a.st(P(_W.CMD))
    a.label("reset_wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_CORE_BUSY); a.jnz("reset_wait")
    a.call("progress")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")


def _c_record(a, v):
    """SET_RECORD."""
    (P, bitmap, bitmap_n, h_len, n, rmask, rmask_end, status) = (
        v.P, v.bitmap, v.bitmap_n, v.h_len, v.n, v.rmask, v.rmask_end, v.status)
    # SET_RECORD: the bitmap of the neurons to record, taken into the bitmap (free
    # between RUNs), checked, then copied to rmask (the bitmap cleared on the way).
    a.label("c_record")
    a.ld(h_len + 1); a.jnz("refuse_bad_length"); a.ld(h_len); a.cmpi(bitmap_n); a.jnz("refuse_bad_length")
    a.ldx(0)
    a.label("record_take")
    a.ld(P(_R.RX)); a.st(bitmap + X); a.inx(); a.txa(); a.cmpi(bitmap_n); a.jnz("record_take")
    if n % 8:
        a.ld(bitmap + bitmap_n - 1); a.andi((0xFF << (n % 8)) & 0xFF); a.jnz("record_bad")
    a.ldi(1); a.st(rmask_end)        # (at least one byte: the list loop looks at one or more)
    filt = v.config.record_filter
    if filt:                        # the filter's mask from byte 0 (A = 1: no filter bits, until a RUN)
        assert not 1 & (int(RunFlags.SUBSET) | int(RunFlags.NO_RECORDS))
        a.st(P(_W.FILTER))
    a.ldx(0)
    a.label("record_copy")
    a.ld(bitmap + X); a.st(rmask + X)
    if filt:
        a.st(P(_W.FMASK))
    a.jz("record_zero"); a.inx(); a.txa(); a.st(rmask_end); a.jmp("record_next")
    a.label("record_zero")
    a.inx()
    a.label("record_next")
    a.ldi(0); a.st((bitmap - 1) + X); a.txa(); a.cmpi(bitmap_n); a.jnz("record_copy")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")
    a.label("record_bad")           # a neuron >= n: refused, the mask as it was, the bitmap cleared
    a.call("clear_bitmap"); a.jmp("refuse_bad_value")
    a.label("clear_bitmap")         # the spike bitmap's bytes to 0
    a.ldx(0)
    a.label("clear_bitmap_byte")
    a.ldi(0); a.st(bitmap + X); a.inx(); a.txa(); a.cmpi(bitmap_n); a.jnz("clear_bitmap_byte")
    a.ret()


def _c_memory(a, v):
    """READ_* and WRITE_*."""
    (P, config, dec16, end, h_cmd, h_len, req, size, status, t_space, t_wb, table_info, ti, tlen, tmp) = (
        v.P, v.config, v.dec16, v.end, v.h_cmd, v.h_len, v.req, v.size, v.status, v.t_space, v.t_wb, v.table_info,
        v.ti, v.tlen, v.tmp)
    # READ_* / WRITE_*: table, address, count; then the checks in the documented order.
    a.label("c_memory")
    a.ld(h_len + 1); a.jnz("mem_long")
    a.ld(h_len); a.cmpi(_MEMORY_REQUEST_SIZE); a.jnc("refuse_bad_length"); a.jz("mem_length_ok")
    a.label("mem_long")             # longer than the request fields: writes only
    a.ld(h_cmd); a.andi(1); a.jnz("refuse_bad_length")
    a.label("mem_length_ok")
    a.ldx(0)
    a.label("mem_fields")
    a.ld(P(_R.RX)); a.st(req + X); a.inx(); a.txa(); a.cmpi(_MEMORY_REQUEST_SIZE); a.jnz("mem_fields")
    # 1. the table: (family * 4 + table) * 8 into the table of tables
    a.ld(req); a.cmpi(4); a.jc("refuse_bad_address")
    a.st(tmp); a.ld(h_cmd); a.andi(6); a.shl(); a.or_(tmp); a.shl(); a.shl(); a.shl(); a.st(ti); a.tax()
    a.ld(table_info + X); a.jz("refuse_bad_address")
    a.andi((1 << _SPACE_BITS) - 1); a.shl(); a.shl(); a.st(t_space)    # space << 2, as the CMD port wants it
    a.ld(table_info + 1 + X); a.st(t_wb)
    # size = 1 + count * word bytes (a read's reply), 24 bits
    a.ldi(1); a.st(size); a.ldi(0); a.st(size + 1); a.st(size + 2); a.st(tmp + 1)
    a.label("mem_size_loop")
    a.ld(size); a.add(req + 5); a.st(size); a.ld(size + 1); a.adc(req + 6); a.st(size + 1)
    a.ld(size + 2); a.adci(0); a.st(size + 2)
    a.ld(tmp + 1); a.addi(1); a.st(tmp + 1); a.cmp(t_wb); a.jnz("mem_size_loop")
    # 3. a write's payload is 7 + count * word bytes = size + 6
    a.ld(h_cmd); a.andi(1); a.jnz("mem_range")
    a.ld(size + 2); a.jnz("refuse_bad_length")
    a.ld(h_len); a.subi(_MEMORY_REQUEST_SIZE - 1); a.st(tmp); a.ld(h_len + 1); a.sbci(0); a.cmp(size + 1)
    a.jnz("refuse_bad_length"); a.ld(tmp); a.cmp(size); a.jnz("refuse_bad_length")
    # 4. address + count <= depth
    a.label("mem_range")
    a.ld(req + 4); a.jnz("refuse_bad_address")
    a.ld(req + 1); a.add(req + 5); a.st(end); a.ld(req + 2); a.adc(req + 6); a.st(end + 1)
    a.ld(req + 3); a.adci(0); a.st(end + 2); a.jc("refuse_bad_address")
    a.ld(ti); a.tax()
    a.ld(table_info + 2 + X); a.sub(end); a.ld(table_info + 3 + X); a.sbc(end + 1)
    a.ld(table_info + 4 + X); a.sbc(end + 2); a.jnc("refuse_bad_address")
    a.call("set_address")
    a.ld(h_cmd); a.andi(1); a.jz("mem_write")
    # 5. a read's reply fits MAX_PAYLOAD
    a.ld(size + 2); a.jnz("refuse_overflow")
    a.ld(size); a.subi((MAX_PAYLOAD + 1) & 0xFF); a.ld(size + 1); a.sbci((MAX_PAYLOAD + 1) >> 8)
    a.jc("refuse_overflow")
    a.ld(size); a.st(tlen); a.ld(size + 1); a.st(tlen + 1)
    a.ldi(Status.OK); a.st(status); a.call("reply_hdr")
    a.label("read_word")
    a.ld(req + 5); a.or_(req + 6); a.jz("done")
    a.ld(t_space); a.ori(Op.READ.value); a.st(P(_W.CMD))
    a.ldx(0)
    a.label("read_bytes")
    a.ld(P(_R.RBYTE)); a.st(P(_W.TX)); a.inx(); a.txa(); a.cmp(t_wb); a.jnz("read_bytes")
    a.st(P(_W.RDATA_ACK))
    a.call("next_word"); a.jmp("read_word")

    a.label("mem_write")
    a.label("write_word")
    a.ld(req + 5); a.or_(req + 6); a.jz("write_done")
    a.ldx(0)
    a.label("write_bytes")          # the word's bytes, then zeros up to the core's data width
    a.ldi(0); a.st(tmp); a.txa(); a.cmp(t_wb); a.jc("write_shift")
    a.ld(P(_R.RX)); a.st(tmp)
    a.label("write_shift")
    a.ld(tmp); a.st(P(_W.WORD)); a.inx(); a.txa(); a.cmpi((config.data_bits + 7) // 8); a.jnz("write_bytes")
    a.ld(t_space); a.ori(Op.WRITE.value); a.st(P(_W.CMD))
    a.call("next_word"); a.jmp("write_word")
    a.label("write_done")
    a.ldi(Status.OK); a.st(status); a.jmp("answer")

    a.label("next_word")            # count - 1, address + 1 (also in the ADDR ports)
    dec16(req + 5)
    a.ld(req + 1); a.addi(1); a.st(req + 1); a.ld(req + 2); a.adci(0); a.st(req + 2)
    a.ld(req + 3); a.adci(0); a.st(req + 3)
    a.label("set_address")
    for i in range(3):
        a.ld(req + 1 + i); a.st(P(_W.ADDR + i))
    a.ret()


def _c_run(a, v):
    """RUN: the request checked, then the steps, their inputs collected and their spikes taken."""
    (M, P, bitmap, bitmap_m, cnt, dec, dec16, end_flags, generated, h_cmd, h_len, h_seq, inc16, inputs_due, jne16,
     kk, lo, masked, masks, n, n_used, pending, probe, quiet, rec, rmask, run_seq, running, set_tlen, spikes,
     status, steps, subset, tmp, want_inputs) = (
        v.M, v.P, v.bitmap, v.bitmap_m, v.cnt, v.dec, v.dec16, v.end_flags, v.generated, v.h_cmd, v.h_len, v.h_seq,
        v.inc16, v.inputs_due, v.jne16, v.kk, v.lo, v.masked, v.masks, v.n, v.n_used, v.pending, v.probe,
        v.quiet, v.rec, v.rmask, v.run_seq, v.running, v.set_tlen, v.spikes, v.status, v.steps, v.subset, v.tmp,
        v.want_inputs)
    # ---- RUN ----
    a.label("c_run")
    a.ld(h_len + 1); a.jnz("run_fields")
    a.ld(h_len); a.cmpi(_RUN_REQUEST_SIZE); a.jnc("refuse_bad_length")
    a.label("run_fields")           # the payload, held in the receiver's buffer
    a.st(P(_W.STIM_RESET))
    a.ld(P(_R.STIM)); a.st(steps); a.ld(P(_R.STIM)); a.st(steps + 1)
    known = RunFlags.PROBE | RunFlags.INPUTS | RunFlags.SUBSET | RunFlags.GENERATED | RunFlags.NO_RECORDS
    if v.config.step_blocks:
        known |= RunFlags.BLOCKS
    a.ld(P(_R.STIM)); a.st(tmp); a.andi(~int(known) & 0xFF)
    a.jnz("refuse_bad_value")
    if v.config.record_filter:
        a.ld(tmp); a.st(P(_W.FILTER))   # the filter drops the spikes this RUN does not record
    a.ld(tmp); a.andi(RunFlags.PROBE | RunFlags.INPUTS); a.st(end_flags); a.andi(RunFlags.PROBE); a.st(probe)
    a.ld(tmp); a.andi(RunFlags.INPUTS); a.st(want_inputs)
    a.ld(tmp); a.andi(RunFlags.SUBSET); a.st(subset)
    a.ld(tmp); a.andi(RunFlags.GENERATED); a.st(generated)
    # NO_RECORDS: no step record is ever pending (the spikes go into the bitmap, which
    # the end of the RUN clears); not with PROBE or INPUTS.
    a.ld(tmp); a.andi(RunFlags.NO_RECORDS); a.st(quiet); a.jz("run_records")
    a.ld(end_flags); a.jnz("refuse_bad_value")
    a.label("run_records")
    if v.config.step_blocks:        # BLOCKS: not with PROBE, INPUTS or NO_RECORDS
        a.ld(tmp); a.andi(RunFlags.BLOCKS); a.st(v.blocks); a.jz("run_records_checked")
        a.ld(end_flags); a.or_(quiet); a.jnz("refuse_bad_value")
        a.label("run_records_checked")
    a.ldi(0); a.st(rec); a.st(rec + 1)
    # GENERATED: no input records; the payload ends with the flags.
    a.ld(generated); a.jz("run_record")
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jz("refuse_bad_length"); a.jmp("run_checked")
    # The records, checked; the first failure answers.
    a.label("run_record")
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jnz("run_records_end")
    a.ld(rec); a.cmp(steps); a.jnz("run_record_step"); a.ld(rec + 1); a.cmp(steps + 1)
    a.jz("refuse_bad_length")        # a byte after the last record
    a.label("run_record_step")       # step field = the record's index
    a.call("getb"); a.cmp(rec); a.jnz("refuse_bad_value")
    a.call("getb"); a.cmp(rec + 1); a.jnz("refuse_bad_value")
    a.call("getb"); a.jnz("refuse_bad_value")
    a.call("getb"); a.jnz("refuse_bad_value")
    a.call("getb"); a.jz("run_bitmap")
    a.cmpi(SpikeFormat.ADDRESSES); a.jnz("refuse_bad_value")
    a.call("getb"); a.st(kk); a.call("getb"); a.st(kk + 1)
    a.label("run_address")
    a.ld(kk); a.or_(kk + 1); a.jz("run_record_done")
    a.call("getb"); a.st(lo); a.call("getb")
    a.cmpi(M >> 8); a.jnc("run_address_ok"); a.jnz("refuse_bad_value")      # high byte vs m's
    a.ld(lo); a.cmpi(M & 0xFF); a.jc("refuse_bad_value")
    a.label("run_address_ok")
    dec16(kk); a.jmp("run_address")
    a.label("run_bitmap")
    a.ldi(bitmap_m); a.st(cnt)
    a.label("run_bitmap_loop")
    a.call("getb"); a.st(tmp); a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("run_bitmap_loop")
    if M % 8:
        a.ld(tmp); a.andi((0xFF << (M % 8)) & 0xFF); a.jnz("refuse_bad_value")     # an input >= m
    a.label("run_record_done")
    inc16(rec); a.jmp("run_record")

    a.label("getb")                 # the next record byte (Z from it)
    a.ld(P(_R.FLAGS)); a.andi(_F_STIM_END); a.jnz("getb_cut")
    a.ld(P(_R.STIM)); a.ret()
    a.label("getb_cut")             # a record cut short
    a.ldi(Status.BAD_LENGTH); a.st(status); a.jmp("answer")

    a.label("run_records_end")      # as many records as steps
    jne16(rec, steps, "refuse_bad_length")
    a.label("run_checked")
    # Run: the probes need n_used.
    a.ldi(Reg.N_USED.value); a.st(P(_W.ADDR)); a.ldi(0); a.st(P(_W.ADDR + 1)); a.st(P(_W.ADDR + 2))
    a.ldi(Op.READ.value | Space.GLOBAL.value << 2); a.st(P(_W.CMD))
    a.ld(P(_R.RDATA)); a.st(n_used); a.ld(P(_R.RDATA + 1)); a.st(n_used + 1); a.st(P(_W.RDATA_ACK))
    a.ld(h_seq); a.st(run_seq); a.ldi(1); a.st(running); a.st(P(_W.RUNNING))
    a.st(P(_W.RXH_ACK))             # requests may come: STATUS or BUSY
    a.ldi(1); a.sub(probe); a.st(dec)           # step records carry steps_done - 1 without probes
    a.ldi(0); a.st(rec); a.st(rec + 1); a.st(pending)
    a.st(P(_W.STIM_RESET))          # to the first record
    for _ in range(_RUN_REQUEST_SIZE):
        a.ld(P(_R.STIM))
    if v.config.step_blocks:
        _block_setup(a, v)
    out_record = "out_record" if v.config.step_blocks else "step_record"
    a.label("run_step")
    jne16(rec, steps, "run_feed")
    a.ld(pending); a.jz("run_end")
    a.call(out_record)
    a.label("run_end")
    a.ld(quiet); a.jz("run_end_clear")
    a.call("clear_bitmap")          # a NO_RECORDS run's spikes (a run with records cleared them as it sent them)
    a.label("run_end_clear")
    a.ldi(0); a.st(running); a.st(P(_W.RUNNING)); a.st(status)
    a.ldi(Command.RUN); a.st(h_cmd); a.ld(run_seq); a.st(h_seq)     # remembered as the RUN's answer
    a.call("run_reply"); a.call("remember"); a.jmp("main")   # (its header went at the start)

    a.label("run_feed")
    a.call("feed")
    a.ld(pending); a.jz("run_collect")
    a.call(out_record)              # the last step's record, while this step runs
    # The step's inputs (when asked for) and then its spikes into the bitmap, until a
    # record that is neither; the first record that is not an input sends the inputs.
    # Requests that arrive meanwhile are answered.
    # Per record, the fast path is a spike: its bit goes into the bitmap (under SUBSET only
    # when rmask has it) and `spikes` counts it, saturating at 255 (`record` only needs
    # to know whether the count is below the address list's limit, at most 127).
    # `masked` is SUBSET for the step's spikes and 0 for its inputs, which come first.
    a.label("run_collect")
    a.ldi(0); a.st(spikes); a.st(spikes + 1)
    a.ld(subset); a.st(masked)
    a.ld(want_inputs); a.st(inputs_due); a.jz("collect_wait")
    a.ldi(0); a.st(masked)
    a.label("collect_wait")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH | _F_NACK); a.jz("collect_poll")
    if v.config.step_blocks:        # not inside an open STEP_BLOCK: its frame is being sent
        a.ld(v.blk_left); a.jnz("collect_poll")
    a.call("service")
    a.label("collect_poll")
    a.ld(P(_R.FLAGS)); a.andi(_F_STEP_OUT); a.jz("collect_wait")
    a.ld(P(_R.KIND)); a.jnz("collect_other")            # not a SPIKE
    a.ld(inputs_due); a.jnz("collect_inputs_sent")      # the step's inputs go out first
    a.label("collect_bit")                              # neuron or input into the bitmap
    a.ld(P(_R.NEURON)); a.andi(7); a.tax(); a.ld(masks + X); a.st(tmp)
    if max(n, M) > 256:
        a.ld(P(_R.NEURON + 1)); a.shl(); a.shl(); a.shl(); a.shl(); a.shl(); a.st(tmp + 1)
        a.ld(P(_R.NEURON)); a.shr(); a.shr(); a.shr(); a.or_(tmp + 1)
    else:
        a.ld(P(_R.NEURON)); a.shr(); a.shr(); a.shr()
    a.tax()
    if not v.config.record_filter:      # (with the filter, every spike that comes is recorded)
        a.ld(masked); a.jz("collect_set")
        a.ld(rmask + X); a.and_(tmp); a.jz("collect_skip")
    a.label("collect_set")
    a.ld(bitmap + X); a.or_(tmp); a.st(bitmap + X)
    a.st(P(_W.STEP_ACK))
    a.ld(spikes); a.addi(1); a.jz("collect_poll"); a.st(spikes); a.jmp("collect_poll")
    if not v.config.record_filter:
        a.label("collect_skip")     # not recorded: taken, not counted
        a.st(P(_W.STEP_ACK)); a.jmp("collect_poll")
    a.label("collect_other")        # A: the kind
    a.cmpi(StepEvent.INPUT.value); a.jz("collect_bit")
    a.ld(inputs_due); a.jz("collected")
    a.label("collect_inputs_sent")  # the first record that is not an input: send the inputs
    a.call("input_record")
    a.ldi(0); a.st(inputs_due); a.st(spikes); a.st(spikes + 1)
    a.ld(subset); a.st(masked); a.jmp("collect_poll")     # the record again, now as a step's
    a.label("collected")
    a.ld(probe); a.jz("run_no_probe")
    a.call("step_record"); a.call("probes")
    a.ldi(0); a.jmp("run_next")
    a.label("run_no_probe")
    a.st(P(_W.STEP_ACK))            # the END record; the step record waits (none with NO_RECORDS)
    a.ldi(int(RunFlags.NO_RECORDS)); a.sub(quiet)
    a.label("run_next")
    a.st(pending); a.call("progress"); inc16(rec); a.jmp("run_step")

    a.label("run_reply")            # status, then steps (u32)
    set_tlen(1 + fields_size(RUN_REPLY_FIELDS))
    a.call("reply_hdr")
    a.ld(steps); a.st(P(_W.TX)); a.ld(steps + 1); a.st(P(_W.TX)); a.ldi(0); a.st(P(_W.TX)); a.st(P(_W.TX))
    a.ret()


def _block_setup(a, v):
    """A RUN's STEP_BLOCK sizes: none open; with BLOCKS the bytes per step (SUBSET: the
    mask's up to its last nonzero one), the most steps a block holds and a full block's
    payload length."""
    blk_acc, blk_bytes, blk_len, blk_max = v.blk_acc, v.blk_bytes, v.blk_len, v.blk_max
    head = 1 + fields_size(STEP_BLOCK_FIELDS)           # status and the fields
    room = MAX_PAYLOAD - head
    assert head < 256 and BLOCK_MAX_STEPS < 256 and room < 1 << 16
    a.ldi(0); a.st(v.blk_left)
    a.ld(v.blocks); a.jz("run_step")
    a.ldi(v.bitmap_n); a.st(blk_bytes); a.ld(v.subset); a.jz("blk_size")
    a.ld(v.rmask_end); a.st(blk_bytes)
    a.label("blk_size")
    a.ldi(room & 0xFF); a.st(blk_acc); a.ldi(room >> 8); a.st(blk_acc + 1)
    a.ldi(head); a.st(blk_len); a.ldi(0); a.st(blk_len + 1); a.st(blk_max)
    a.label("blk_fit")              # one more step while its bytes fit the room left
    a.ld(blk_acc); a.sub(blk_bytes); a.st(blk_acc); a.ld(blk_acc + 1); a.sbci(0); a.st(blk_acc + 1)
    a.jnc("run_step")
    a.ld(blk_len); a.add(blk_bytes); a.st(blk_len); a.ld(blk_len + 1); a.adci(0); a.st(blk_len + 1)
    a.ld(blk_max); a.addi(1); a.st(blk_max); a.cmpi(BLOCK_MAX_STEPS); a.jnz("blk_fit")


def _blocks(a, v):
    """out_record: the pending step's record, as a STEP_RECORD or into a STEP_BLOCK."""
    if not v.config.step_blocks:
        return
    P, bitmap, send = v.P, v.bitmap, v.send
    blk_acc, blk_bytes, blk_cnt, blk_left = v.blk_acc, v.blk_bytes, v.blk_cnt, v.blk_left
    a.label("out_record")
    a.ld(v.blocks); a.jz("step_record")
    a.ld(blk_left); a.jnz("blk_step")
    # A new block of min(blk_max, steps - rec + 1) steps (the pending step is rec - 1).
    a.ld(v.steps); a.sub(v.rec); a.st(blk_acc); a.ld(v.steps + 1); a.sbc(v.rec + 1); a.jnz("blk_full")
    a.ld(blk_acc); a.cmp(v.blk_max); a.jc("blk_full")
    a.addi(1); a.st(blk_left); a.st(blk_cnt)       # the last block: its length step by step
    a.ldi(1 + fields_size(STEP_BLOCK_FIELDS)); a.st(blk_acc); a.ldi(0); a.st(blk_acc + 1)
    a.label("blk_length")
    a.ld(blk_acc); a.add(blk_bytes); a.st(blk_acc); a.ld(blk_acc + 1); a.adci(0); a.st(blk_acc + 1)
    a.ld(blk_cnt); a.subi(1); a.st(blk_cnt); a.jnz("blk_length")
    a.jmp("blk_open")
    a.label("blk_full")
    a.ld(v.blk_max); a.st(blk_left)
    a.ld(v.blk_len); a.st(blk_acc); a.ld(v.blk_len + 1); a.st(blk_acc + 1)
    a.label("blk_open")
    send(Command.STEP_BLOCK | REPLY_FLAG, (v.run_seq,), (blk_acc,), (blk_acc + 1,), Status.OK)
    a.ld(v.dec); a.st(v.r_dec); a.call("send_step")
    send((blk_left,), (blk_bytes,))
    a.label("blk_step")             # the step's bitmap bytes (cleared on the way)
    a.ldx(0)
    a.label("blk_byte")
    a.ld(bitmap + X); a.st(P(_W.TX)); a.ldi(0); a.st(bitmap + X); a.inx(); a.txa(); a.cmp(blk_bytes)
    a.jnz("blk_byte")
    a.ld(blk_left); a.subi(1); a.st(blk_left)
    a.ret()


def _feed(a, v):
    """A step's inputs from its record to the core."""
    (M, P, bitmap_m, cnt, dec16, end_flags, generated, j8, kk, lo) = (
        v.M, v.P, v.bitmap_m, v.cnt, v.dec16, v.end_flags, v.generated, v.j8, v.kk, v.lo)
    # feed: one step's inputs from its record, then the end of the step.
    a.label("feed")
    a.ld(generated); a.jnz("feed_end")  # no record to read
    for _ in range(4):
        a.ld(P(_R.STIM))            # the step field (checked)
    a.ld(P(_R.STIM)); a.jz("feed_bitmap")
    a.ld(P(_R.STIM)); a.st(kk); a.ld(P(_R.STIM)); a.st(kk + 1)
    a.label("feed_address")
    a.ld(kk); a.or_(kk + 1); a.jz("feed_end")
    a.ld(P(_R.STIM)); a.st(lo); a.ld(P(_R.STIM))
    if M > 256:
        a.st(P(_W.STEP_IN_HI))
    a.ld(lo); a.st(P(_W.STEP_IN))
    dec16(kk); a.jmp("feed_address")
    a.label("feed_bitmap")
    a.ldi(0); a.st(j8); a.st(j8 + 1); a.ldi(bitmap_m); a.st(cnt)
    a.label("feed_byte")
    if M > 256:
        a.ld(j8 + 1); a.st(P(_W.STEP_IN_HI))
    a.ld(P(_R.STIM)); a.st(P(_W.SCAN))
    a.label("feed_bit")
    a.ld(P(_R.SCAN)); a.jz("feed_next")
    a.subi(8); a.or_(j8); a.st(P(_W.STEP_IN)); a.jmp("feed_bit")
    a.label("feed_next")
    a.ld(j8); a.addi(8); a.st(j8); a.ld(j8 + 1); a.adci(0); a.st(j8 + 1)
    a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("feed_byte")
    a.label("feed_end")
    a.ld(end_flags); a.st(P(_W.STEP_END)); a.ret()


def _service(a, v):
    """Requests during a RUN."""
    P, h_cmd, h_len, status = v.P, v.h_cmd, v.h_len, v.status
    # service: during a RUN, a NACK, STATUS, or BUSY for any other request (none remembered).
    a.label("service")
    a.ld(P(_R.FLAGS)); a.andi(_F_NACK); a.jz("service_request")
    a.call("send_nack")
    a.label("service_request")
    a.ld(P(_R.FLAGS)); a.andi(_F_RXH); a.jz("service_end")
    a.call("take_header")
    a.label("answer_in_run")        # STATUS, or BUSY for anything else
    a.ld(h_cmd); a.cmpi(Command.STATUS); a.jnz("service_busy")
    a.ld(h_len); a.or_(h_len + 1); a.jnz("service_busy")
    a.call("status_reply"); a.jmp("service_ack")
    a.label("service_busy")
    a.call("discard"); a.ldi(Status.BUSY); a.st(status); a.call("reply_status")
    a.label("service_ack")
    a.st(P(_W.RXH_ACK))
    a.label("service_end")
    a.ret()


def _records(a, v):
    """STEP_RECORD and INPUT_RECORD."""
    (M, P, bitmap, bitmap_m, bitmap_n, dec, j8, n, progress, r_bytes, r_cmd, r_dec, r_end, r_len, r_list,
     rmask_end, run_seq, send, spikes, subset) = (
        v.M, v.P, v.bitmap, v.bitmap_m, v.bitmap_n, v.dec, v.j8, v.n, v.progress, v.r_bytes, v.r_cmd, v.r_dec,
        v.r_end, v.r_len, v.r_list, v.rmask_end, v.run_seq, v.send, v.spikes, v.subset)
    # send_step: the step field, steps_done - r_dec.
    a.label("send_step")
    a.ld(progress); a.sub(r_dec); a.st(P(_W.TX))
    for i in range(1, 4):
        a.ld(progress + i); a.sbci(0); a.st(P(_W.TX))
    a.ret()

    # step_record / input_record: the STEP_RECORD / INPUT_RECORD of the bitmap (cleared on
    # the way): each sets what `record` sends.
    def record_kind(label, command, count, dec):
        size = (count + 7) // 8
        # Up to this many indices the record is an address list (encode_spikes: 2 + 2k < bitmap bytes).
        list_max = (size - 3) // 2
        length = 1 + _SPIKE_HEAD_SIZE + size
        a.label(label)
        for value, at in ((command | REPLY_FLAG, r_cmd), (size, r_bytes), (max(list_max + 1, 0), r_list),
                          (length & 0xFF, r_len), (length >> 8, r_len + 1)):
            a.ldi(value); a.st(at)
        if isinstance(dec, tuple):
            a.ld(dec[0])
        else:
            a.ldi(dec)
        a.st(r_dec)

    record_kind("step_record", Command.STEP_RECORD, n, (dec,))
    a.ldi(bitmap_n); a.st(r_end); a.ld(subset); a.jz("record")
    a.ld(rmask_end); a.st(r_end); a.jmp("record")
    record_kind("input_record", Command.INPUT_RECORD, M, 0)     # sent before the step's END: steps_done
    a.ldi(bitmap_m); a.st(r_end)
    a.label("record")               # `spikes` indices in the bitmap
    send((r_cmd,), (run_seq,))
    a.ld(spikes + 1); a.jnz("record_bitmap"); a.ld(spikes); a.cmp(r_list); a.jc("record_bitmap")
    a.shl(); a.addi(1 + _SPIKE_HEAD_SIZE + 2); a.st(P(_W.TX)); a.ldi(0); a.adci(0); a.st(P(_W.TX))
    send(Status.OK); a.call("send_step")
    a.ldi(SpikeFormat.ADDRESSES); a.st(P(_W.TX)); a.ld(spikes); a.st(P(_W.TX)); a.ld(spikes + 1)
    a.st(P(_W.TX))
    a.ld(spikes); a.jz("record_list_end")      # nothing set: nothing to clear either
    a.ldx(0)
    a.label("record_list_byte")
    a.ld(bitmap + X); a.jz("record_list_next")
    a.st(P(_W.SCAN)); a.ldi(0); a.st(bitmap + X)
    a.txa(); a.shl(); a.shl(); a.shl(); a.st(j8); a.txa(); a.shr(); a.shr(); a.shr(); a.shr(); a.shr()
    a.st(j8 + 1)
    a.label("record_list_bit")
    a.ld(P(_R.SCAN)); a.jz("record_list_next")
    a.subi(8); a.or_(j8); a.st(P(_W.TX)); a.ld(j8 + 1); a.st(P(_W.TX)); a.jmp("record_list_bit")
    a.label("record_list_next")
    a.inx(); a.txa(); a.cmp(r_end); a.jnz("record_list_byte")
    a.label("record_list_end")
    a.ret()
    a.label("record_bitmap")
    send((r_len,), (r_len + 1,), Status.OK); a.call("send_step")
    a.ldi(SpikeFormat.BITMAP); a.st(P(_W.TX))
    a.ldx(0)
    a.label("record_bitmap_byte")
    a.ld(bitmap + X); a.st(P(_W.TX)); a.ldi(0); a.st(bitmap + X)
    a.inx(); a.txa(); a.cmp(r_bytes); a.jnz("record_bitmap_byte")
    a.ret()


def _probes(a, v):
    """PROBE_RECORDs."""
    (P, cnt, end, first, inc16, k, left, n_used, probe_chunk, run_seq, send, value_bytes) = (
        v.P, v.cnt, v.end, v.first, v.inc16, v.k, v.left, v.n_used, v.probe_chunk, v.run_seq, v.send, v.value_bytes)
    # probes: PROBE_RECORDs of neurons 0 .. n_used-1 in chunks, then the END record.
    value_size = 2 * value_bytes
    a.label("probes")
    a.ldi(0); a.st(first); a.st(first + 1)
    a.label("probe_chunk")
    a.ld(n_used); a.sub(first); a.st(left); a.ld(n_used + 1); a.sbc(first + 1); a.st(left + 1)
    a.or_(left); a.jz("probes_end")
    a.ld(left + 1); a.jnz("probe_full"); a.ld(left); a.cmpi(probe_chunk + 1); a.jnc("probe_count")
    a.label("probe_full")
    a.ldi(probe_chunk)
    a.label("probe_count")
    a.st(cnt)
    # length = 9 + cnt * value_size, 16 bits
    a.ldi(value_size); a.st(k)
    a.ldi(1 + _PROBE_HEAD_SIZE); a.st(end); a.ldi(0); a.st(end + 1)
    a.label("probe_length")
    a.ld(end); a.add(cnt); a.st(end); a.ld(end + 1); a.adci(0); a.st(end + 1)
    a.ld(k); a.subi(1); a.st(k); a.jnz("probe_length")
    send(Command.PROBE_RECORD | REPLY_FLAG, (run_seq,), (end,), (end + 1,), Status.OK)
    a.call("send_step")
    a.ld(first); a.st(P(_W.TX)); a.ld(first + 1); a.st(P(_W.TX)); a.ld(cnt); a.st(P(_W.TX))
    a.ldi(0); a.st(P(_W.TX))
    a.label("probe_neuron")
    a.ldx(0)
    a.label("probe_byte")           # v then i, straight from the PROBE record
    a.ld(P(_R.PROBE) + X); a.st(P(_W.TX)); a.inx(); a.txa(); a.cmpi(value_size); a.jnz("probe_byte")
    a.st(P(_W.STEP_ACK))
    inc16(first)
    a.ld(cnt); a.subi(1); a.st(cnt); a.jnz("probe_neuron")
    a.jmp("probe_chunk")
    a.label("probes_end")
    a.st(P(_W.STEP_ACK))            # the END record
    a.ret()


#: The firmware's parts, in program order (the order the assembler lays them out).
_PARTS = (_routines, _main_loop, _c_hello, _c_echo, _c_status, _c_reset, _c_record, _c_memory, _c_run, _feed,
          _service, _records, _blocks, _probes)


def link_program(config: CoreConfig, hello: bytes, probe_chunk: int) -> Assembler:
    """The link's firmware for a core of `config` (an `Assembler`, ready to assemble).

    `hello` is the HELLO reply after its status byte, `probe_chunk` the most
    neurons per PROBE_RECORD.
    """
    a, v = _layout(config, hello, probe_chunk)
    _macros(a, v)
    for part in _PARTS:
        part(a, v)
    return a
