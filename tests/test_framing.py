"""FrameReceiver / FrameSender in the Amaranth simulator, against the host's codec (host/framing.py)."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from neurofabric.hdl.uart import UARTRx, UARTTx
from neurofabric.hdl.framing import FrameReceiver, FrameSender, Refusal, crc16_processor
from neurofabric.contract.protocol import MAX_PAYLOAD, Command
from neurofabric.host.framing import (
    Frame, FrameDecoder, FrameError, FrameFault, cobs_encode, crc16, encode_frame, frame_body,
)


def simulate(dut, *testbenches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.run()


def random_payload(rng, n):
    # Mix zero-heavy and zero-free payloads so COBS groups of every size appear.
    if rng.random() < 0.3:
        return bytes(rng.randrange(1, 256) for _ in range(n))
    return bytes(rng.choice([0, rng.randrange(256)]) for _ in range(n))


def random_length(rng):
    return rng.choice([0, 1, 2, rng.randrange(250, 260), rng.randrange(505, 515), rng.randrange(64)])


def frame_consumer(rx, got, rng):
    """Background testbench: take frames from the receiver with random back-pressure."""
    async def consume(ctx):
        header_ready = payload_ready = False
        header, payload = None, bytearray()
        async for _, _, h_valid, h_payload, p_valid, p_payload in ctx.tick().sample(
                rx.header.valid, rx.header.payload, rx.payload.valid, rx.payload.payload):
            if h_valid and header_ready:
                assert header is None
                header, payload = h_payload, bytearray()
            if p_valid and payload_ready:
                assert header is not None and len(payload) < header.length
                payload.append(p_payload.data)
                assert p_payload.last == (len(payload) == header.length)
            if header is not None and len(payload) == header.length:
                got.append(Frame(header.command, header.seq, bytes(payload)))
                header = None
            header_ready = rng.random() < 0.7
            payload_ready = rng.random() < 0.7
            ctx.set(rx.header.ready, header_ready)
            ctx.set(rx.payload.ready, payload_ready)
    return consume


async def put_bytes(ctx, rx, data, gap=0):
    for byte in data:
        ctx.set(rx.data.valid, 1)
        ctx.set(rx.data.payload, byte)
        await ctx.tick()
        assert ctx.get(rx.data.ready)
        ctx.set(rx.data.valid, 0)
        if gap:
            await ctx.tick().repeat(gap)


async def take_frame(ctx, rx):
    """Take the next whole frame from the receiver, ready on both streams."""
    ctx.set(rx.header.ready, 1)
    ctx.set(rx.payload.ready, 1)
    header, = await ctx.tick().sample(rx.header.payload).until(rx.header.valid)
    payload = bytearray()
    while len(payload) < header.length:
        byte, = await ctx.tick().sample(rx.payload.payload).until(rx.payload.valid)
        payload.append(byte.data)
    return Frame(header.command, header.seq, bytes(payload))


def drain_cycles(frame):
    """Cycles a consumer with some back-pressure needs to take a frame."""
    return 3 * len(frame.payload) + 20


# -- CRC unit --------------------------------------------------------------------

def test_gateware_crc_unit_matches_the_host_reference():
    # amaranth.lib.crc in the gateware, the host's own table-driven crc16: two
    # implementations of the protocol's CRC, checked against each other.
    unit = crc16_processor()
    rng = random.Random(3)

    async def tb(ctx):
        for _ in range(40):
            message = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
            ctx.set(unit.start, 1)
            await ctx.tick()
            ctx.set(unit.start, 0)
            for b in message:
                ctx.set(unit.data, b)
                ctx.set(unit.valid, 1)
                await ctx.tick()
            ctx.set(unit.valid, 0)
            assert ctx.get(unit.crc) == crc16(message)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


# -- receiver ---------------------------------------------------------------------

def corrupt_items(rng):
    """A random sequence of good frames and damaged ones, as (wire bytes, Frame or None)."""
    items = []
    for _ in range(14):
        frame = Frame(rng.choice(list(Command)), rng.randrange(256),
                      random_payload(rng, random_length(rng)))
        wire = encode_frame(frame.command, frame.seq, frame.payload)
        kind = rng.choice(["good", "good", "garbage", "cut", "crc", "length", "short"])
        if kind == "good":
            items.append((wire, frame))
        elif kind == "garbage":
            items.append((bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))), None))
        elif kind == "cut":
            items.append((wire[:rng.randrange(2, len(wire) - 1)], None))
        elif kind == "crc":
            body = bytearray(frame_body(frame.command, frame.seq, frame.payload))
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
            items.append((b"\x00" + cobs_encode(bytes(body)) + b"\x00", None))
        elif kind == "length":
            body = bytearray(frame_body(frame.command, frame.seq, frame.payload))[:-2]
            body[2] ^= 1 << rng.randrange(4)                        # length field off, CRC good
            body += crc16(body).to_bytes(2, "little")
            items.append((b"\x00" + cobs_encode(bytes(body)) + b"\x00", None))
        else:
            items.append((b"\x00" + cobs_encode(bytes(rng.randrange(256) for _ in range(5))) + b"\x00", None))
    return items


@pytest.mark.parametrize("seed", range(3))
def test_receiver_matches_python_decoder_on_damaged_streams(seed):
    rng = random.Random(seed)
    items = corrupt_items(rng)
    stream = b"".join(wire for wire, _ in items)
    reference = FrameDecoder().feed(stream)
    expected = [r for r in reference if isinstance(r, Frame)]
    assert expected == [f for _, f in items if f is not None]
    crc_faults = sum(isinstance(r, FrameError) and r.fault is FrameFault.CRC for r in reference)
    format_faults = sum(isinstance(r, FrameError) and r.fault is not FrameFault.CRC for r in reference)

    dut = FrameReceiver()
    got, counters, refusals = [], [], []

    async def drive(ctx):
        for wire, frame in items:
            await put_bytes(ctx, dut, wire, gap=rng.choice([0, 0, 3]))
            await ctx.tick().repeat(drain_cycles(frame) if frame else 2)
        counters.extend([ctx.get(dut.crc_errors), ctx.get(dut.format_errors), ctx.get(dut.dropped)])

    async def watch(ctx):
        async for _, _, refused in ctx.tick().sample(dut.refused):
            if refused != Refusal.NONE:
                refusals.append(refused)

    simulate(dut, drive, background=[frame_consumer(dut, got, rng), watch])
    assert got == expected
    assert counters == [crc_faults, format_faults, 0]
    assert crc_faults + format_faults > 0
    # One `refused` strobe per counted frame, with its reason.
    assert refusals.count(Refusal.CRC) == crc_faults and refusals.count(Refusal.FORMAT) == format_faults
    assert len(refusals) == crc_faults + format_faults


def test_receiver_full_size_frame_and_empty_payload():
    rng = random.Random(9)
    frames = [Frame(Command.WRITE_WEIGHTS, 1, random_payload(rng, MAX_PAYLOAD)),
              Frame(Command.HELLO, 2, b""),
              Frame(Command.ECHO, 3, bytes(MAX_PAYLOAD))]
    dut = FrameReceiver()
    got = []

    async def drive(ctx):
        for frame in frames:
            await put_bytes(ctx, dut, encode_frame(frame.command, frame.seq, frame.payload))
            await ctx.tick().repeat(drain_cycles(frame))

    simulate(dut, drive, background=[frame_consumer(dut, got, rng)])
    assert got == frames


def test_receiver_refuses_oversized_frame_then_recovers():
    body = bytes([Command.ECHO, 0]) + (MAX_PAYLOAD + 1).to_bytes(2, "little") + bytes(range(1, 256)) * 5
    body = body[:4 + MAX_PAYLOAD + 1]
    body += crc16(body).to_bytes(2, "little")
    good = Frame(Command.STATUS, 77, b"ok")
    dut = FrameReceiver()
    got, counters = [], []

    async def drive(ctx):
        await put_bytes(ctx, dut, b"\x00" + cobs_encode(body) + b"\x00")
        await put_bytes(ctx, dut, encode_frame(good.command, good.seq, good.payload))
        await ctx.tick().repeat(drain_cycles(good))
        counters.extend([ctx.get(dut.crc_errors), ctx.get(dut.format_errors)])

    simulate(dut, drive, background=[frame_consumer(dut, got, random.Random(0))])
    assert got == [good] and counters == [0, 1]


def test_receiver_drops_frame_arriving_while_busy_and_counts_it():
    first = Frame(Command.ECHO, 1, bytes(range(1, 41)))
    second = Frame(Command.ECHO, 2, b"lost")
    third = Frame(Command.ECHO, 3, b"kept")
    dut = FrameReceiver()
    got, counters = [], []

    async def drive(ctx):
        await put_bytes(ctx, dut, encode_frame(first.command, first.seq, first.payload))
        # Nobody takes the first frame yet: the second arrives while it is held.
        await put_bytes(ctx, dut, encode_frame(second.command, second.seq, second.payload))
        counters.append(ctx.get(dut.dropped))
        got.append(await take_frame(ctx, dut))
        await ctx.tick().repeat(3)
        await put_bytes(ctx, dut, encode_frame(third.command, third.seq, third.payload))
        got.append(await take_frame(ctx, dut))
        counters.append(ctx.get(dut.dropped))

    simulate(dut, drive)
    assert got == [first, third]
    assert counters == [1, 1]


def test_receiver_holds_a_payload_and_hands_out_headers_only_meanwhile():
    """With `hold` from the cycle its header is taken, a frame's payload stays in the buffer
    for random reads; frames that come meanwhile are checked and handed out as headers alone
    (a bad one is still counted); after `hold` falls, frames come whole again."""
    rng = random.Random(21)
    kept = Frame(Command.RUN, 1, bytes(rng.randrange(256) for _ in range(300)))
    during = [Frame(Command.STATUS, 2, b""), Frame(Command.ECHO, 3, b"not kept")]
    after = Frame(Command.ECHO, 4, b"whole again")
    dut = FrameReceiver()
    headers, read_back, got, counters = [], [], [], []

    async def take_header(ctx, hold):
        ctx.set(dut.header.ready, 1)
        ctx.set(dut.hold, hold)
        header, = await ctx.tick().sample(dut.header.payload).until(dut.header.valid)
        ctx.set(dut.header.ready, 0)
        headers.append((header.command, header.seq, header.length))

    async def drive(ctx):
        await put_bytes(ctx, dut, encode_frame(kept.command, kept.seq, kept.payload))
        await take_header(ctx, 1)                  # hold rises as the header is taken
        for frame in during:
            await put_bytes(ctx, dut, encode_frame(frame.command, frame.seq, frame.payload))
            await take_header(ctx, 1)
            await ctx.tick().repeat(3)
            assert not ctx.get(dut.payload.valid)  # no payload while held
        body = bytearray(frame_body(Command.ECHO, 5, b"bad"))
        body[-1] ^= 1
        await put_bytes(ctx, dut, b"\x00" + cobs_encode(bytes(body)) + b"\x00")
        for address in range(len(kept.payload)):
            ctx.set(dut.read_addr, address)
            await ctx.tick()
            read_back.append(ctx.get(dut.read_data))
        counters.append(ctx.get(dut.crc_errors))
        ctx.set(dut.hold, 0)
        await put_bytes(ctx, dut, encode_frame(after.command, after.seq, after.payload))
        got.append(await take_frame(ctx, dut))

    simulate(dut, drive)
    assert headers == [(f.command, f.seq, len(f.payload)) for f in [kept] + during]
    assert bytes(read_back) == kept.payload
    assert counters == [1]
    assert got == [after]


# -- sender -------------------------------------------------------------------------

def sender_collector(tx, out, rng):
    async def collect(ctx):
        ready = False
        async for _, _, valid, byte in ctx.tick().sample(tx.data.valid, tx.data.payload):
            if valid and ready:
                out.append(byte)
            ready = rng.random() < 0.7
            ctx.set(tx.data.ready, ready)
    return collect


async def send_frame(ctx, tx, frame, rng):
    """The frame's header bytes, then its payload, on `frame`, with random gaps."""
    body = bytes([frame.command, frame.seq]) + len(frame.payload).to_bytes(2, "little") + frame.payload
    for byte in body:
        if rng.random() < 0.1:
            await ctx.tick().repeat(rng.randrange(1, 5))
        ctx.set(tx.frame.valid, 1)
        ctx.set(tx.frame.payload, byte)
        await ctx.tick().until(tx.frame.ready)
        ctx.set(tx.frame.valid, 0)


