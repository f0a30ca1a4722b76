"""iCEBreaker: Lattice iCE40UP5K, 12 MHz oscillator, FT2232H USB-UART."""

from neurofabric.contract.bauds import BOARD_BAUDS

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
    # The core and the link take all 30 EBRs: none is left for the spike counters
    # (spike_counters stays False), so the host counts spikes from the step records;
    # nor is there room for the link's record filter (its firmware skips the spikes
    # a RUN does not record), nor for the program ROM that step blocks need: each step's
    # record is a frame of its own.
    record_filter=False, step_blocks=False,
    baud=BOARD_BAUDS["icebreaker"],   # contract/bauds.py: the host's auto-baud tries it
    openfpgaloader_board="ice40_generic",
)
