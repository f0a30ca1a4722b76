"""`serial:PATH` without a rate tries every rate a supported board is built with."""

import subprocess
import sys

from neurofabric.boards import BOARDS
from neurofabric.contract.bauds import BOARD_BAUDS
from neurofabric.host.serial_device import COMMON_BAUDS


def test_every_board_baud_is_tried_by_auto_baud():
    for name, board in BOARDS.items():
        assert board.baud in COMMON_BAUDS, f"board {name} is built at {board.baud} baud, auto-baud never tries it"


def test_the_boards_rates_come_first_and_each_rate_once():
    assert len(set(COMMON_BAUDS)) == len(COMMON_BAUDS)
    board_rates = {board.baud for board in BOARDS.values()}
    assert set(COMMON_BAUDS[:len(board_rates)]) == board_rates == set(BOARD_BAUDS.values())
    assert 2_000_000 in COMMON_BAUDS   # the ULX3S and Arty A7 builds


def test_the_auto_baud_list_needs_no_amaranth():
    code = ("import sys; sys.modules['amaranth'] = None\n"
            "from neurofabric.host.serial_device import COMMON_BAUDS\n"
            "assert 2_000_000 in COMMON_BAUDS and 1_500_000 in COMMON_BAUDS\n"
            "assert not [m for m in sys.modules if m.startswith('neurofabric.boards')]\n")
    subprocess.run([sys.executable, "-c", code], check=True)
