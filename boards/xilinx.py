"""Digilent Cmod A7-35T (NeuroCoreX's board) and Arty A7 (35T, 100T): Vivado boards.

Amaranth writes their Vivado build folder (`--prepare-only`); the bitstream
itself needs Vivado, which is not part of the set-up.
"""

from neurofabric.contract.bauds import BOARD_BAUDS

from .base import Board

CMOD_A7 = Board(
    name="cmod-a7",
    description="Digilent Cmod A7-35T (xc7a35t)",
    family="xilinx7",
    platform_class="amaranth_boards.cmod_a7:CmodA7_35Platform",
    osc_hz=12_000_000, clk_hz=12_000_000,
    neurons=256, inputs=256, lanes=4,   # 50 x 36 kbit BRAM: 1 Mbit of weights fits
    baud=BOARD_BAUDS["cmod-a7"],   # contract/bauds.py: the host's auto-baud tries it
    openfpgaloader_board="cmoda7_35t",
    needs_vivado=True,
)



def _arty(size, neurons):
    return Board(
        name=f"arty-a7-{size}",
        description=f"Digilent Arty A7-{size}T (xc7a{size}t)",
        family="xilinx7",
        platform_class=f"amaranth_boards.arty_a7:ArtyA7_{size}Platform",
        osc_hz=100_000_000, clk_hz=100_000_000,
        neurons=neurons, inputs=neurons, lanes=4,
        baud=BOARD_BAUDS["arty-a7"],   # contract/bauds.py: the host's auto-baud tries it
        openfpgaloader_board=f"arty_a7_{size}t",
        needs_vivado=True,
    )


ARTY_A7_35 = _arty(35, 256)     # 50 x 36 kbit BRAM: 1 Mbit of weights fits
ARTY_A7_100 = _arty(100, 512)   # 135 x 36 kbit BRAM: 4 Mbit of weights fit
