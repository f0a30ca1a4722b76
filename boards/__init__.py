"""Board definitions: one module per board, and the registry `BOARDS`."""

from .base import Board, BuildResult, build_bitstream, flash, prepare_vivado
from .icebreaker import BOARD as _ICEBREAKER
from .ulx3s import BOARDS as _ULX3S
from .xilinx import ARTY_A7_35, ARTY_A7_100, CMOD_A7

__all__ = ["Board", "BOARDS", "BuildResult", "build_bitstream", "flash", "get_board", "prepare_vivado"]

#: Every board, by name.
BOARDS = {b.name: b for b in (_ICEBREAKER, *_ULX3S, CMOD_A7, ARTY_A7_35, ARTY_A7_100)}


def get_board(name):
    """The board called `name`, or a BuildError listing the known ones."""
    from neurofabric.contract.errors import BuildError
    try:
        return BOARDS[name]
    except KeyError:
        raise BuildError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None