@pytest.mark.parametrize("seed", range(3))
def test_sender_output_is_encode_frame_byte_for_byte(seed):
    rng = random.Random(100 + seed)
    frames = [Frame(rng.choice(list(Command)) | 0x80, rng.randrange(256),
                    random_payload(rng, random_length(rng))) for _ in range(6)]
    dut = FrameSender()
    out = []

    async def drive(ctx):
        for frame in frames:
            await send_frame(ctx, dut, frame, rng)
        expected = sum(len(encode_frame(f.command, f.seq, f.payload)) for f in frames)
        for _ in range(20 * expected):
            if len(out) >= expected:
                break
            await ctx.tick()
        await ctx.tick().repeat(20)

    async def watch(ctx):
        async for _, _, busy, valid in ctx.tick().sample(dut.busy, dut.data.valid):
            busy_seen.append(busy)
            assert busy or not valid              # bytes go out only while busy

    busy_seen = []
    simulate(dut, drive, background=[sender_collector(dut, out, rng), watch])
    assert bytes(out) == b"".join(encode_frame(f.command, f.seq, f.payload) for f in frames)
    assert FrameDecoder().feed(bytes(out)) == frames
    assert any(busy_seen) and not busy_seen[-1]   # idle again after the last delimiter


def test_sender_full_size_and_cobs_boundaries():
    rng = random.Random(7)
    frames = [Frame(Command.READ_WEIGHTS | 0x80, 1, bytes(rng.randrange(1, 256) for _ in range(MAX_PAYLOAD))),
              Frame(Command.STATUS | 0x80, 2, b""),
              # header ff ff 01 01 + 257 non-zero bytes: a full 254-byte group, then more
              Frame(0xFF, 0xFF, bytes([0xFF]) * 257),
              Frame(Command.ECHO | 0x80, 0, bytes(300))]
    dut = FrameSender()
    out = []

    async def drive(ctx):
        for frame in frames:
            await send_frame(ctx, dut, frame, rng)
        expected = sum(len(encode_frame(f.command, f.seq, f.payload)) for f in frames)
        while len(out) < expected:
            await ctx.tick()
        await ctx.tick().repeat(20)

    simulate(dut, drive, background=[sender_collector(dut, out, random.Random(1))])
    assert bytes(out) == b"".join(encode_frame(f.command, f.seq, f.payload) for f in frames)
    assert FrameDecoder().feed(bytes(out)) == frames


