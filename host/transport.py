"""Byte transports to a device: the pipe under the link's protocol client.

`Transport` is a byte pipe with a read time-out; `SerialTransport` is a serial
port (a USB-UART bridge of a board, or the pseudo-terminal of the simulated
board). `neurofabric.host.faults.FaultyTransport` wraps any of them for tests,
and `neurofabric.host.link.LinkClient` speaks the protocol over one.

Logging: one line per open and close at DEBUG, byte dumps at `TRACE` (5).
"""

import abc
import errno
import logging
import time

from .errors import LinkError

__all__ = ["TRACE", "Transport", "SerialTransport", "hex_dump"]

logger = logging.getLogger(__name__)

#: Log level of byte dumps (below DEBUG).
TRACE = 5
logging.addLevelName(TRACE, "TRACE")


def hex_dump(data, limit=96):
    """`data` as hex bytes for a log line, cut after `limit` bytes."""
    data = bytes(data)
    text = data[:limit].hex(" ")
    return text + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


class Transport(abc.ABC):
    """A byte pipe to a device: write bytes, read what arrived, close."""

    #: A short name for messages ("/dev/ttyUSB1", "simulated board").
    name = "transport"

    @abc.abstractmethod
    def write(self, data: bytes):
        """Send all of `data`. Raises `LinkError` when the pipe is broken."""

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """Bytes that have arrived, waiting at most `timeout` seconds for the
        first one; ``b""`` when none came. Raises `LinkError` when the pipe is
        broken."""

    def discard_input(self):
        """Drop bytes that have arrived and not been read."""
        while self.read(0):
            pass

    @abc.abstractmethod
    def close(self):
        """Release the pipe (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _list_ports():
    try:
        from serial.tools import list_ports
        return sorted(port.device for port in list_ports.comports())
    except Exception:  # listing is a courtesy in an error message, never an error itself
        return []


class SerialTransport(Transport):
    """A serial port through pyserial, 8N1, no flow control (docs/protocol.md).

    `path` is a device (/dev/ttyUSB1, COM3) or the pty of a simulated board.
    Opening fails with a `LinkError` that says what to do: a missing port
    lists the ports there are, a permission problem names the dialout group
    and udev rules, a busy port says another program holds it.
    """

    #: Longest single wait inside `read`, so a time-out is honoured to about this.
    POLL_S = 0.02

    def __init__(self, path, baud, *, write_timeout=5.0, exclusive=True):
        import serial
        self.name = str(path)
        self.path = str(path)
        self.baud = int(baud)
        self._port = None
        try:
            self._port = serial.Serial(self.path, self.baud, timeout=self.POLL_S, write_timeout=write_timeout,
                                       exclusive=exclusive)
        except serial.SerialException as exc:
            raise self._open_error(exc) from None
        except ValueError as exc:  # pyserial refuses a baud rate or a setting
            raise LinkError(f"cannot open serial port {self.path} at baud={self.baud}: {exc}") from None
        logger.debug("opened %s at %d baud", self.path, self.baud)

    def _open_error(self, exc):
        code = getattr(exc, "errno", None)
        where = f"serial port {self.path}"
        if code == errno.ENOENT:
            ports = _list_ports()
            found = f"ports found: {', '.join(ports)}" if ports else "no serial ports found"
            return LinkError(f"{where} does not exist: is the board plugged in and is the path right? ({found})")
        if code in (errno.EACCES, errno.EPERM):
            return LinkError(
                f"permission denied on {where}: add your user to the group that owns it, usually 'dialout' "
                f"(sudo usermod -aG dialout $USER, then log out and in), or install a udev rule that grants "
                f"access (for example SUBSYSTEM==\"tty\", ATTRS{{idVendor}}==\"0403\", MODE=\"0660\", "
                f"GROUP=\"dialout\" in /etc/udev/rules.d/ and 'sudo udevadm control --reload')")
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in str(exc):
            return LinkError(f"{where} is busy: another program has it open (a terminal, ModemManager, another "
                             f"neurofabric); close it and try again")
        return LinkError(f"cannot open {where}: {exc}")

    def write(self, data):
        import serial
        if self._port is None:
            raise LinkError(f"{self.name}: write on a closed port")
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            raise LinkError(f"{self.name}: write timed out (the device does not take bytes)") from None
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.name}: write failed (device gone?): {exc}") from None

    def read(self, timeout):
        import serial
        if self._port is None:
            raise LinkError(f"{self.name}: read on a closed port")
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            while True:
                waiting = self._port.in_waiting
                if waiting or timeout <= 0:
                    return self._port.read(waiting) if waiting else b""
                data = self._port.read(1)  # blocks at most POLL_S
                if data:
                    waiting = self._port.in_waiting
                    return data + self._port.read(waiting) if waiting else data
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.name}: read failed (device gone?): {exc}") from None

    def discard_input(self):
        if self._port is not None:
            self._port.reset_input_buffer()

    def close(self):
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None
                logger.debug("closed %s", self.name)
