"""ULX3S: Lattice ECP5 (12F/25F/45F/85F), 25 MHz oscillator, FT231X USB-UART."""

from neurofabric.contract.bauds import BOARD_BAUDS

from .base import Board


def _ulx3s(size, neurons, inputs, lanes, neurons_per_cycle=1, pot_banks=1, spike_counters=False, link_extras=True):
    return Board(
        name=f"ulx3s-{size}f",
        description=f"Radiona ULX3S ({size}F, LFE5U-{size}F)",
        family="ecp5",
        platform_class=f"amaranth_boards.ulx3s:ULX3S_{size}F_Platform",
        osc_hz=25_000_000,
        clk_hz=50_000_000,   # EHXPLLL from 25 MHz
        neurons=neurons, inputs=inputs, lanes=lanes, neurons_per_cycle=neurons_per_cycle,
        pot_banks=pot_banks, spike_counters=spike_counters, record_filter=link_extras, step_blocks=link_extras,
        baud=BOARD_BAUDS["ulx3s"],   # contract/bauds.py: the host's auto-baud tries it
        openfpgaloader_board="ulx3s",
        extra_outputs={},
    )


# Weights take (m + n) * n * 8 bits in DP16KD blocks (18 Kbit each): 12F 16 blocks, 25F 40,
# 45F 64, 85F 192 at least. The lanes (weights per word, read in one cycle) are set by
# the multipliers (MULT18X18D): the core's depression needs one per lane, its neuron and
# trace updates 7 more (and 3 more for a second neuron per cycle); 28 in a 12F or 25F,
# 72 in a 45F, 156 in an 85F. `pot_banks` (docs/core.md, "Banked weights") costs logic
# cells, about 110 per lane and bank: the 12F and 25F have them; a 45F core in 2 banks
# took 43,577 of its 43,848 cells (placement estimate 36.7 MHz), in 4 banks 57,357; an 85F
# core in 2 banks (45,929 of 83,640) and in 4 (66,611) had placement estimates of 32.7 and
# 33.0 MHz and routing that had not converged after 30 minutes.
BOARDS = [
    _ulx3s(12, 128, 128, 16, pot_banks=4),
    _ulx3s(25, 256, 64, 16, pot_banks=2),
    # The spike counters: built at 56.1 MHz with them (74 of 108 block RAMs).
    _ulx3s(45, 256, 256, 64, spike_counters=True),
    # 64 lanes, one neuron per cycle. At 128 lanes (132 of 156 multipliers) the placement's
    # estimate was 32.7 MHz, with 58,848 logic cells, and routing had not converged after 25
    # minutes; the two-neuron core's fmax was 44.8 MHz (the neuron pass's issue to the banked
    # state memories' read address), and at 64 lanes the accumulation bounds its step anyway.
    # With the spike counters it built at 47.3 and 46.8 MHz (the FSM through the neuron pass's
    # gate to the state memory's read address), so it has none. With the record filter and
    # step blocks (and their program memory of two block RAMs) it built at 49.5 MHz (the
    # core's trace memory into a multiplier) and, with another placement seed, 49.2 MHz: it
    # builds without them (neurofabric build --record-filter --step-blocks asks for them).
    _ulx3s(85, 512, 256, 64, link_extras=False),
]
