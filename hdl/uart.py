"""The UART: 8N1 transmitter and receiver with a build-time baud divider.

Both ends of a UART link run on their own clocks, so every bit is timed by a
counter that divides the system clock: `divisor = round(clk_hz / baud)` cycles
per bit. The rounding leaves a relative baud error that the far end has to
absorb. A receiver that resynchronises on every start edge and samples at the
bit centre tolerates about half a bit of drift over the ten bits of a frame,
i.e. roughly +-4-5 % between both ends in total; this side is allowed 2 % of it
(`MAX_BAUD_ERROR`), the rest is the far end's (USB-UART bridges are usually
well under 1 %) plus the sampling jitter of one clock cycle.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

from neurofabric.contract.errors import BuildError

__all__ = ["MAX_BAUD_ERROR", "MIN_DIVISOR", "uart_divisor", "UARTTx", "UARTRx"]

#: Largest relative baud error (|actual - wanted| / wanted) accepted on this side.
MAX_BAUD_ERROR = 0.02

#: Fewest clock cycles per bit: the receiver needs a centre to sample at that
#: lies at least one cycle away from either edge of the bit after its two-stage
#: synchroniser, and a start-glitch filter of at least two cycles.
MIN_DIVISOR = 4

#: Width of the receiver's error counters (saturating).
COUNTER_WIDTH = 16


def uart_divisor(clk_hz, baud):
    """Return ``(divisor, error)`` for a UART clocked at `clk_hz` running at `baud`.

    `divisor` is the number of clock cycles per bit, `error` the relative baud
    error ``(clk_hz / divisor - baud) / baud`` (signed: positive means this side
    runs fast). Raises `BuildError`, naming clk_hz, baud, the divisor and the
    error, when the divisor is below `MIN_DIVISOR` or the error exceeds
    `MAX_BAUD_ERROR`.
    """
    if not (isinstance(clk_hz, (int, float)) and clk_hz > 0):
        raise BuildError(f"UART clk_hz must be a positive number, got {clk_hz!r}")
    if not (isinstance(baud, (int, float)) and baud > 0):
        raise BuildError(f"UART baud must be a positive number, got {baud!r}")
    divisor = max(1, round(clk_hz / baud))
    error = (clk_hz / divisor - baud) / baud
    if abs(error) > MAX_BAUD_ERROR:
        raise BuildError(
            f"UART baud={baud} cannot be made from clk_hz={clk_hz}: the nearest divisor "
            f"{divisor} gives {clk_hz / divisor:.0f} baud, an error of {error:+.2%} "
            f"(allowed +-{MAX_BAUD_ERROR:.0%})")
    if divisor < MIN_DIVISOR:
        raise BuildError(
            f"UART clk_hz={clk_hz} is too slow for baud={baud}: the divisor would be "
            f"{divisor} cycles per bit (error {error:+.2%}), at least {MIN_DIVISOR} "
            f"are needed (baud <= {clk_hz / MIN_DIVISOR:.0f})")
    return divisor, error


def _set_divisor(uart, clk_hz, baud):
    """Set `clk_hz`, `baud`, `divisor` and `baud_error` of a UART, or refuse the rate."""
    uart.clk_hz = clk_hz
    uart.baud = baud
    try:
        uart.divisor, uart.baud_error = uart_divisor(clk_hz, baud)
    except BuildError:
        # Refused before it could be used: no "created but never used" warning later.
        uart._MustUse__silence = True
        raise


class UARTTx(wiring.Component):
    """8N1 UART transmitter.

    Takes bytes from the `data` stream (one start bit, eight data bits LSB
    first, one stop bit) and drives `tx`, which idles high. It accepts the next
    byte in the last cycle of the stop bit, so back-to-back bytes leave no gap.

    Attributes
    ----------
    divisor : int
        Clock cycles per bit.
    baud_error : float
        Relative error of the actual baud rate (see `uart_divisor`).
    """

    def __init__(self, *, clk_hz, baud):
        _set_divisor(self, clk_hz, baud)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()

        # Start bit, data LSB first, stop bit; shifted out from bit 0, refilled with 1s.
        shreg = Signal(10, init=0x3FF)
        bits_left = Signal(range(11))
        timer = Signal(range(self.divisor))

        busy = bits_left != 0
        last_cycle = (bits_left == 1) & (timer == 0)
        m.d.comb += self.data.ready.eq(~busy | last_cycle)
        m.d.comb += self.tx.eq(shreg[0])

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                bits_left.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(busy):
            with m.If(timer == 0):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits_left.eq(bits_left - 1),
                    timer.eq(self.divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        return m


class UARTRx(wiring.Component):
    """8N1 UART receiver.

    `rx` is synchronised by two flip-flops, then a falling edge on an idle line
    starts a byte. The start bit is sampled again half a bit later, so a glitch
    shorter than half a bit does not start a byte; the data bits and the stop
    bit are sampled at their centres. A byte whose stop bit reads 0 is dropped
    and counted in `framing_errors`; the receiver then waits for the line to go
    high before it looks for the next start bit (a break or a stuck-low line
    counts once). A byte that completes while the previous one still waits in
    the `data` stream (valid and not ready) is dropped and counted in
    `overruns`. Both counters (`counter_width` bits, 16 by default) saturate;
    `error` is 1 for the one cycle in which either of them counts.

    Attributes
    ----------
    divisor : int
        Clock cycles per bit.
    baud_error : float
        Relative error of the actual baud rate (see `uart_divisor`).
    """

    def __init__(self, *, clk_hz, baud, counter_width=COUNTER_WIDTH):
        _set_divisor(self, clk_hz, baud)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "framing_errors": Out(counter_width),
            "overruns": Out(counter_width),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()

        rx = Signal(init=1)
        m.submodules.rx_sync = cdc.FFSynchronizer(self.rx, rx, init=1, stages=2)

        half = self.divisor // 2
        timer = Signal(range(self.divisor))
        shreg = Signal(8)
        bit = Signal(range(8))

        def count(counter):
            with m.If(~counter.all()):  # saturate
                m.d.sync += counter.eq(counter + 1)
                m.d.comb += self.error.eq(1)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(half - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        # Shorter than half a bit: a glitch, not a start bit.
                        m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [
                        shreg.eq(Cat(shreg[1:], rx)),
                        bit.eq(bit + 1),
                        timer.eq(self.divisor - 1),
                    ]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.data.valid & ~self.data.ready):
                            count(self.overruns)
                        with m.Else():
                            m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                        # Back to IDLE at the stop bit's centre: the next falling
                        # edge may come early when the far end runs fast.
                        m.next = "IDLE"
                    with m.Else():
                        count(self.framing_errors)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                # A start bit is a falling edge: wait for the line to idle first.
                with m.If(rx):
                    m.next = "IDLE"

        return m
