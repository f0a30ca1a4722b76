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
from neurofabric.host.transport import SerialTransport
from neurofabric.paths import cache_dir
from neurofabric.sim.board import BOARD_MAIN, SimulatedBoard, build_board, verilog_ports

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
    """A built loopback board program (cached in board/ of the cache folder by its sources)."""
    text = loopback_verilog(request.param)
    key = hashlib.sha256(text.encode() + BOARD_MAIN.read_bytes()).hexdigest()[:12]
    folder = cache_dir() / "board" / f"loopback-{key}"
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


def test_port_names_are_found_and_the_reset_moves_inside_the_model():
    from neurofabric.sim.board import _port_roles, _wrapper_verilog
    ports = verilog_ports(loopback_verilog(True), "nf_top")
    assert ports == {"clk": "input", "rst": "input", "uart_rx": "input", "uart_tx": "output", "busy": "output"}
    text = _wrapper_verilog({**ports, "debug_in": "input"}, _port_roles(ports, "nf_top"), "nf_top")
    assert "module nf_sim_board(input clk, input uart_rx, output uart_tx, output busy);" in text
    assert "nf_top top(.clk(clk), .rst(rst), .uart_rx(uart_rx), .uart_tx(uart_tx), .busy(busy), " \
           ".debug_in(1'b0));" in text
    with pytest.raises(Exception, match=r"top level nf_top has no output port for NF_TX \(tried uart_tx, tx"):
        _port_roles({"clk": "input", "uart_rx": "input"}, "nf_top")


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
    assert "nobody has had" in board.output and "exiting" in board.output


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
            with pytest.raises(LinkError, match=r"HELLO \(seq 1\) failed after 2 attempts \(2 without an answer\) "
                                                r"on /dev/pts/\d+: no reply within 0.1 s \(x2\)"):
                client.hello()
            assert client.stats["stale_frames"] == 2  # its own frames, echoed


# -- the neurofabric top level ------------------------------------------------------

import neurofabric as nf  # noqa: E402
from neurofabric.host.device import GoldenDevice, open_device  # noqa: E402
from neurofabric.host.errors import DeviceError  # noqa: E402
from neurofabric.host.faults import Fault, FaultyTransport  # noqa: E402
from neurofabric.host.serial_device import SerialDevice  # noqa: E402
from neurofabric.contract.model import CORE_MODEL_VERSION, Widths  # noqa: E402
from neurofabric.contract.protocol import PROTOCOL_VERSION, table_key  # noqa: E402

#: The two boards of these tests (each built once, then cached in build/board/):
#: default widths, and narrow widths with 2 lanes.
SMALL = dict(neurons=16, inputs=8)
NARROW = Widths(state_bits=12, weight_bits=6, trace_bits=5)


def small_board_config():
    from neurofabric.sim.board import board_config_for
    return board_config_for(nf.random_network(16, 8, seed=0), lanes=4)


@pytest.fixture(scope="module")
def board():
    """A running small board (n = 16, m = 8, S/W/T = 16/8/8, 4 lanes)."""
    with SimulatedBoard(small_board_config()) as running:
        yield running


@pytest.fixture(scope="module")
def rtl():
    """open_device("rtl") kept open across tests: one board per configuration."""
    with open_device("rtl") as device:
        yield device


def golden_run(net, stim, **kw):
    gold = GoldenDevice()
    gold.load(net)
    return gold.run(stim, **kw)


def assert_same(rec, gold, keys=("spikes", "v", "i", "weights")):
    for key in keys:
        a, b = getattr(rec, key), getattr(gold, key)
        assert a is not None and b is not None, key
        assert a.shape == b.shape and np.array_equal(a, b), f"{key} differs from the golden model"


def test_handshake_reports_the_board(board):
    with SerialDevice.open(board.path, 3_000_000, kind="sim") as dev:
        caps = dev.capabilities()
        assert caps.as_dict() == {"kind": "sim", "core_model_version": CORE_MODEL_VERSION, "neurons": 16, "inputs": 8,
                                  "state_bits": 16, "weight_bits": 8, "trace_bits": 8, "lanes": 4,
                                  "clk_hz": 12_000_000, "baud": 3_000_000, "build_id": board.build_id[:8]}
        assert dev.hello.protocol_version == PROTOCOL_VERSION and dev.hello.max_payload == 1024
        status = dev.status()
        assert status["running"] == 0 and status["crc_errors"] == 0 and status["lost_records"] == 0


