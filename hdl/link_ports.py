"""The link controller's I/O ports and the sizes its firmware is built around.

`Link` (hdl/link.py) is the gateware behind these ports; the firmware
(hdl/link_firmware.py) reads and writes them by these names; `LinkPorts`
(hdl/mcu_sim.py) models them for the instruction-set simulator. A port's
number is its data address less `PORT_BASE`.
"""

import enum

from neurofabric.contract.device import MEMORY_TABLES
from neurofabric.contract.protocol import (
    FAMILY_COMMANDS, MEMORY_REQUEST_FIELDS, PROBE_RECORD_FIELDS, RUN_REQUEST_FIELDS, SPIKE_RECORD_FIELDS,
    STATUS_REPLY_FIELDS, RunFlags, fields_size,
)
from .core_ports import Op, Space

__all__ = ["TABLE_SPACES", "every_neuron_mask"]

#: The core's address space behind each table of the protocol's memory map.
TABLE_SPACES = {table.name: Space[table.space] for table in MEMORY_TABLES}

_MEMORY_REQUEST_SIZE = fields_size(MEMORY_REQUEST_FIELDS)
_RUN_REQUEST_SIZE = fields_size(RUN_REQUEST_FIELDS)
_SPIKE_HEAD_SIZE = fields_size(SPIKE_RECORD_FIELDS)
_PROBE_HEAD_SIZE = fields_size(PROBE_RECORD_FIELDS)

#: Bytes of the controller's data RAM (one iCE40 block RAM): variables, tables, the spike
#: bitmap and the record mask; `_BIG_DATA_DEPTH` for cores whose bitmap and mask need more.
_DATA_DEPTH = 512
_BIG_DATA_DEPTH = 1024
#: Largest n and m: the spike bitmaps' byte counters are 8 bits.
_MAX_SIZE = 8 * 255
#: Largest memory word (and core read word) in bytes: the read word's byte counter
#: (RBYTE) has 7 bits; a word of 1024 bits is the ULX3S-85F core's 128 lanes of 8 bits.
_MAX_WORD_BYTES = 128
#: Bytes of the core's read word at fixed ports (RDATA + i): the registers' 32 bits.
_RDATA_PORTS = 4
#: Most neurons per PROBE_RECORD the firmware sends: it counts a chunk in one
#: byte and compares with an 8-bit immediate (chunk + 1 <= 255). Only S <= 8
#: (one byte per value: probe_chunk_neurons(S) = 507) would allow more.
_MAX_PROBE_CHUNK = 254


class _R(enum.IntEnum):
    """Read ports (controller data addresses PORT_BASE + port)."""
    FLAGS = 0       # the `_F` bits
    RX = 1          # the next payload byte of the request (waits for it)
    RXH = 2         # the request's header (latched): command, seq, length low, length high (2 .. 5)
    NACK = 6        # status of the NACK to send
    SCAN = 7        # 8 + the lowest set bit of the scan register (cleared by the read), 0 when empty
    RBYTE = 12      # the core's read word's next byte, low byte first (waits for it; RDATA_ACK starts over)
    NEURON = 8      # step_out's neuron (or input), low and high byte (waits for a record)
    STIM = 10       # the next byte of the held RUN payload
    KIND = 11       # step_out's kind, a `StepEvent` (waits for a record)
    COUNTERS = 16   # the five error counters of STATUS, in its order, low byte first (16 .. 25)
    PROBE = 32      # step_out's v then i, sign-extended to value_bytes each (waits for a record)
    RDATA = 40      # the core's read word's low bytes, one port each (40 .. 43; waits for it)


class _W(enum.IntEnum):
    """Write ports."""
    IDLE = 0        # bit 0: the firmware only waits for a request (the `busy` output is low)
    TX = 1          # a reply's next byte, header first (waits until the sender takes it)
    RXH_ACK = 7     # done with the latched header: the next one may come
    NACK_CLEAR = 8
    SCAN = 9        # load the scan register
    ADDR = 10       # the core address, 3 bytes (10 .. 12)
    CMD = 13        # issue a core command: op | space << 2 (waits until the core takes it)
    RDATA_ACK = 14  # take the core's read word
    STEP_IN_HI = 15  # high byte of the next input
    STEP_IN = 16    # feed input (STEP_IN_HI, this byte) (waits until the core takes it)
    STEP_END = 17   # end the step's inputs; bit 0: probe, bit 1: report U (the RunFlags bits) (waits)
    STEP_ACK = 18   # take the step_out record (waits for one)
    STIM_RESET = 20  # reading starts over at byte 0
    RUNNING = 21    # bit 0: the running output
    DISCARD = 22    # drop the rest of the request's payload (waits until done)
    FILTER = 23     # the record filter (CoreConfig.record_filter): a RUN's flags; resets FMASK's address
    FMASK = 24      # the filter's next mask byte (neurons 8k .. 8k + 7, lowest bit first)
    WORD = 40       # shift a byte into the core command's data word (from the top: low byte first)


# FLAGS bits.
_F_RXH = 1          # a request's header is latched
_F_NACK = 2         # a NACK is to be sent
_F_STEP_OUT = 4     # step_out has a record
_F_RX_LAST = 8      # the request's payload has been taken to its end (or is held, or was not kept)
_F_CORE_BUSY = 16
_F_HELD = 64        # the latched request came while a RUN's payload was held: its payload was not kept
_F_STIM_END = 128   # every byte of the held payload has been read
assert _R.RDATA + _RDATA_PORTS <= 64
# STEP_END takes the RUN flags PROBE and INPUTS as they are: bit 0 asks for probes, bit 1
# for the inputs (the firmware masks the others off).
assert int(RunFlags.PROBE) == 1 and int(RunFlags.INPUTS) == 2 and len(RunFlags) == 6
assert [name for name, _ in STATUS_REPLY_FIELDS] == [
    "running", "step", "uart_framing_errors", "uart_overruns", "crc_errors", "format_errors", "dropped_frames",
    "last_step_cycles", "lost_records"]

# FILTER takes a RUN's flags: with SUBSET the filter drops the SPIKE records of neurons
# whose FMASK bit is 0, with NO_RECORDS every SPIKE record.
_FILTER_SUBSET = int(RunFlags.SUBSET).bit_length() - 1
_FILTER_ALL = int(RunFlags.NO_RECORDS).bit_length() - 1

def every_neuron_mask(n):
    """The record mask of all `n` neurons as bytes (bit k % 8 of byte k // 8): what the
    firmware's mask and the record filter hold until a SET_RECORD."""
    return [0xFF] * (n // 8) + ([(1 << (n % 8)) - 1] if n % 8 else [])


#: Bits of the core's rate memory: `rate[k]` is compared with the 16 high bits of the
#: generator state (spec 5.0).
_RATE_BITS = 16

#: The CMD port's byte: op in bits 0-1, the space from bit 2 (`Space` codes are 0 .. 8).
_SPACE_BITS = Space.as_shape().width
assert Op.as_shape().width == 2 and 2 + _SPACE_BITS <= 8

# The memory commands: 0x10 + 2 * family, + 1 for the read.
_MEMORY_BASE = min(min(pair) for pair in FAMILY_COMMANDS.values())
assert _MEMORY_BASE == 0x10 and all(
    (read, write) == (_MEMORY_BASE + 2 * family + 1, _MEMORY_BASE + 2 * family)
    for family, (read, write) in FAMILY_COMMANDS.items()) and len(FAMILY_COMMANDS) == 4
