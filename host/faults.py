"""Fault injection for link tests: a transport that spoils frames on a schedule.

`FaultyTransport` wraps another `Transport` and drops, corrupts, cuts, duplicates
or garbles whole frames, in either direction, at chosen frame indices or at a
seeded random rate, so that the link's recovery is tested against the real host
code and a real (or simulated) device.
"""

import logging
import random
import time

from .framing import FrameError, decode_frame
from .transport import Transport

__all__ = ["Fault", "FaultyTransport"]

logger = logging.getLogger(__name__)


class Fault:
    """What `FaultyTransport` does to one frame."""

    DROP = "drop"            #: the frame never arrives
    CORRUPT = "corrupt"      #: one byte inside the frame is changed
    TRUNCATE = "truncate"    #: only the first half arrives, without its closing delimiter
    DUPLICATE = "duplicate"  #: the frame arrives twice
    NOISE = "noise"          #: garbage bytes (zeros included) arrive before the frame

    ALL = (DROP, CORRUPT, TRUNCATE, DUPLICATE, NOISE)


class FaultyTransport(Transport):
    """Wrap `inner` and spoil frames on a schedule, in both directions.

    `write_faults` / `read_faults` map the index of a frame (0 for the first
    frame the host writes, resp. the first the device sends) to a `Fault`; or
    they are a function ``(index, frame) -> Fault or None`` of that index and
    the decoded `Frame` (None when the frame does not decode).
    With `rate` > 0 every other frame is also spoiled with that probability,
    with a fault drawn from `kinds` (seeded, so a test is repeatable). Every
    fault applied is appended to `injected` as ``(direction, index, fault)``.

    The host writes one frame per `write` call; frames read from `inner` are
    reassembled at their delimiters before the schedule applies, so a read
    returns whole frames only.
    """

    def __init__(self, inner, *, write_faults=None, read_faults=None, rate=0.0, kinds=Fault.ALL, seed=0):
        self.inner = inner
        self.name = f"faulty {inner.name}"
        self.write_faults = write_faults if callable(write_faults) else dict(write_faults or {})
        self.read_faults = read_faults if callable(read_faults) else dict(read_faults or {})
        self.rate = rate
        self.kinds = tuple(kinds)
        self.rng = random.Random(seed)
        self.injected = []
        self.frames_written = 0
        self.frames_read = 0
        self._partial = bytearray()

    def _fault(self, direction, index, table, body):
        if callable(table):
            try:
                frame = decode_frame(body)
            except FrameError:
                frame = None
            fault = table(index, frame)
        else:
            fault = table.get(index)
        if fault is None and self.rate and self.rng.random() < self.rate:
            fault = self.rng.choice(self.kinds)
        if fault is not None:
            self.injected.append((direction, index, fault))
            logger.debug("fault injected: %s frame %d: %s", direction, index, fault)
        return fault

    def _spoil(self, body, fault):
        """The bytes that arrive for a frame `body` (COBS, without delimiters)."""
        framed = b"\x00" + body + b"\x00"
        if fault is None:
            return framed
        if fault == Fault.DROP:
            return b""
        if fault == Fault.DUPLICATE:
            return framed + framed
        if fault == Fault.TRUNCATE:
            return b"\x00" + body[:max(1, len(body) // 2)]
        if fault == Fault.NOISE:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 12))) + framed
        if fault == Fault.CORRUPT:
            spoilt = bytearray(body)
            at = self.rng.randrange(len(spoilt))
            flip = 1 << self.rng.randrange(8)
            spoilt[at] ^= flip if spoilt[at] ^ flip else flip | 0x01 if flip != 1 else 0x03
            return b"\x00" + bytes(spoilt) + b"\x00"
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(Fault.ALL)}")

    def write(self, data):
        out = bytearray()
        for body in bytes(data).split(b"\x00"):
            if not body:
                continue
            out += self._spoil(body, self._fault("write", self.frames_written, self.write_faults, body))
            self.frames_written += 1
        if out:
            self.inner.write(bytes(out))

    def read(self, timeout):
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            data = self.inner.read(max(0.0, deadline - time.monotonic()))
            out = bytearray()
            for i, piece in enumerate(data.split(b"\x00")):
                if i:  # a delimiter ended the partial frame
                    if self._partial:
                        body = bytes(self._partial)
                        self._partial.clear()
                        out += self._spoil(body, self._fault("read", self.frames_read, self.read_faults, body))
                        self.frames_read += 1
                self._partial += piece
            if out or time.monotonic() >= deadline:
                return bytes(out)

    def close(self):
        self.inner.close()