def test_serial_name_without_baud_finds_the_board(board):
    with open_device(f"serial:{board.path}") as dev:
        assert dev.capabilities().neurons == 16
        assert dev.capabilities().kind == f"serial:{board.path}"


def test_a_network_that_does_not_fit_is_refused_saying_what_fits(board):
    with SerialDevice.open(board.path, 3_000_000, kind="serial:board") as dev:
        with pytest.raises(DeviceError, match=r"network does not fit device 'serial:board': 20 neurons but the "
                                              r"device has 16; 9 inputs but the device has 8 \(it fits up to "
                                              r"n = 16 neurons, m = 8 inputs, S = 16, W = 8, T = 8\)"):
            dev.load(nf.random_network(20, 9, seed=1))
        with pytest.raises(DeviceError, match=r"weight_bits = 6 but the device has weight_bits = 8"):
            dev.load(nf.random_network(4, 4, seed=1, widths=Widths(16, 6, 8)))


@pytest.mark.parametrize("seed, learn", [(1, 1), (2, 0), (3, 1), (4, 1), (5, 0)])
def test_random_networks_on_rtl_equal_the_golden_model(rtl, seed, learn):
    rng = np.random.default_rng(seed)
    net = nf.random_network(int(rng.integers(9, 17)), int(rng.integers(5, 9)), seed=seed, learn=learn)
    stim = rng.random((150, net.m)) < 0.3
    rtl.load(net)
    rec = rtl.run(stim, record=("v", "i"), snapshot_every=40)
    gold = golden_run(net, stim, record=("v", "i"), snapshot_every=40)
    assert gold.spikes.sum() > 0
    assert_same(rec, gold, ("spikes", "v", "i", "weights", "weight_snapshots", "snapshot_steps"))
    assert rtl.board_capabilities().neurons == 16  # every network here rounds up to the same board
    if learn:
        assert not np.array_equal(rec.weights, net.weights)


@pytest.mark.parametrize("seed, learn", [(81, 1), (82, 0), (83, 1)])
def test_generated_inputs_on_rtl_equal_the_golden_model(rtl, seed, learn):
    """The stimulus generator on the board: rates and seeds from the host, generated and
    host inputs together, m' < m, the inputs U recorded, rates changed between runs, a
    run without host inputs, reset_state back to the seed, and trials with a seed each."""
    rng = np.random.default_rng(seed)
    net = nf.random_network(int(rng.integers(9, 17)), int(rng.integers(3, 8)), seed=seed, learn=learn)
    stim = rng.random((120, net.m)) < 0.1
    rates = rng.integers(0, 20000, net.m)
    rates[0], rates[-1] = 0, 65535
    gen_seed = int(rng.integers(1, 1 << 32))
    gold = GoldenDevice()
    for device in (rtl, gold):
        device.load(net)
    keys = ("spikes", "v", "i", "inputs", "weights", "weight_snapshots")
    runs = [dict(stimulus=stim, record=("v", "i", "inputs"), rates=rates, seed=gen_seed, snapshot_every=40),
            dict(stimulus=None, steps=60, record=("v", "i", "inputs"), rates=rates[::-1].copy(), snapshot_every=20),
            dict(stimulus=stim[:30], record=("v", "i", "inputs"), snapshot_every=10)]        # rates back to 0
    for options in runs:
        rec, want = rtl.run(**options), gold.run(**options)
        assert_same(rec, want, keys)
    assert np.array_equal(want.inputs, want.input_spikes)    # no rates: U is the host's inputs
    for device in (rtl, gold):
        device.reset_state()
    assert_same(rtl.run(stim[:50], record=("v", "i", "inputs"), rates=rates),
                gold.run(stim[:50], record=("v", "i", "inputs"), rates=rates), ("spikes", "v", "i", "inputs"))
    trials = [device.run_trials(None, steps=25, record=("v", "i", "inputs"), rates=rates, seed=[5, gen_seed, 7])
              for device in (rtl, gold)]
    assert trials[0].trials == 3 and trials[0].inputs.shape == (3, 25, net.m)
    assert_same(*trials, ("spikes", "v", "i", "inputs", "weights"))
    assert not np.array_equal(trials[1].inputs[0], trials[1].inputs[2])