# -- through the UART ---------------------------------------------------------------

def test_sender_uart_receiver_chain():
    rng = random.Random(11)
    frames = [Frame(Command.ECHO, k, random_payload(rng, n)) for k, n in enumerate([0, 5, 30])]
    m = Module()
    m.submodules.sender = sender = FrameSender()
    m.submodules.tx = tx = UARTTx(clk_hz=4_000_000, baud=1_000_000)
    m.submodules.rx = rx = UARTRx(clk_hz=4_000_000, baud=1_000_000)
    m.submodules.receiver = receiver = FrameReceiver()
    wiring.connect(m, sender.data, tx.data)
    m.d.comb += rx.rx.eq(tx.tx)
    wiring.connect(m, rx.data, receiver.data)
    got, counters = [], []

    async def drive(ctx):
        for frame in frames:
            await send_frame(ctx, sender, frame, rng)
        total = sum(len(encode_frame(f.command, f.seq, f.payload)) for f in frames)
        await ctx.tick().repeat(40 * total + 200)
        counters.extend(ctx.get(c) for c in (rx.framing_errors, rx.overruns, receiver.crc_errors,
                                             receiver.format_errors, receiver.dropped))

    simulate(m, drive, background=[frame_consumer(receiver, got, rng)])
    assert got == frames
    assert counters == [0] * 5
