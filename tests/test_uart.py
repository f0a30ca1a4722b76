"""UARTTx / UARTRx in the Amaranth simulator, against bit-level models of the line."""

import random

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.sim import Simulator

from neurofabric.hdl.uart import MAX_BAUD_ERROR, UARTRx, UARTTx, uart_divisor
from neurofabric.host.errors import BuildError

DIVISORS = [4, 5, 7, 16, 104, 217]
BAUD = 1_000_000


def n_bytes(divisor, budget_cycles=4000):
    """How many bytes fit a simulation of about `budget_cycles` cycles."""
    return max(2, min(32, budget_cycles // (10 * divisor)))


def simulate(dut, *testbenches, background=()):
    sim = Simulator(dut)
    sim.add_clock(1 / 12e6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.run()


def line_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def drive_byte(ctx, pin, byte, bit_cycles, *, stop=1, phase=0.0):
    """Drive one 8N1 byte on `pin`, each bit `bit_cycles` (may be fractional) long.

    Returns the fractional phase left over, to carry into the next byte.
    """
    for bit in line_bits(byte, stop):
        ctx.set(pin, bit)
        phase += bit_cycles
        whole = int(phase)
        phase -= whole
        await ctx.tick().repeat(whole)
    return phase


async def idle(ctx, pin, cycles):
    ctx.set(pin, 1)
    await ctx.tick().repeat(cycles)


def rx_collector(rx, got):
    async def collect(ctx):
        ctx.set(rx.data.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(rx.data.valid, rx.data.payload):
            if valid:
                got.append(payload)
    return collect


async def stream_put(ctx, stream, payload):
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


# -- build-time divider and baud error -----------------------------------------

def test_divisor_exact_rates():
    assert uart_divisor(12_000_000, 3_000_000) == (4, 0.0)
    assert uart_divisor(12_000_000, 115_200)[0] == 104
    assert uart_divisor(25_000_000, 115_200)[0] == 217


def elaborated(dut):
    Fragment.get(dut, None)
    return dut


def test_baud_error_exposed_and_signed():
    tx = elaborated(UARTTx(clk_hz=12_000_000, baud=115_200))
    assert tx.divisor == 104
    assert tx.baud_error == pytest.approx((12e6 / 104 - 115_200) / 115_200)
    assert 0 < tx.baud_error < MAX_BAUD_ERROR
    rx = elaborated(UARTRx(clk_hz=12_000_000, baud=1_100_000))   # 12e6 / 11 = 1.0909 Mbaud
    assert rx.divisor == 11 and rx.baud_error < 0


def test_12mhz_3mbaud_accepted():
    assert elaborated(UARTRx(clk_hz=12_000_000, baud=3_000_000)).baud_error == 0.0
    assert elaborated(UARTTx(clk_hz=12_000_000, baud=3_000_000)).divisor == 4


@pytest.mark.parametrize("cls", [UARTTx, UARTRx])
def test_12mhz_5mbaud_refused_naming_everything(cls):
    with pytest.raises(BuildError, match=r"baud=5000000.*clk_hz=12000000.*divisor 2.*\+20\.00%"):
        cls(clk_hz=12_000_000, baud=5_000_000)


@pytest.mark.parametrize("baud", [2_900_000, 1_300_000])
def test_baud_error_above_2_percent_refused(baud):
    with pytest.raises(BuildError, match="error of"):
        UARTTx(clk_hz=12_000_000, baud=baud)


def test_divisor_below_minimum_refused():
    # 12 MHz / 4 Mbaud is exact but leaves 3 cycles per bit.
    with pytest.raises(BuildError, match="divisor would be 3 cycles per bit"):
        UARTRx(clk_hz=12_000_000, baud=4_000_000)


@pytest.mark.parametrize("clk_hz,baud", [(0, 115_200), (12e6, -1), (12e6, "fast")])
def test_nonsense_rates_refused(clk_hz, baud):
    with pytest.raises(BuildError, match="must be a positive number"):
        uart_divisor(clk_hz, baud)


# -- transmitter against a bit-level line checker ------------------------------

def decode_line(samples, divisor):
    """Decode 8N1 bytes from a per-cycle record of a line: `(start cycles, bytes)`.

    A byte starts at a high-to-low edge; its bits are read at their centres.
    """
    starts, data, t = [], [], 1
    while t < len(samples):
        if samples[t - 1] == 1 and samples[t] == 0:
            centres = [t + divisor // 2 + k * divisor for k in range(10)]
            if centres[-1] >= len(samples):
                break
            bits = [samples[c] for c in centres]
            assert bits[0] == 0 and bits[9] == 1, f"bad frame at cycle {t}: {bits}"
            starts.append(t)
            data.append(sum(b << i for i, b in enumerate(bits[1:9])))
            t = centres[-1]
        t += 1
    return starts, data


def record_line(pin, samples):
    async def record(ctx):
        samples.append(ctx.get(pin))
        async for _, _, value in ctx.tick().sample(pin):
            samples.append(value)
    return record


@pytest.mark.parametrize("divisor", DIVISORS)
def test_tx_bits_at_every_centre(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(n_bytes(divisor))]
    dut = UARTTx(clk_hz=divisor * BAUD, baud=BAUD)
    samples = []

    async def send(ctx):
        for byte in data:
            await stream_put(ctx, dut.data, byte)
        await ctx.tick().repeat(12 * divisor)

    simulate(dut, send, background=[record_line(dut.tx, samples)])
    assert samples[0] == 1
    starts, got = decode_line(samples, divisor)
    assert got == data
    # Back-to-back bytes: one start edge every 10 bit times exactly, no gap.
    assert [b - a for a, b in zip(starts, starts[1:])] == [10 * divisor] * (len(data) - 1)
    assert samples[-1] == 1


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_tx_bit_width_exact(divisor):
    # 0x00 holds the line low for start + 8 data bits: exactly 9 bit times.
    dut = UARTTx(clk_hz=divisor * BAUD, baud=BAUD)
    low = []

    async def send(ctx):
        await stream_put(ctx, dut.data, 0x00)

    async def measure(ctx):
        while ctx.get(dut.tx):
            await ctx.tick()
        n = 0
        while not ctx.get(dut.tx):
            await ctx.tick()
            n += 1
        low.append(n)
        await ctx.tick().repeat(divisor)
        assert ctx.get(dut.tx) == 1

    simulate(dut, send, measure)
    assert low == [9 * divisor]


def test_tx_idles_high_and_ready():
    dut = UARTTx(clk_hz=16 * BAUD, baud=BAUD)

    async def tb(ctx):
        for _ in range(50):
            assert ctx.get(dut.tx) == 1 and ctx.get(dut.data.ready) == 1
            await ctx.tick()

    simulate(dut, tb)


# -- receiver against a bit-level line driver ----------------------------------

@pytest.mark.parametrize("divisor", DIVISORS)
def test_rx_random_bytes_back_to_back(divisor):
    rng = random.Random(100 + divisor)
    data = [rng.randrange(256) for _ in range(n_bytes(divisor))]
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    got = []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        for byte in data:
            await drive_byte(ctx, dut.rx, byte, divisor)
        await idle(ctx, dut.rx, 2 * divisor)

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == data


@pytest.mark.parametrize("divisor", [16, 104])
@pytest.mark.parametrize("far_end_error", [-0.03, +0.03])
def test_rx_tolerates_3_percent_far_end_error(divisor, far_end_error):
    # The far end's bit is (1 - error) as long when it runs fast by `error`.
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(n_bytes(divisor))]
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    got, counters = [], []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        phase = 0.0
        for byte in data:
            phase = await drive_byte(ctx, dut.rx, byte, divisor / (1 + far_end_error), phase=phase)
        await idle(ctx, dut.rx, 2 * divisor)
        counters.extend([ctx.get(dut.framing_errors), ctx.get(dut.overruns)])

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == data
    assert counters == [0, 0]


@pytest.mark.parametrize("bridge_error", [-0.01, 0.0, +0.01])
def test_ulx3s_rx_at_3_mbaud_takes_the_bridges_bytes(bridge_error):
    # The ULX3S builds at 50 MHz / 17 = 2.94 Mbaud (1.96 % slow); its FT231X sends at 3 Mbaud
    # exactly, 16.67 of the core's cycles per bit, or 1 % off either way.
    divisor, error = uart_divisor(50_000_000, 3_000_000)
    assert divisor == 17 and error == pytest.approx(-0.0196, abs=1e-4)
    rng = random.Random(17)
    data = [rng.randrange(256) for _ in range(24)]
    dut = UARTRx(clk_hz=50_000_000, baud=3_000_000)
    got, counters = [], []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        phase = 0.0
        for byte in data:
            phase = await drive_byte(ctx, dut.rx, byte, 50e6 / 3e6 / (1 + bridge_error), phase=phase)
        await idle(ctx, dut.rx, 2 * divisor)
        counters.extend([ctx.get(dut.framing_errors), ctx.get(dut.overruns)])

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == data
    assert counters == [0, 0]


@pytest.mark.parametrize("divisor", [5, 16])
def test_rx_framing_error_counted_and_next_byte_received(divisor):
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    got, counters = [], []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        await drive_byte(ctx, dut.rx, 0xA5, divisor, stop=0)
        await idle(ctx, dut.rx, divisor)
        counters.append(ctx.get(dut.framing_errors))
        await drive_byte(ctx, dut.rx, 0x3C, divisor)
        await drive_byte(ctx, dut.rx, 0xFF, divisor)
        await idle(ctx, dut.rx, 2 * divisor)
        counters.append(ctx.get(dut.framing_errors))

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == [0x3C, 0xFF]
    assert counters == [1, 1]


def test_rx_break_counts_once_then_recovers():
    divisor = 8
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    got, counters = [], []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        ctx.set(dut.rx, 0)                       # a break: 5 byte times low
        await ctx.tick().repeat(50 * divisor)
        await idle(ctx, dut.rx, divisor)
        await drive_byte(ctx, dut.rx, 0x5A, divisor)
        await idle(ctx, dut.rx, 2 * divisor)
        counters.append(ctx.get(dut.framing_errors))

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == [0x5A] and counters == [1]


def test_rx_framing_error_counter_saturates():
    divisor = 4
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD, counter_width=2)
    counters, strobes = [], []

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        for _ in range(5):
            await drive_byte(ctx, dut.rx, 0x00, divisor, stop=0)
            await idle(ctx, dut.rx, divisor)
            counters.append(ctx.get(dut.framing_errors))

    async def watch(ctx):
        async for _, _, error, count in ctx.tick().sample(dut.error, dut.framing_errors):
            if error:
                strobes.append(count)

    simulate(dut, drive, background=[watch])
    assert counters == [1, 2, 3, 3, 3]
    assert strobes == [0, 1, 2]     # `error` for each count, none once saturated


@pytest.mark.parametrize("divisor", [7, 16, 104])
def test_rx_ignores_start_glitch_shorter_than_half_a_bit(divisor):
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    got, counters = [], []
    glitches = sorted({1, divisor // 4, divisor // 2 - 1} - {0})

    async def drive(ctx):
        await idle(ctx, dut.rx, 2 * divisor)
        for width in glitches:
            ctx.set(dut.rx, 0)
            await ctx.tick().repeat(width)
            await idle(ctx, dut.rx, 2 * divisor)
        await drive_byte(ctx, dut.rx, 0x81, divisor)
        await idle(ctx, dut.rx, 2 * divisor)
        counters.extend([ctx.get(dut.framing_errors), ctx.get(dut.overruns)])

    simulate(dut, drive, background=[rx_collector(dut, got)])
    assert got == [0x81]
    assert counters == [0, 0]


def test_rx_overrun_counted_and_first_byte_kept():
    divisor = 5
    dut = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)

    async def drive(ctx):
        ctx.set(dut.data.ready, 0)
        await idle(ctx, dut.rx, 2 * divisor)
        for byte in (0x11, 0x22, 0x33):
            await drive_byte(ctx, dut.rx, byte, divisor)
        await idle(ctx, dut.rx, 2 * divisor)
        assert ctx.get(dut.overruns) == 2
        assert ctx.get(dut.data.valid) == 1 and ctx.get(dut.data.payload) == 0x11
        ctx.set(dut.data.ready, 1)
        await ctx.tick()
        ctx.set(dut.data.ready, 0)
        assert ctx.get(dut.data.valid) == 0
        await drive_byte(ctx, dut.rx, 0x44, divisor)
        await idle(ctx, dut.rx, divisor)
        assert ctx.get(dut.data.valid) == 1 and ctx.get(dut.data.payload) == 0x44
        assert ctx.get(dut.overruns) == 2

    simulate(dut, drive)


# -- loopback -----------------------------------------------------------------

@pytest.mark.parametrize("divisor", DIVISORS)
def test_loopback_random_bytes(divisor):
    rng = random.Random(200 + divisor)
    data = [rng.randrange(256) for _ in range(n_bytes(divisor))]
    m = Module()
    m.submodules.tx = tx = UARTTx(clk_hz=divisor * BAUD, baud=BAUD)
    m.submodules.rx = rx = UARTRx(clk_hz=divisor * BAUD, baud=BAUD)
    m.d.comb += rx.rx.eq(tx.tx)
    got, counters = [], []

    async def send(ctx):
        for byte in data:
            await stream_put(ctx, tx.data, byte)
        await ctx.tick().repeat(12 * divisor)
        counters.extend([ctx.get(rx.framing_errors), ctx.get(rx.overruns)])

    simulate(m, send, background=[rx_collector(rx, got)])
    assert got == data
    assert counters == [0, 0]
