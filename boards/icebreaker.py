"""iCEBreaker: Lattice iCE40UP5K, 12 MHz oscillator, FT2232H USB-UART."""

from .base import Board

BOARD = Board(
    name="icebreaker",
    description="1BitSquared iCEBreaker (iCE40UP5K)",
    family="ice40",
    platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
    osc_hz=12_000_000,
    clk_hz=12_000_000,
    # 512 x 256 x 8-bit weights = 1 Mbit: the UP5K's four SPRAMs exactly.
    neurons=256, inputs=256, lanes=2,
    weight_memory="spram",
    # 12 MHz / 1.5 Mbaud = 8 clocks per bit exactly; the FT2232H handles it.
    baud=1_500_000,
    openfpgaloader_board="ice40_generic",
)
