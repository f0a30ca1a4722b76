"""cocotb tests of the whole device (`nf_top`) through its UART pins.

The configuration comes from the environment: `NF_CORE_CONFIG` (set by
`sim.verilator.run_cocotb`), `NF_TOP` (clock, baud, build id, probe chunk;
`sim.link_build.top_env`) and `NF_PLAN`, a JSON file with the random network
cases (see tests/test_link_rtl.py). Every test resets the device and talks to
it only through `LinkTB` (a bit-level UART and the protocol's host side:
contract/protocol.py, host/framing.py, records.py, memory_map.py).
"""

import json
import os
import random

import numpy as np

import cocotb

from neurofabric.hdl.core_ports import CoreConfig
from neurofabric.host.golden import GoldenModel
from neurofabric.contract.device import GLOBAL_REGISTERS, READ_ONLY_GLOBALS, register
from neurofabric.contract.protocol import (
    HELLO_REPLY_FIELDS, MAX_PAYLOAD, MEMORY_REQUEST_FIELDS, PROTOCOL_VERSION, REPLY_FLAG, Command, Family, RunFlags,
    SpikeFormat, Status, fields_size, pack_fields, unpack_fields,
)
from neurofabric.host.framing import cobs_encode, crc16, frame_body
from neurofabric.host.memory_map import decode_global, encode_global, pack_weights, words_to_bytes
from neurofabric.host.records import encode_run_request, encode_spikes
from neurofabric.contract.model import CORE_MODEL_VERSION

from .core_cocotb import case_rates, case_stimulus, first_mismatch, random_case_network
from .link_tb import LinkTB, status_fields

CONFIG = CoreConfig(**json.loads(os.environ.get("NF_CORE_CONFIG", '{"n": 8, "m": 8, "lanes": 2}')))
TOP = json.loads(os.environ.get("NF_TOP", '{"clk_hz": 12000000, "baud": 3000000, "build_id": 0}'))


def _plan():
    path = os.environ.get("NF_PLAN")
    if not path:
        return [{"name": "default", "seed": 0, "learn": 1, "probe": True, "steps": 12, "max_steps": 5}]
    with open(path) as f:
        return json.load(f)


PLAN = _plan()


async def started(dut, **kwargs):
    tb = LinkTB(dut, CONFIG, clk_hz=TOP["clk_hz"], baud=TOP["baud"], build_id=TOP["build_id"], **kwargs)
    await tb.start()
    return tb


def memory_request(table, address, count):
    return pack_fields(MEMORY_REQUEST_FIELDS, table=table, address=address, count=count)


async def expect_status(tb, command, payload, status, what):
    ex = await tb.request(command, payload)
    assert ex.status == status, f"{what}: expected {status.name}, got {ex.status!r}"
    assert len(ex.reply.payload) == 1, f"{what}: an error reply carries its status only"
    return ex


