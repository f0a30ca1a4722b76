"""The top level every board builds and the simulated board runs.

`NeurofabricTop(config, clk_hz=..., baud=...)` joins

    uart_rx -> UARTRx -> FrameReceiver -> Link -> FrameSender -> UARTTx -> uart_tx
                                           |
                                          Core

in one clock domain (`sync`). Its Verilog (`sim.verilator.top_verilog`) is a
module `nf_top` with the ports `clk`, `rst` (synchronous, active high),
`uart_rx` (in, idles high), `uart_tx` (out, idles high), `busy` (the device
has work: a request, a run, a reply or the core), `led_running` (a RUN is in
progress) and `led_error` (some frame or UART byte was refused since reset).
docs/protocol.md ("The top level") documents them.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neurofabric.contract.errors import BuildError
from .core import Core
from .core_ports import CoreConfig
from .framing import FrameReceiver, FrameSender, Refusal
from .link import Link, default_build_id
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["NeurofabricTop", "SIMULATED_CLK_HZ", "SIMULATED_BAUD", "TOP_MODULE"]

#: Verilog module name of the top level.
TOP_MODULE = "nf_top"

#: The simulated board's clock: nominally an iCEBreaker's 12 MHz. Only HELLO
#: reports it; the simulation runs as fast as it can.
SIMULATED_CLK_HZ = 12_000_000

#: The simulated board's baud rate: 4 clock cycles per bit (3 Mbaud at
#: 12 MHz, exact), the fewest the UART allows (hdl/uart.py MIN_DIVISOR), so the
#: simulation spends few cycles per byte. A pseudo-terminal ignores the baud
#: rate, so the host may open it at any rate.
SIMULATED_BAUD = SIMULATED_CLK_HZ // 4


class NeurofabricTop(wiring.Component):
    """UART, framing, link and core: the whole device.

    Raises `BuildError` (from `uart_divisor`) when `baud` cannot be made from
    `clk_hz`, and from `Link` when the core does not fit the protocol.
    `build_id` and `probe_chunk` go to `Link`.

    Attributes
    ----------
    config : CoreConfig
    clk_hz, baud, build_id : int
        What HELLO reports.
    """

    def __init__(self, config: CoreConfig, *, clk_hz=SIMULATED_CLK_HZ, baud=SIMULATED_BAUD, build_id=None,
                 probe_chunk=None):
        try:
            uart_divisor(clk_hz, baud)  # refuse a bad baud rate before anything is built
        except BuildError:
            self._MustUse__silence = True   # refused: no "created but never used" warning later
            raise
        self.config = config
        self.clk_hz = int(clk_hz)
        self.baud = int(baud)
        self.build_id = default_build_id(config, clk_hz, baud) if build_id is None else int(build_id)
        self.probe_chunk = probe_chunk
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "busy": Out(1),
            "led_running": Out(1),
            "led_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTRx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.uart_tx = uart_tx = UARTTx(clk_hz=self.clk_hz, baud=self.baud)
        m.submodules.receiver = receiver = FrameReceiver()
        m.submodules.sender = sender = FrameSender()
        m.submodules.link = link = Link(self.config, clk_hz=self.clk_hz, baud=self.baud, build_id=self.build_id,
                                             probe_chunk=self.probe_chunk)
        m.submodules.core = core = Core(self.config)

        m.d.comb += [uart_rx.rx.eq(self.uart_rx), self.uart_tx.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.data, receiver.data)
        wiring.connect(m, receiver.header, link.rx_header)
        wiring.connect(m, receiver.payload, link.rx_payload)
        m.d.comb += [receiver.hold.eq(link.rx_hold), receiver.read_addr.eq(link.rx_read_addr),
                     link.rx_read_data.eq(receiver.read_data)]
        wiring.connect(m, link.tx_frame, sender.frame)
        wiring.connect(m, sender.data, uart_tx.data)
        wiring.connect(m, link.cmd, core.cmd)
        wiring.connect(m, core.rdata, link.rdata)
        wiring.connect(m, link.step_in, core.step_in)
        wiring.connect(m, core.step_out, link.step_out)
        m.d.comb += [
            link.core_busy.eq(core.busy),
            link.uart_framing_errors.eq(uart_rx.framing_errors), link.uart_overruns.eq(uart_rx.overruns),
            link.crc_errors.eq(receiver.crc_errors), link.format_errors.eq(receiver.format_errors),
            link.dropped_frames.eq(receiver.dropped), link.refused.eq(receiver.refused),
            # The transmitter's data is ready only when it is idle.
            self.busy.eq(link.busy | core.busy | sender.busy | ~uart_tx.data.ready),
            self.led_running.eq(link.running),
        ]
        # Some counter counted since reset (one flip-flop instead of comparing all five).
        error_seen = Signal()
        with m.If(uart_rx.error | (receiver.refused != Refusal.NONE)):
            m.d.sync += error_seen.eq(1)
        m.d.comb += self.led_error.eq(error_seen)
        return m