@pytest.mark.parametrize("seed, learn", [(84, 1), (85, 0)])
def test_neurons_recorded_on_the_board_equal_the_golden_model(rtl, seed, learn):
    """record_neurons and counts on the board (SET_RECORD, RUNs with SUBSET, requests of
    generated inputs without records): the same spikes, counts and state as the golden
    model, a new subset between runs, and every neuron again without record_neurons."""
    rng = np.random.default_rng(seed)
    net = nf.random_network(16, 8, seed=seed, learn=learn, density=0.6)
    rates = rng.integers(3000, 20000, net.m)
    stim = rng.random((80, net.m)) < 0.1
    gold = GoldenDevice()
    for device in (rtl, gold):
        device.load(net)
    runs = [dict(stimulus=None, steps=150, rates=rates, seed=int(rng.integers(1, 1 << 32)), record_neurons=[2, 9, 15]),
            dict(stimulus=stim, record=("v",), record_neurons=[0, 1, 9]),
            dict(stimulus=None, steps=60, record_neurons=[0, 1, 9], counts=True),
            dict(stimulus=None, steps=40)]
    for options in runs:
        rec, want = rtl.run(**options), gold.run(**options)
        if options.get("counts"):
            assert np.array_equal(rec.counts, want.counts) and rec.spikes is None
        else:
            assert_same(rec, want, ("spikes", "weights") + (("v",) if "record" in options else ()))
        assert (rec.neurons is None) == ("record_neurons" not in options)
    assert want.spikes.sum() > 0 and rtl.serial._record_mask == (0, 1, 9)


@pytest.mark.parametrize("learn", [1, 0])
def test_spike_counts_come_from_the_board_and_the_line_carries_no_spikes(rtl, learn):
    """counts=True on the board: RUNs without records (NO_RECORDS) and the board's spike
    counters read between spans, the counts equal the golden model's, across spans, across
    counters that wrap past 2**16, with host and generated inputs; the same run with
    records (SUBSET) takes far more bytes from the line, and a run after it is whole."""
    rng = np.random.default_rng(40 + learn)
    net = nf.random_network(16, 8, seed=40 + learn, learn=learn, density=0.6)
    rates = rng.integers(3000, 20000, net.m)
    stim = rng.random((230, net.m)) < 0.1
    gold = GoldenDevice()
    for device in (rtl, gold):
        device.load(net)
    serial, client = rtl.serial, rtl.serial.client
    client.write_table(*table_key("spike_counts"), 0, [0xFFFF - j for j in range(16)])   # about to wrap
    span, serial.checkpoint_steps = serial.checkpoint_steps, 100     # spans of 100, 100 and 30 steps
    try:
        before = client.stats["bytes_in"]
        rec = rtl.run(stim, rates=rates, counts=True, record_neurons=[1, 4, 5, 14])
        counted = client.stats["bytes_in"] - before
        whole = rtl.run(None, steps=50, counts=True)
    finally:
        serial.checkpoint_steps = span
    want = gold.run(stim, rates=rates, counts=True, record_neurons=[1, 4, 5, 14])
    want_whole = gold.run(None, steps=50, counts=True)
    assert rec.spikes is None and rec.step_count == 230 and list(rec.neurons) == [1, 4, 5, 14]
    assert np.array_equal(rec.counts, want.counts) and want.counts.max() > 16     # a counter wrapped
    assert np.array_equal(rec.weights, want.weights) and np.array_equal(whole.counts, want_whole.counts)
    for device in (rtl, gold):
        device.reset_state()
    before = client.stats["bytes_in"]
    recorded = rtl.run(stim, rates=rates, record_neurons=[1, 4, 5, 14])
    # Every step's bitmap (in step blocks: 2 bytes a step and the blocks' frames) against 3 reads.
    assert client.stats["bytes_in"] - before > 2 * counted
    assert_same(recorded, gold.run(stim, rates=rates, record_neurons=[1, 4, 5, 14]), ("spikes", "weights"))


