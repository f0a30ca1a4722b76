"""Digilent Cmod A7-35T (NeuroCoreX's board) and Arty A7 (35T, 100T): Vivado boards.

Amaranth writes their Vivado build folder (`--prepare-only`); the bitstream
itself needs Vivado, which is not part of the set-up.
"""

from .base import Board

CMOD_A7 = Board(
    name="cmod-a7",
    description="Digilent Cmod A7-35T (xc7a35t)",
    family="xilinx7",
    platform_class="amaranth_boards.cmod_a7:CmodA7_35Platform",
    osc_hz=12_000_000, clk_hz=12_000_000,
    neurons=256, inputs=256, lanes=4,   # 50 x 36 kbit BRAM: 1 Mbit of weights fits
    baud=1_500_000,
    openfpgaloader_board="cmoda7_35t",
    needs_vivado=True,
)

ARTY_A7_35 = Board(
    name="arty-a7-35",
    description="Digilent Arty A7-35T (xc7a35t)",
    family="xilinx7",
    platform_class="amaranth_boards.arty_a7:ArtyA7_35Platform",
    osc_hz=100_000_000, clk_hz=100_000_000,
    neurons=256, inputs=256, lanes=4,
    baud=2_000_000,   # 100 MHz / 50 exactly; the FT2232H makes it exactly (12 MHz / 6)
    openfpgaloader_board="arty_a7_35t",
    needs_vivado=True,
)

ARTY_A7_100 = Board(
    name="arty-a7-100",
    description="Digilent Arty A7-100T (xc7a100t)",
    family="xilinx7",
    platform_class="amaranth_boards.arty_a7:ArtyA7_100Platform",
    osc_hz=100_000_000, clk_hz=100_000_000,
    neurons=512, inputs=512, lanes=4,   # 135 x 36 kbit BRAM: 4 Mbit of weights fit
    baud=2_000_000,   # 100 MHz / 50 exactly; the FT2232H makes it exactly (12 MHz / 6)
    openfpgaloader_board="arty_a7_100t",
    needs_vivado=True,
)