@cocotb.test()
async def hello_reports_the_build(dut):
    """HELLO returns the protocol and core versions, the sizes, clock, baud and build id."""
    tb = await started(dut)
    ex = await tb.ok(Command.HELLO)
    assert len(ex.data) == fields_size(HELLO_REPLY_FIELDS)
    assert unpack_fields(HELLO_REPLY_FIELDS, ex.data) == dict(
        protocol_version=PROTOCOL_VERSION, core_model_version=CORE_MODEL_VERSION, n=CONFIG.n, m=CONFIG.m,
        state_bits=CONFIG.S, weight_bits=CONFIG.W, trace_bits=CONFIG.T, lanes=CONFIG.lanes,
        clk_hz=TOP["clk_hz"], baud=TOP["baud"], max_payload=MAX_PAYLOAD, build_id=TOP["build_id"])
    assert int(dut.led_running.value) == 0 and int(dut.led_error.value) == 0
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
async def echo_of_every_length_class(dut):
    """ECHO returns any payload of 0 .. 1023 bytes (COBS group boundaries included); 1024 is OVERFLOW."""
    tb = await started(dut)
    rng = random.Random(7)
    for index, length in enumerate((0, 1, 2, 7, 253, 254, 255, 256, 300, 507, 508, 509, 1019, 1022, 1023)):
        kind = index % 3
        if kind == 0:      # no zero at all: full 254-byte COBS groups
            data = bytes(rng.randrange(1, 256) for _ in range(length))
        elif kind == 1:    # zeros here and there
            data = bytes(rng.choice([0, rng.randrange(256)]) for _ in range(length))
        else:              # all zeros
            data = bytes(length)
        ex = await tb.ok(Command.ECHO, data)
        assert ex.data == data, f"echo of {length} bytes came back as {len(ex.data)} bytes"
    await expect_status(tb, Command.ECHO, bytes(MAX_PAYLOAD), Status.OVERFLOW, "ECHO of 1024 bytes")
    assert (await tb.ok(Command.ECHO, b"\x00after\x00")).data == b"\x00after\x00"
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
async def every_error_code(dut):
    """UNKNOWN_COMMAND, BAD_LENGTH, BAD_ADDRESS, OVERFLOW and BAD_VALUE, each where the
    protocol says; a refused request changes nothing."""
    tb = await started(dut)
    for code in (0x00, 0x06, 0x18, 0x21, 0x22, 0x7E, Command.HELLO | REPLY_FLAG, 0xA0):
        await expect_status(tb, code, b"xyz", Status.UNKNOWN_COMMAND, f"command 0x{code:02X}")

    weights = tb.table(Family.WEIGHTS, 0)
    params = tb.table(Family.PARAMS, 0)
    await expect_status(tb, Command.HELLO, b"\x00", Status.BAD_LENGTH, "HELLO with a payload")
    await expect_status(tb, Command.STATUS, b"\x01\x02", Status.BAD_LENGTH, "STATUS with a payload")
    await expect_status(tb, Command.RESET_STATE, b"\x01", Status.BAD_LENGTH, "RESET_STATE with a payload")
    await expect_status(tb, Command.SET_RECORD, bytes((CONFIG.n + 7) // 8 + 1), Status.BAD_LENGTH,
                        "SET_RECORD with a byte too many")
    await expect_status(tb, Command.READ_WEIGHTS, memory_request(0, 0, 1)[:6], Status.BAD_LENGTH, "short read")
    await expect_status(tb, Command.READ_WEIGHTS, memory_request(0, 0, 1) + b"\x00", Status.BAD_LENGTH, "long read")
    await expect_status(tb, Command.WRITE_WEIGHTS, b"", Status.BAD_LENGTH, "empty write")
    one_word = words_to_bytes([1], weights.word_bits)
    await expect_status(tb, Command.WRITE_WEIGHTS, memory_request(0, 0, 2) + one_word, Status.BAD_LENGTH,
                        "write of 2 words carrying 1")
    await expect_status(tb, Command.WRITE_WEIGHTS, memory_request(0, 0, 1) + one_word + b"\x00", Status.BAD_LENGTH,
                        "write with a byte too many")
    await expect_status(tb, Command.WRITE_PARAMS, memory_request(0, 0, 1) + b"\x01", Status.BAD_LENGTH,
                        "params word cut short")

    for command, table in ((Command.READ_GLOBALS, 1), (Command.READ_PARAMS, 4), (Command.READ_WEIGHTS, 1),
                           (Command.READ_STATE, 4), (Command.READ_STATE, 255)):
        await expect_status(tb, command, memory_request(table, 0, 1), Status.BAD_ADDRESS, f"table {table}")
    await expect_status(tb, Command.WRITE_GLOBALS, memory_request(7, 0, 1) + b"\x00" * 4, Status.BAD_ADDRESS,
                        "write to table 7")
    for address, count in ((weights.depth, 1), (weights.depth - 1, 2), (0xFFFF_FFFF, 1), (0, weights.depth + 1),
                           (0xFFFF_FFFF, 0xFFFF)):
        await expect_status(tb, Command.READ_WEIGHTS, memory_request(0, address, count), Status.BAD_ADDRESS,
                            f"weights {address}+{count}")
    await expect_status(tb, Command.READ_GLOBALS, memory_request(0, len(GLOBAL_REGISTERS), 1), Status.BAD_ADDRESS,
                        "register past the last")
    # A refused write leaves the memory alone.
    before = await tb.read_table(Family.PARAMS, 0, params.depth - 1, 1)
    word = words_to_bytes([((1 << params.word_bits) - 1) ^ before[0]], params.word_bits)
    await expect_status(tb, Command.WRITE_PARAMS, memory_request(0, params.depth, 1) + word, Status.BAD_ADDRESS,
                        "params write past the end")
    await expect_status(tb, Command.WRITE_PARAMS, memory_request(0, params.depth - 1, 2) + word + word,
                        Status.BAD_ADDRESS, "params write running past the end")
    assert await tb.read_table(Family.PARAMS, 0, params.depth - 1, 1) == before

    # OVERFLOW: a read whose reply would exceed MAX_PAYLOAD (where some table is that deep).
    deep = [t for t in (tb.table(f, t) for f, t in ((Family.WEIGHTS, 0), (Family.PARAMS, 0), (Family.STATE, 0)))
            if t.depth > t.max_read_words]
    for info in deep:
        await expect_status(tb, info.read_command, memory_request(info.table, 0, info.max_read_words + 1),
                            Status.OVERFLOW, f"{info.name} read of {info.max_read_words + 1} words")
        await tb.read_table(info.family, info.table, 0, info.max_read_words)   # the largest read is fine

    # RUN requests are checked completely before anything runs.
    m = CONFIG.m
    good = encode_run_request([[0], []], m)
    await expect_status(tb, Command.RUN, good[:2], Status.BAD_LENGTH, "RUN shorter than its fields")
    await expect_status(tb, Command.RUN, good[:-1], Status.BAD_LENGTH, "RUN record cut short")
    await expect_status(tb, Command.RUN, good + b"\x00", Status.BAD_LENGTH, "RUN with a byte after the records")
    await expect_status(tb, Command.RUN, pack_fields((("steps", 2), ("flags", 1)), steps=3, flags=0) + good[3:],
                        Status.BAD_LENGTH, "RUN with fewer records than steps")
    await expect_status(tb, Command.RUN, good[:2] + b"\x40" + good[3:], Status.BAD_VALUE, "RUN with an unknown flag")
    for flag in (RunFlags.PROBE, RunFlags.INPUTS):
        await expect_status(tb, Command.RUN, good[:2] + bytes([RunFlags.NO_RECORDS | flag]) + good[3:],
                            Status.BAD_VALUE, f"RUN with NO_RECORDS and {flag.name}")
    for flag in (RunFlags.PROBE, RunFlags.INPUTS, RunFlags.NO_RECORDS):
        await expect_status(tb, Command.RUN, good[:2] + bytes([RunFlags.BLOCKS | flag]) + good[3:],
                            Status.BAD_VALUE, f"RUN with BLOCKS and {flag.name}")
    await expect_status(tb, Command.RUN, good[:2] + bytes([RunFlags.GENERATED]) + good[3:], Status.BAD_LENGTH,
                        "RUN flagged GENERATED with input records")
    bad_step = bytearray(good)
    bad_step[3 + len(encode_spikes(0, [0], m))] = 5     # second record says step 5
    await expect_status(tb, Command.RUN, bytes(bad_step), Status.BAD_VALUE, "RUN record with a wrong step")
    await expect_status(tb, Command.RUN, good[:3] + bytes([0, 0, 0, 0, 2]) + good[8:], Status.BAD_VALUE,
                        "RUN record of format 2")
    address_list = pack_fields((("steps", 2), ("flags", 1)), steps=1, flags=0) + bytes(
        [0, 0, 0, 0, SpikeFormat.ADDRESSES, 1, 0]) + m.to_bytes(2, "little")
    await expect_status(tb, Command.RUN, address_list, Status.BAD_VALUE, "RUN input address m")
    if m % 8:
        bitmap = bytearray(pack_fields((("steps", 2), ("flags", 1)), steps=1, flags=0) + bytes(
            [0, 0, 0, 0, SpikeFormat.BITMAP]) + bytes((m + 7) // 8))
        bitmap[-1] = 1 << (m % 8)
        await expect_status(tb, Command.RUN, bytes(bitmap), Status.BAD_VALUE, "RUN bitmap bit m")
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["step"] == 0 and status["running"] == 0, f"a refused RUN ran: {status}"
    assert not tb.records, f"a refused RUN sent records: {tb.records}"
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
async def every_table_reads_back_what_was_written(dut):
    """Random words written to every table read back (unused high bits of a word are
    ignored; read-only registers ignore writes and report the build; the seed's write
    sets the generator state)."""
    tb = await started(dut)
    rng = random.Random(11)
    shape = tb.shape
    ro_values = {"version": CORE_MODEL_VERSION, "cfg_n": CONFIG.n, "cfg_m": CONFIG.m, "cfg_s": CONFIG.S,
                 "cfg_w": CONFIG.W, "cfg_t": CONFIG.T, "cfg_lanes": CONFIG.lanes, "steps_done": 0,
                 "last_step_cycles": 0}
    # Globals: every writable register in its range (n_used, m_used: 0 .. n, m; seed: 1 .. 2^32 - 1).
    written = {name: rng.randint(*register(name).value_range(shape)) for name in GLOBAL_REGISTERS
               if name not in READ_ONLY_GLOBALS}
    ro_values["gen_state"] = written["seed"]
    words = [encode_global(name, written[name], shape) if name in written else rng.randrange(1 << 32)
             for name in GLOBAL_REGISTERS]
    await tb.write_table(Family.GLOBALS, 0, 0, words)
    back = await tb.read_table(Family.GLOBALS, 0, 0, len(GLOBAL_REGISTERS))
    for name, word in zip(GLOBAL_REGISTERS, back):
        value = decode_global(name, word, shape)
        expected = written.get(name, ro_values.get(name))
        assert value == expected, f"register {name}: wrote {written.get(name)}, read {value} (word {word:#x})"
    # n_used beyond n is clamped by the core.
    n_used = GLOBAL_REGISTERS.index("n_used")
    await tb.write_table(Family.GLOBALS, 0, n_used, [CONFIG.n + 5])
    assert await tb.read_table(Family.GLOBALS, 0, n_used, 1) == [CONFIG.n]

    for family, table in ((Family.PARAMS, 0), (Family.PARAMS, 1), (Family.PARAMS, 2), (Family.PARAMS, 3),
                          (Family.WEIGHTS, 0), (Family.STATE, 0), (Family.STATE, 1), (Family.STATE, 2)):
        info = tb.table(family, table)
        values = [rng.randrange(1 << info.word_bits) for _ in range(info.depth)]
        # High bits past the word are ignored: send them set.
        junk = (((1 << (8 * info.word_bytes)) - 1) ^ ((1 << info.word_bits) - 1))
        sent = [v | (junk if rng.random() < 0.5 else 0) for v in values]
        for start in range(0, info.depth, info.max_write_words):
            chunk = sent[start:start + info.max_write_words]
            payload = memory_request(table, start, len(chunk)) + b"".join(
                v.to_bytes(info.word_bytes, "little") for v in chunk)
            await tb.ok(info.write_command, payload)
        got = await tb.read_table(family, table, 0, info.depth)
        bad = [a for a, (want, have) in enumerate(zip(values, got)) if want != have]
        assert not bad, (f"{info.name}: address {bad[0]} wrote {values[bad[0]]:#x}, read {got[bad[0]]:#x} "
                         f"({len(bad)} of {info.depth} differ)")
        # A range in the middle, and an empty read and write.
        lo = info.depth // 3
        hi = min(info.depth, lo + 5)
        assert await tb.read_table(family, table, lo, hi - lo) == values[lo:hi]
        assert (await tb.ok(info.read_command, memory_request(table, info.depth, 0))).data == b""
        await tb.ok(info.write_command, memory_request(table, info.depth, 0))
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
@cocotb.parametrize(case=PLAN)
async def network_runs_like_the_golden_model(dut, case):
    """A random network loaded through the link runs bit-exact with the golden model:
    every step record (exact bytes), v and i when probed, the input records (exact
    bytes: host and generated inputs) when asked for, then weights, state and g."""
    tb = await started(dut)
    net = random_case_network(CONFIG, case)
    stim = case_stimulus(net, case)
    rates = case_rates(net, case)
    await tb.load(net)
    golden = GoldenModel(net)
    if rates.any():
        await tb.write_rates(rates)
    if case.get("gen_seed") is not None:
        await tb.write_seed(case["gen_seed"])
        golden.set_seed(case["gen_seed"])
    probe, inputs = bool(case.get("probe")), bool(case.get("inputs"))
    rng = random.Random(case["seed"])
    if case.get("preset_state"):
        # Start from a state written through the link (the core rebuilds its spike list from s).
        smax, tmax = 1 << (CONFIG.S - 1), (1 << CONFIG.T) - 1
        state = {"v": [rng.randrange(-smax, smax) for _ in range(net.n)],
                 "i": [rng.randrange(-smax, smax) for _ in range(net.n)],
                 "r": [rng.choice([0, 0, 1, 3]) for _ in range(net.n)],
                 "s": [rng.randrange(2) for _ in range(net.n)],
                 "y": [rng.randrange(tmax + 1) for _ in range(net.n)],
                 "x": [rng.randrange(tmax + 1) for _ in range(net.m + net.n)]}
        await tb.write_state(state)
        for key, values in state.items():
            setattr(golden, key, np.array(values, bool if key == "s" else np.int64))
    split = case.get("split", len(stim) // 2)
    for part, (lo, hi) in enumerate(((0, split), (split, len(stim)))):
        got = await tb.run(stim[lo:hi], probe=probe, inputs=inputs, max_steps=case.get("max_steps", 8),
                           first_step=lo, form=case.get("form"), rng=rng)
        for t, step in zip(range(lo, hi), got):
            expected = golden.step(stim[t], rates)
            if inputs:
                assert step.inputs_record == encode_spikes(t, np.flatnonzero(golden.u), CONFIG.m), (
                    f"case {case['name']} step {t}: inputs {step.inputs}, expected "
                    f"{np.flatnonzero(golden.u).tolist()}")
            assert step.record == encode_spikes(t, np.flatnonzero(expected), CONFIG.n), (
                f"case {case['name']} step {t}: record {step.record.hex()}, expected spikes "
                f"{np.flatnonzero(expected).tolist()}")
            if probe:
                for problem in (first_mismatch(t, "v", golden.v, step.v), first_mismatch(t, "i", golden.i, step.i)):
                    assert problem is None, f"case {case['name']}: {problem}"
        weights = await tb.read_weights()
        problems = [first_mismatch(hi - 1, "weights", golden.weights, weights)]
        state = await tb.read_state()
        for key in ("v", "i", "r", "y", "x"):
            problems.append(first_mismatch(hi - 1, key, getattr(golden, key), state[key]))
        problems.append(first_mismatch(hi - 1, "s", golden.s.astype(np.int64), state["s"]))
        g = await tb.read_gen_state()
        problems.append(None if g == golden.g else f"step {hi - 1}: generator state {g:#x}, expected {golden.g:#x}")
        problems = [p for p in problems if p]
        assert not problems, f"case {case['name']} part {part}: " + "; ".join(problems)
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["step"] == len(stim) and status["running"] == 0
    assert status["last_step_cycles"] > 0
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
async def retries_are_answered_but_not_applied_twice(dut):
    """The same command and seq again gets the same answer; writes and RUN are not repeated."""
    tb = await started(dut)
    net = random_case_network(CONFIG, {"seed": 5, "learn": 1, "plastic_all": True})
    await tb.load(net)
    # RUN: the retry gets the reply again, without records, and runs nothing.
    stim = case_stimulus(net, {"seed": 5, "steps": 3, "rate": 0.6})
    payload = encode_run_request(stim, CONFIG.m)
    seq = tb.next_seq()
    ex = await tb.ok(Command.RUN, payload, seq=seq)
    assert len(ex.records) == 3 and ex.data == (3).to_bytes(4, "little")
    again = await tb.ok(Command.RUN, payload, seq=seq)     # at once: it must be the last request
    assert again.data == ex.data and again.records == [], f"a retried RUN sent {len(again.records)} records"
    golden = GoldenModel(net)
    for inputs in stim:
        golden.step(inputs)
    assert status_fields(await tb.ok(Command.STATUS))["step"] == 3
    state = await tb.read_state()
    for key in ("v", "i", "r", "x", "y"):
        assert first_mismatch(3, key, getattr(golden, key), state[key]) is None, "a retried RUN ran again"
    assert np.array_equal(golden.weights, await tb.read_weights())
    assert await tb.read_gen_state() == golden.g, "a retried RUN moved the generator"
    # Once another request came in between, the same RUN with the same seq is a new request.
    ex = await tb.ok(Command.RUN, payload, seq=seq)
    assert len(ex.records) == 3 and tb.parse_records(ex.records, 3, 3, False)[0].step == 3
    # A RUN of no steps is answered at once.
    assert (await tb.ok(Command.RUN, encode_run_request([], CONFIG.m))).data == bytes(4)

    # A write, then "its retry" carrying other data: answered OK, not written.
    weights = tb.table(Family.WEIGHTS, 0)
    first = pack_weights([1] * CONFIG.lanes, CONFIG.W)
    other = pack_weights([-2] * CONFIG.lanes, CONFIG.W)
    seq = tb.next_seq()
    await tb.ok(Command.WRITE_WEIGHTS, memory_request(0, 3, 1) + words_to_bytes([first], weights.word_bits), seq=seq)
    await tb.ok(Command.WRITE_WEIGHTS, memory_request(0, 3, 1) + words_to_bytes([other], weights.word_bits), seq=seq)
    assert await tb.read_table(Family.WEIGHTS, 0, 3, 1) == [first]
    # The same seq with another command is a new request; a read retried is read again.
    seq = tb.next_seq()
    await tb.ok(Command.WRITE_WEIGHTS, memory_request(0, 3, 1) + words_to_bytes([other], weights.word_bits), seq=seq)
    await tb.ok(Command.READ_WEIGHTS, memory_request(0, 3, 1), seq=seq)
    assert (await tb.ok(Command.READ_WEIGHTS, memory_request(0, 3, 1), seq=seq)).data == words_to_bytes(
        [other], weights.word_bits)
    # A refused write retried is refused the same way.
    seq = tb.next_seq()
    for _ in range(2):
        ex = await tb.request(Command.WRITE_WEIGHTS, memory_request(0, weights.depth, 1) + b"\x00" * weights.word_bytes,
                              seq=seq)
        assert ex.status == Status.BAD_ADDRESS
    # RESET_STATE retried: answered OK; HELLO forgets the last request, so the same seq runs again.
    # RESET_STATE sets g to the seed, also after a RUN moved it.
    await tb.write_seed(0xDEADBEEF)
    await tb.ok(Command.RUN, encode_run_request(stim[:2], CONFIG.m))
    assert await tb.read_gen_state() != 0xDEADBEEF
    seq = tb.next_seq()
    await tb.ok(Command.RESET_STATE, seq=seq)
    assert await tb.read_gen_state() == 0xDEADBEEF
    await tb.ok(Command.RESET_STATE, seq=seq)
    seq = tb.next_seq()
    await tb.ok(Command.RUN, encode_run_request(stim[:1], CONFIG.m), seq=seq)
    await tb.ok(Command.HELLO)
    ex = await tb.ok(Command.RUN, encode_run_request(stim[:1], CONFIG.m), seq=seq)
    assert len(ex.records) == 1, "after HELLO, a RUN with the last seq is a new request"
    assert status_fields(await tb.ok(Command.STATUS))["step"] == 2
    assert not tb.nacks and not tb.bad_frames


@cocotb.test()
async def busy_while_a_run_is_in_progress(dut):
    """During a RUN, STATUS answers (running=1) and everything else is BUSY, the RUN's
    own retry included; the RUN's records and reply still arrive complete."""
    tb = await started(dut)
    net = random_case_network(CONFIG, {"seed": 8, "learn": 0})
    await tb.load(net)
    period = 30 * 10 * tb.divisor * 20      # a step takes as long as ~20 short frames
    period_addr = GLOBAL_REGISTERS.index("period")
    await tb.write_table(Family.GLOBALS, 0, period_addr, [period])
    stim = case_stimulus(net, {"seed": 8, "steps": 4, "rate": 0.5})
    payload = encode_run_request(stim, CONFIG.m, RunFlags.PROBE)
    run_seq = tb.next_seq()
    await tb.send_frame(Command.RUN, run_seq, payload)
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["running"] == 1 and status["step"] < 4, status
    assert int(dut.led_running.value) == 1
    ex = await tb.request(Command.WRITE_GLOBALS, memory_request(0, period_addr, 1) + (0).to_bytes(4, "little"))
    assert ex.status == Status.BUSY and len(ex.reply.payload) == 1
    for command, body in ((Command.HELLO, b""), (Command.ECHO, b"abc"), (Command.READ_WEIGHTS, memory_request(0, 0, 1)),
                          (Command.RESET_STATE, b""), (0x55, b"")):
        assert (await tb.request(command, body)).status == Status.BUSY
    # A damaged frame during the run is NACKed; the run goes on.
    body = bytearray(frame_body(Command.STATUS, 0x44))
    body[0] ^= 0x10
    await tb.line.send(b"\x00" + cobs_encode(bytes(body)) + b"\x00")
    await tb.wait_for(lambda: len(tb.nacks) == 1, tb.byte_ns(400), "NACK during a RUN")
    assert tb.nacks[0].payload == bytes([Status.BAD_CRC])
    # The RUN itself, retried while it runs: BUSY too (its records keep coming).
    await tb.send_frame(Command.RUN, run_seq, payload)
    busy = await tb.reply(Command.RUN, run_seq, take_records=False)
    assert busy.status == Status.BUSY, busy.reply
    done = await tb.reply(Command.RUN, run_seq, timeout_ns=8 * period * 10 + tb.byte_ns(4000))
    assert done.status == Status.OK and done.data == (4).to_bytes(4, "little")
    # Retried once it is over (and before any other request), the RUN gets the stored reply, without records.
    again = await tb.ok(Command.RUN, payload, seq=run_seq)
    assert again.data == done.data and not again.records
    golden = GoldenModel(net)
    steps = tb.parse_records(done.records, 4, 0, True)
    for t, step in enumerate(steps):
        expected = golden.step(stim[t])
        assert step.spikes == np.flatnonzero(expected).tolist(), f"step {t}"
        assert np.array_equal(step.v, golden.v) and np.array_equal(step.i, golden.i), f"step {t}"
    assert await tb.read_table(Family.GLOBALS, 0, period_addr, 1) == [period], "a BUSY write was applied"
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["running"] == 0 and status["step"] == 4 and status["crc_errors"] == 1
    assert len(tb.nacks) == 1 and not tb.bad_frames


@cocotb.test()
async def damaged_frames_are_nacked_and_cost_only_themselves(dut):
    """Bad CRC, bad COBS, cut frames, a wrong length field, an overlong frame, a frame
    sent while busy and a UART framing error: each is counted, NACKed (seq 0) and the
    link keeps working."""
    tb = await started(dut)
    body = bytearray(frame_body(Command.ECHO, 0x31, b"payload"))
    body[-1] ^= 0x40
    await tb.line.send(b"\x00" + cobs_encode(bytes(body)) + b"\x00")
    await tb.wait_for(lambda: len(tb.nacks) == 1, tb.byte_ns(200), "NACK of a bad CRC")
    assert tb.nacks[-1].payload == bytes([Status.BAD_CRC]) and tb.nacks[-1].seq == 0
    assert not tb.inbox, "a frame with a bad CRC was answered"

    good = bytes([0]) + cobs_encode(frame_body(Command.ECHO, 0x32, b"cut")) + bytes([0])
    await tb.line.send(good[:7])                               # cut: the next frame's delimiter ends it
    assert (await tb.ok(Command.ECHO, b"after cut")).data == b"after cut"
    await tb.wait_for(lambda: len(tb.nacks) == 2, tb.byte_ns(200), "NACK of a cut frame")
    assert tb.nacks[-1].payload == bytes([Status.BAD_LENGTH])

    wrong = bytearray(frame_body(Command.ECHO, 0x33, b"abc"))[:-2]
    wrong[2] = 5                                               # says 5 bytes, holds 3; CRC good
    wrong += crc16(bytes(wrong)).to_bytes(2, "little")
    await tb.line.send(b"\x00" + cobs_encode(bytes(wrong)) + b"\x00")
    await tb.line.send(b"\x00\x07\x11\x22\x00")                # COBS code runs past the delimiter
    await tb.line.send(b"\x00" + bytes([3, 1, 2, 9, 1, 2, 3, 4]) + b"\x00")  # garbage: a cut COBS group
    await tb.line.send(b"\x00" + cobs_encode(bytes(range(1, 256)) * 5) + b"\x00")  # longer than MAX_FRAME
    # Frames refused in quick succession may share one NACK (the latest status).
    await tb.wait_for(lambda: len(tb.nacks) >= 3, tb.byte_ns(2000), "NACKs of malformed frames")
    await tb.quiet(tb.byte_ns(40))
    assert all(n.payload == bytes([Status.BAD_LENGTH]) for n in tb.nacks[2:])

    await tb.line.send(b"\xff", bad_stop=True)                 # a byte with a 0 stop bit, between frames
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["crc_errors"] == 1, status
    assert status["format_errors"] == 5, status
    assert status["uart_framing_errors"] == 1 and status["uart_overruns"] == 0, status
    assert status["dropped_frames"] == 0 and status["lost_records"] == 0

    # A frame that arrives while the device still answers the last one is dropped.
    echo = bytes(range(1, 251)) * 4
    seq = tb.next_seq()
    await tb.send_frame(Command.ECHO, seq, echo)
    await tb.send_frame(Command.HELLO, tb.next_seq())
    assert (await tb.reply(Command.ECHO, seq)).data == echo
    await tb.wait_for(lambda: tb.nacks[-1].payload == bytes([Status.BUSY]), tb.byte_ns(200), "NACK BUSY")
    assert not await tb.quiet(tb.byte_ns(100)), "the dropped HELLO was answered"
    status = status_fields(await tb.ok(Command.STATUS))
    assert status["dropped_frames"] == 1, status
    assert int(dut.led_error.value) == 1
    hello = unpack_fields(HELLO_REPLY_FIELDS, (await tb.ok(Command.HELLO)).data)
    assert hello["n"] == CONFIG.n
    assert not tb.bad_frames, tb.bad_frames