@pytest.mark.parametrize("seed, learn", [(11, 1), (12, 0), (13, 1)])
def test_narrow_widths_and_two_lanes_equal_the_golden_model(seed, learn):
    rng = np.random.default_rng(seed)
    net = nf.random_network(int(rng.integers(5, 9)), int(rng.integers(3, 5)), seed=seed, learn=learn, widths=NARROW)
    stim = rng.random((120, net.m)) < 0.35
    with open_device("rtl", lanes=2) as dev:
        dev.load(net)
        assert dev.board_capabilities().as_dict()["lanes"] == 2
        rec = dev.run(stim, record=("v", "i"), snapshot_every=25)
    gold = golden_run(net, stim, record=("v", "i"), snapshot_every=25)
    assert_same(rec, gold, ("spikes", "v", "i", "weights", "weight_snapshots"))


def test_more_than_256_neurons_and_inputs_equal_the_golden_model():
    """Neuron ids, inputs and probe chunks past 255 (two bytes in the link's firmware) on a
    512 x 512 board: a few neurons spike, some of them above 255, so steps give address
    lists (up to 30 spikes) and bitmaps; quiet and busy steps send the inputs as lists and
    bitmaps; the probes come in chunks from neurons 0, 253 and 506."""
    rng = np.random.default_rng(22)
    threshold = np.full(512, 30000)
    threshold[rng.choice(512, 40, replace=False)] = rng.integers(40, 200, 40)
    threshold[rng.choice(np.arange(256, 512), 8, replace=False)] = 30
    net = nf.random_network(512, 300, seed=22, learn=0, threshold=threshold, density=0.2)
    stim = rng.random((8, net.m)) < np.array([0.02, 0.3, 0.05, 0.2, 0.02, 0.4, 0.08, 0.25])[:, None]
    high = [int(k) for k in np.flatnonzero(threshold < 100) if k >= 256][:3]
    neurons = sorted({0, 7, 255, 256, 511, *high})
    with open_device("rtl") as dev:
        dev.load(net)
        rec = dev.run(stim, record=("v", "i"))
        dev.reset_state()
        part = dev.run(stim, record_neurons=neurons)            # recorded on the board (SUBSET)
        assert dev.serial._record_mask == tuple(neurons)
    gold = golden_run(net, stim, record=("v", "i"))
    assert_same(rec, gold, ("spikes", "v", "i"))
    assert np.array_equal(part.spikes, gold.spikes[:, neurons]) and part.spikes[:, 3:].any()
    spikes = gold.spikes.sum(axis=1)
    assert spikes.min() <= 30 < spikes.max() and gold.spikes[:, 256:].any()
    assert stim.sum(axis=1).min() <= 30 < stim.sum(axis=1).max() and stim[:, 256:].any()


def test_smaller_network_on_a_bigger_board_behaves_as_if_the_rest_were_absent(rtl):
    # First a network that fills the board, so that stale parameters, masks,
    # weights and state sit in every neuron and input the next one leaves unused.
    big = nf.random_network(16, 8, seed=20, learn=1)
    rng = np.random.default_rng(20)
    rtl.load(big)
    rtl.run(rng.random((30, 8)) < 0.5)
    small = nf.random_network(5, 3, seed=21, learn=1)
    with open_device("rtl", **SMALL) as dev:  # asks for the 16 x 8 board: the same build
        for device in (rtl, dev):
            device.load(small)
            assert device.board_capabilities().neurons == 16 and device.board_capabilities().inputs == 8
            stim = rng.random((100, 3)) < 0.5
            rec = device.run(stim, record=("v", "i"), snapshot_every=30)
            gold = golden_run(small, stim, record=("v", "i"), snapshot_every=30)
            assert rec.spikes.shape == (100, 5) and rec.weights.shape == (8, 5)
            assert_same(rec, gold, ("spikes", "v", "i", "weights", "weight_snapshots"))


def test_state_persists_between_runs_until_reset_state(rtl):
    net = nf.random_network(14, 7, seed=30, learn=1)
    rng = np.random.default_rng(30)
    a, b, c = (rng.random((60, 7)) < 0.3 for _ in range(3))
    gold = GoldenDevice()
    for device in (rtl, gold):
        device.load(net)
    for stim in (a, b):
        assert_same(rtl.run(stim, record=("v",)), gold.run(stim, record=("v",)), ("spikes", "v", "weights"))
    rtl.reset_state()
    gold.reset_state()
    assert_same(rtl.run(c, record=("i",)), gold.run(c, record=("i",)), ("spikes", "i", "weights"))
    assert np.array_equal(rtl.read_weights(), gold.read_weights())
    assert rtl.serial.status()["step"] == 60


