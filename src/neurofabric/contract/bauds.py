"""The baud rates the boards are built with, and the serial auto-baud list.

boards/*.py take their `baud` from `BOARD_BAUDS`; the host tries `AUTO_BAUDS`
when `serial:PATH` names no rate (host/serial_device.py), without importing the
boards (which need Amaranth). A board with a new rate is one entry here.
"""

__all__ = ["BOARD_BAUDS", "OTHER_BAUDS", "AUTO_BAUDS"]

#: The UART rate of each board family's build, by the board name (or its prefix).
BOARD_BAUDS = {
    # 12 MHz / 3 Mbaud = 4 clocks per bit exactly (the UART's fewest, hdl/uart.py's MIN_DIVISOR);
    # the FT2232H makes 3 Mbaud exactly (12 MHz / 4).
    "icebreaker": 3_000_000,
    # 50 MHz / 17 = 2.941 Mbaud, 1.96 % slow, within the 2 % this side may take (hdl/uart.py's
    # MAX_BAUD_ERROR); the FT231X makes 3 Mbaud exactly (its highest rate, 3 MHz / 1).
    "ulx3s": 3_000_000,
    # 12 MHz / 8 exactly; the Cmod's FT2232H makes it exactly.
    "cmod-a7": 1_500_000,
    # 100 MHz / 50 exactly; the FT2232H makes it exactly (12 MHz / 6).
    "arty-a7": 2_000_000,
}

#: Rates tried after the boards' own: those of earlier releases' iCEBreaker and ULX3S builds
#: (1.5 and 2 Mbaud), then common rates a build made with `--baud` may use.
OTHER_BAUDS = (1_500_000, 2_000_000, 3_125_000, 1_000_000, 921_600, 115_200)

#: Every rate auto-baud tries, in order, each once: the boards' rates first.
AUTO_BAUDS = tuple(dict.fromkeys((*BOARD_BAUDS.values(), *OTHER_BAUDS)))
