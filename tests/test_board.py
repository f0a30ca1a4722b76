"""The simulated board: the C++ harness (pty, bit-banged UART, idle sleep,
clean exits) on a loopback top level, then the neurofabric top level driven
through `open_device("rtl")` and `SerialDevice` against the golden model."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neurofabric.host.errors import LinkError
from neurofabric.host.link import SerialTransport
from neurofabric.sim.board import BOARD_MAIN, REPO_ROOT, SimulatedBoard, build_board, verilog_ports

pytestmark = pytest.mark.rtl

LOOPBACK_SOURCE = '''
from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from neurofabric.hdl.uart import UARTRx, UARTTx


class Loopback(wiring.Component):
    """UARTRx -> FIFO -> UARTTx: every byte comes back."""

    def __init__(self, with_busy):
        ports = {"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1)}
        if with_busy:
            ports["busy"] = Out(1)
        self.with_busy = with_busy
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(clk_hz=12_000_000, baud=3_000_000)
        m.submodules.tx = tx = UARTTx(clk_hz=12_000_000, baud=3_000_000)
        m.submodules.fifo = queue = fifo.SyncFIFO(width=8, depth=16)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.data, queue.w_stream)
        wiring.connect(m, queue.r_stream, tx.data)
        if self.with_busy:
            m.d.comb += self.busy.eq(queue.r_rdy)
        return m
'''


def loopback_verilog(with_busy):
    from amaranth.back import verilog
    namespace = {}
    exec(LOOPBACK_SOURCE, namespace)
    return verilog.convert(namespace["Loopback"](with_busy), name="nf_top", emit_src=False)


@pytest.fixture(scope="module", params=[True, False], ids=["busy", "no-busy"])
def loopback(request):
    """A built loopback board program (cached in build/board/ by its sources)."""
    text = loopback_verilog(request.param)
    key = hashlib.sha256(text.encode() + BOARD_MAIN.read_bytes()).hexdigest()[:12]
    folder = REPO_ROOT / "build" / "board" / f"loopback-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nf_top.v").write_text(text)
    return build_board(folder / "nf_top.v", folder)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_exactly(port, size, timeout=10.0):
    got, deadline = b"", time.monotonic() + timeout
    while len(got) < size and time.monotonic() < deadline:
        got += port.read(0.5)
    return got


def test_port_names_are_found_in_the_verilog():
    ports = verilog_ports(loopback_verilog(True), "nf_top")
    assert ports == {"clk": "input", "rst": "input", "uart_rx": "input", "uart_tx": "output", "busy": "output"}


def test_loopback_board_returns_every_byte_value(loopback):
    with SimulatedBoard(program=loopback, divisor=4) as board:
        assert board.path.startswith("/dev/pts/")
        with SerialTransport(board.path, 3_000_000) as port:
            data = bytes(range(256)) * 64
            start = time.monotonic()
            port.write(data)
            got = read_exactly(port, len(data))
            rate = len(data) / (time.monotonic() - start)
            assert got == data
            assert rate > 20_000, f"{rate:.0f} bytes/s through the pty"
    assert board.summary and "16384 bytes in, 16384 bytes out" in board.summary
    assert "0 framing errors" in board.summary


def test_idle_board_sleeps_and_wakes_on_input(loopback):
    with SimulatedBoard(program=loopback, divisor=4, quiet_cycles=20_000) as board:
        with SerialTransport(board.path, 3_000_000) as port:
            port.write(b"wake")
            assert read_exactly(port, 4) == b"wake"
            time.sleep(0.3)
            before = cpu_seconds(board.process.pid)
            time.sleep(1.0)
            assert cpu_seconds(board.process.pid) - before < 0.1  # idle: poll(), not the clock
            port.write(b"again")
            start = time.monotonic()
            assert read_exactly(port, 5) == b"again"
            assert time.monotonic() - start < 0.5


def test_board_exits_on_sigterm_and_sigint_with_a_summary(loopback):
    for sig in (signal.SIGTERM, signal.SIGINT):
        board = SimulatedBoard(program=loopback, divisor=4)
        board.start()
        board.process.send_signal(sig)
        assert board.process.wait(timeout=5) == 0
        board.stop()
        assert board.summary.startswith("simulated board: ")


def test_board_exits_when_its_pty_stays_closed(loopback):
    board = SimulatedBoard(program=loopback, divisor=4, hangup_exit_s=0.3)
    board.start()
    try:
        with SerialTransport(board.path, 3_000_000) as port:
            port.write(b"x")
            assert read_exactly(port, 1) == b"x"
        # A new client within the grace time keeps it alive.
        time.sleep(0.1)
        with SerialTransport(board.path, 3_000_000) as port:
            port.write(b"y")
            assert read_exactly(port, 1) == b"y"
        assert board.process.wait(timeout=5) == 0
    finally:
        board.stop()
    assert "exiting" in board.summary


def test_board_exits_with_its_parent(loopback):
    # A wrapper process adopts orphans (PR_SET_CHILD_SUBREAPER) so it can see,
    # and reap, the board once the board's parent has been killed.
    parent = ("import time\n"
              "from neurofabric.sim.board import SimulatedBoard\n"
              f"b = SimulatedBoard(program={str(loopback)!r}, divisor=4)\n"
              "b.start()\n"
              "print(b.process.pid, flush=True)\n"
              "time.sleep(60)\n")
    wrapper = ("import ctypes, os, subprocess, sys, time\n"
               "ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
               f"p = subprocess.Popen([sys.executable, '-c', {parent!r}], stdout=subprocess.PIPE, text=True)\n"
               "pid = int(p.stdout.readline())\n"
               "p.kill(); p.wait(); p.stdout.close()\n"
               "deadline = time.monotonic() + 5\n"
               "while time.monotonic() < deadline:\n"
               "    done, status = os.waitpid(pid, os.WNOHANG)\n"
               "    if done:\n"
               "        print('exited', os.waitstatus_to_exitcode(status)); break\n"
               "    time.sleep(0.05)\n"
               "else:\n"
               "    os.kill(pid, 9); os.waitpid(pid, 0); print('outlived its parent')\n")
    result = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "exited 0", result.stdout + result.stderr


def test_a_link_client_on_a_loopback_times_out_cleanly(loopback):
    """A device that only echoes never answers: the client says so, naming the command."""
    from neurofabric.host.link import LinkClient
    with SimulatedBoard(program=loopback, divisor=4) as board:
        with SerialTransport(board.path, 3_000_000) as port:
            client = LinkClient(port, timeout=0.1, retries=1)
            with pytest.raises(LinkError, match=r"HELLO \(seq 1\) failed after 2 attempts on /dev/pts/\d+: "
                                                r"no reply within 0.1 s \(x2\)"):
                client.hello()
            assert client.stats["stale_frames"] == 2  # its own frames, echoed