def test_load_reports_progress_of_the_weights(board):
    net = nf.random_network(16, 8, seed=40)
    calls = []
    with SerialDevice.open(board.path, 3_000_000) as dev:
        dev.load(net, progress=lambda done, total: calls.append((done, total)))
    total = (8 + 16) * 16 // 4
    assert calls and calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("fault", Fault.ALL)
def test_the_gateware_answers_retries_without_applying_them_twice(board, fault):
    """Faults on the host's frames: the board's retry cache keeps every
    request applied exactly once (a RUN run once, its steps counted once)."""
    net = nf.random_network(16, 8, seed=50, learn=1)
    stim = np.random.default_rng(50).random((60, 8)) < 0.3
    transport = SerialTransport(board.path, 3_000_000)
    with SerialDevice(transport, kind="faulty", timeout=0.5, retries=6, max_steps=10) as dev:
        before = dev.status()
        dev.client.transport = FaultyTransport(transport, write_faults={i: fault for i in range(1, 200, 4)}, seed=5)
        dev.load(net)
        rec = dev.run(stim, record=("v", "i"))
        dev.client.transport = transport
        after = dev.status()
    if fault in (Fault.DROP, Fault.CORRUPT, Fault.TRUNCATE):
        assert dev.client.stats["retries"] > 0
    assert after["step"] == 60  # RESET_STATE at load, then 60 steps: no RUN applied twice
    assert_same(rec, golden_run(net, stim, record=("v", "i")))
    if fault in (Fault.CORRUPT, Fault.TRUNCATE, Fault.NOISE):
        assert after["crc_errors"] + after["format_errors"] > before["crc_errors"] + before["format_errors"]


def test_sim_board_command_serves_the_cli_run(tmp_path, board):
    from click.testing import CliRunner

    from neurofabric.host.cli import cli
    net = nf.random_network(12, 6, seed=60, learn=1)
    stim = np.random.default_rng(60).random((80, 6)) < 0.3
    nf.save_network(net, tmp_path / "n.npz")
    nf.save_stimulus(stim, tmp_path / "s.npz")
    link = tmp_path / "board-tty"
    proc = subprocess.Popen([sys.executable, "-c", "from neurofabric.host.cli import main; main()", "sim-board",
                             "--neurons", "16", "--inputs", "8", "--link", str(link)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/") and os.path.realpath(link) == path
        result = CliRunner().invoke(cli, ["-q", "run", str(tmp_path / "n.npz"), "--input", str(tmp_path / "s.npz"),
                                          "--device", f"serial:{link}@3000000", "-o", str(tmp_path / "r.npz"),
                                          "--record", "v,i", "--snapshot-every", "20"])
        assert result.exit_code == 0, result.output
        rec = nf.load_recording(tmp_path / "r.npz")
        assert_same(rec, golden_run(net, stim, record=("v", "i"), snapshot_every=20),
                    ("spikes", "v", "i", "weights", "weight_snapshots"))
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "simulated board: " in err and "cycles/s" in err
    assert not link.exists()


def test_a_run_abandoned_midway_finishes_on_the_board_before_the_next_request(board):
    net = nf.random_network(16, 8, seed=70)
    with SerialDevice.open(board.path, 3_000_000, timeout=5) as dev:
        dev.load(net)
        gen = dev.client.run(np.ones((150, 8), bool), probe=True)  # one RUN request of 150 steps
        assert [next(gen).step for _ in range(3)] == [0, 1, 2]
        gen.close()
        status = dev.status()  # the device is busy until the 150 steps are done; no BUSY reaches the caller
        assert status["running"] == 0 and status["step"] == 150
        # HELLO, the load's 8 requests (globals, 3 parameter tables, rates, weights, RESET_STATE), RUN,
        # STATUS: nothing resent.
        assert dev.client.stats["requests"] == 1 + 8 + 1 + 1 and dev.client.stats["retries"] == 0
        assert [r.step for r in dev.client.run([[1], [2]])] == [150, 151]
