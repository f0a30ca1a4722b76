"""ULX3S: Lattice ECP5 (12F/25F/45F/85F), 25 MHz oscillator, FT231X USB-UART."""

from neurofabric.contract.bauds import BOARD_BAUDS

from .base import Board


def _ulx3s(size, neurons, inputs):
    return Board(
        name=f"ulx3s-{size}f",
        description=f"Radiona ULX3S ({size}F, LFE5U-{size}F)",
        family="ecp5",
        platform_class=f"amaranth_boards.ulx3s:ULX3S_{size}F_Platform",
        osc_hz=25_000_000,
        clk_hz=50_000_000,   # EHXPLLL from 25 MHz
        neurons=neurons, inputs=inputs, lanes=4,
        baud=BOARD_BAUDS["ulx3s"],   # contract/bauds.py: the host's auto-baud tries it
        openfpgaloader_board="ulx3s",
        extra_outputs={},
    )


# Weights take (m + n) * n * 8 bits in DP16KD blocks used as 512 x 36 (32 bits
# of 4 lanes each): 12F 32 blocks, 25F 56, 45F 108, 85F 208.
BOARDS = [
    _ulx3s(12, 128, 128),   # 16 blocks of weights
    _ulx3s(25, 256, 64),    # 40
    _ulx3s(45, 256, 256),   # 64
    _ulx3s(85, 512, 256),   # 192
]
