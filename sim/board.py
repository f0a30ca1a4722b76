"""The simulated board: the top-level gateware under Verilator, behind a pseudo-terminal.

`sim/board_main.cpp` is a C++ `main` that runs a Verilator model of the top
level (UART, link, core) with no Python per cycle: it opens a pty, prints its
path, bit-bangs the bytes the host writes onto the UART input and turns the
UART output back into bytes. The host reaches it exactly as it reaches a real
board, through `SerialTransport` and `SerialDevice`.

- `build_board(verilog, build_dir)` builds the board program from a Verilog
  top level (any top with clk, rst and a UART pair; the tests use a loopback).
- `board_program(config)` generates the neurofabric top (`hdl/top.py`) for a
  `BoardConfig` and builds it once into `board/<config>-<hash>/` of the cache
  folder (`neurofabric.paths.cache_dir()`; the hash covers the configuration,
  the gateware and protocol sources, this folder's C++ and the tool versions);
  later calls reuse the build, and a file lock makes concurrent builders wait
  for each other.
- `SimulatedBoard(config)` starts the program (a context manager) and gives
  its pty `path`.
- `SimulatedBoardDevice` is `open_device("rtl")`: a board sized for each
  network, driven by `SerialDevice`.
"""

import fcntl
import hashlib
import json
import logging
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from neurofabric.host.device import Capabilities, Device
from neurofabric.host.errors import BuildError, DeviceError
from .build_process import previous_build_seconds, progress, run_build
from neurofabric.paths import cache_dir, package_sources

__all__ = ["BoardConfig", "board_config_for", "build_board", "board_program", "verilog_ports",
           "SimulatedBoard", "SimulatedBoardDevice", "BOARD_MAIN", "DEFAULT_CLK_HZ", "DEFAULT_BAUD"]

logger = logging.getLogger(__name__)

#: The board program's C++ main: package data of the wheel (pyproject.toml), compiled into every build.
BOARD_MAIN = Path(__file__).resolve().parent / "board_main.cpp"
#: What the gateware of a board build is made from, besides BOARD_MAIN (`_source_hash`).
GATEWARE_SOURCES = ("neurofabric.hdl", "neurofabric.contract")
TOPLEVEL = "nf_top"
PROGRAM = "nf_board"

#: The simulated board's clock and baud rate: 4 clock cycles per bit, the
#: fewest the UART allows (hdl/uart.py MIN_DIVISOR), so bytes cost few cycles.
DEFAULT_CLK_HZ = 12_000_000
DEFAULT_BAUD = 3_000_000

#: Port names the board program looks for: (role, candidates in order).
PORT_ROLES = (
    ("NF_CLK", ("clk",)),
    ("NF_RST", ("rst",)),   # made inside the model by the wrapper (`_wrapper_verilog`)
    ("NF_RX", ("uart_rx", "rx", "uart__rx")),
    ("NF_TX", ("uart_tx", "tx", "uart__tx")),
    ("NF_BUSY", ("busy",)),
)
_OPTIONAL_ROLES = {"NF_BUSY", "NF_RST"}


@dataclass(frozen=True)
class BoardConfig:
    """A simulated board: the core's configuration, the clock and the baud rate."""

    core: object                     # neurofabric.hdl.core_ports.CoreConfig
    clk_hz: int = DEFAULT_CLK_HZ
    baud: int = DEFAULT_BAUD

    @property
    def divisor(self):
        """Clock cycles per UART bit (hdl/uart.py `uart_divisor`)."""
        from neurofabric.hdl.uart import uart_divisor
        return uart_divisor(self.clk_hz, self.baud)[0]

    def key(self):
        """A short text naming the configuration (for build folders)."""
        return f"{self.core.key()}_c{self.clk_hz}_b{self.baud}"


def _pow2(value, minimum):
    size = max(1, minimum)
    while size < value:
        size *= 2
    return size


def board_config_for(network, *, lanes=4, clk_hz=DEFAULT_CLK_HZ, baud=DEFAULT_BAUD, neurons=None, inputs=None):
    """The board the `rtl` device builds for `network`: n and m rounded up to
    powers of two (n at least `lanes`), the network's bit widths.
    `neurons`/`inputs` ask for a bigger board."""
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.hdl.link import check_link_sizes
    n = _pow2(max(network.n, neurons or 0), lanes)
    m = _pow2(max(network.m, inputs or 0, 1), 1)
    # Refused here, before a build: the link's firmware has size limits of its own.
    try:
        check_link_sizes(n, m)
        core = CoreConfig(n=n, m=m, S=network.state_bits, W=network.weight_bits, T=network.trace_bits, lanes=lanes)
    except (BuildError, ValueError) as exc:
        raise DeviceError(f"a network of n = {network.n} neurons, m = {network.m} inputs does not fit the simulated "
                          f"board, which rounds n and m up to powers of two (n = {n}, m = {m}): {exc}") from None
    return BoardConfig(core, clk_hz=clk_hz, baud=baud)


# -- building -----------------------------------------------------------------------

def verilog_ports(verilog_text, toplevel):
    """``{name: "input"|"output"}`` of module `toplevel` in Verilog text."""
    match = re.search(rf"^\s*module\s+\\?{re.escape(toplevel)}\s*[(;#](.*?)^\s*endmodule", verilog_text,
                      re.M | re.S)
    if not match:
        raise BuildError(f"module {toplevel} not found in the Verilog")
    body = match.group(1)
    ports = {}
    for direction, name in re.findall(r"\b(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]*\]\s*)?"
                                      r"\\?([A-Za-z_][\w$.]*)", body):
        ports[name] = direction
    return ports


def _port_roles(ports, toplevel):
    """``{role: port name}`` of the top level (see `PORT_ROLES`)."""
    roles = {}
    for role, names in PORT_ROLES:
        direction = "output" if role in ("NF_TX", "NF_BUSY") else "input"
        found = next((n for n in names if ports.get(n) == direction), None)
        if found is None:
            if role in _OPTIONAL_ROLES:
                continue
            raise BuildError(f"top level {toplevel} has no {direction} port for {role} (tried {', '.join(names)}; "
                             f"its ports: {', '.join(f'{d} {n}' for n, d in sorted(ports.items()))})")
        roles[role] = found
    return roles


#: The module the board program simulates: the top level with its reset inside.
WRAPPER = "nf_sim_board"


def _wrapper_verilog(ports, roles, toplevel):
    """A module around the top level that makes its reset from a power-on
    counter (4 cycles), so `rst` is no input of the model: Verilator then
    evaluates the reset logic with the registers instead of re-settling it
    from the inputs twice per clock cycle (about 1.4 times faster). Other
    inputs of the top are tied to 0, other outputs left open."""
    outs = [("NF_TX", "uart_tx"), ("NF_BUSY", "busy")]
    header = ["input clk", "input uart_rx"] + [f"output {name}" for role, name in outs if role in roles]
    conns = [f".{roles['NF_CLK']}(clk)", f".{roles['NF_RST']}(rst)", f".{roles['NF_RX']}(uart_rx)"]
    conns += [f".{roles[role]}({name})" for role, name in outs if role in roles]
    used = set(roles.values())
    conns += [f".{name}(1'b0)" for name, d in sorted(ports.items()) if d == "input" and name not in used]
    return "\n".join([
        "// Generated by sim/board.py: the top level with a power-on reset, for the board program.",
        f"module {WRAPPER}({', '.join(header)});",
        "  reg [2:0] por = 3'd0;",
        "  wire rst = ~por[2];",
        "  always @(posedge clk) if (~por[2]) por <= por + 3'd1;",
        f"  {toplevel} top({', '.join(conns)});",
        "endmodule", ""])


def _port_header(roles, model):
    lines = [f'#include "V{model}.h"', f"#define VTOP V{model}"]
    lines += [f"#define {role} {name}" for role, name in roles.items()]
    return "\n".join(["// Generated by sim/board.py: the model class and its port names.", *lines, ""])


def _verilator():
    from .toolchain import ensure_verilator
    from .verilator import ensure_tools
    ensure_tools()
    return ensure_verilator()


def build_board(verilog, build_dir, toplevel=TOPLEVEL, jobs=2):
    """Build the board program from the Verilog file(s) `verilog` (top module
    `toplevel`) in `build_dir`; returns the program's path. Reuses an earlier
    build in the same folder (its `built.ok` stamp); waits for a concurrent
    build of the same folder."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked([Path(v) for v in (verilog if isinstance(verilog, (list, tuple)) else [verilog])],
                             build_dir, toplevel, jobs)


def _build_locked(sources, build_dir, toplevel, jobs):
    program = build_dir / "obj" / PROGRAM
    stamp = build_dir / "built.ok"
    if stamp.exists() and program.exists():
        return program
    text = "\n".join(path.read_text() for path in sources)
    ports = verilog_ports(text, toplevel)
    roles = _port_roles(ports, toplevel)
    model = toplevel
    if "NF_RST" in roles:
        wrapper = build_dir / f"{WRAPPER}.v"
        wrapper.write_text(_wrapper_verilog(ports, roles, toplevel))
        sources = [*sources, wrapper]
        model = WRAPPER
        roles = {role: name for role, name in (("NF_CLK", "clk"), ("NF_RX", "uart_rx"), ("NF_TX", "uart_tx"),
                                               ("NF_BUSY", "busy")) if role in roles}
    (build_dir / "board_top.h").write_text(_port_header(roles, model))
    cmd = [_verilator(), "--cc", "--exe", "--build", "-O2", "-Wno-fatal", "--top-module", model,
           "--Mdir", str(build_dir / "obj"), "-o", PROGRAM, "--build-jobs", str(jobs),
           "-CFLAGS", f"-O2 -I{build_dir.resolve()}",
           *[str(p.resolve()) for p in sources], str(BOARD_MAIN)]
    progress.info("compiling the simulated board with Verilator in %s", build_dir)
    start = time.monotonic()
    log_path = build_dir / "build.log"
    # In a process group of its own, stopped whole on Ctrl-C or SIGTERM (sim/build_process.py).
    returncode = run_build(cmd, cwd=build_dir, log_path=log_path, what="the simulated board")
    if returncode != 0 or not program.exists():
        tail = log_path.read_text()[-3000:]
        raise BuildError(f"Verilator build of the simulated board failed (exit {returncode}, "
                         f"log {log_path}):\n{tail}")
    stamp.write_text(f"built in {time.monotonic() - start:.1f} s\n")
    progress.info("built %s in %.1f s", program, time.monotonic() - start)
    return program


def _source_hash(config):
    """Hash of what a board build depends on: configuration, sources, tool versions."""
    import amaranth
    from neurofabric.contract.model import CORE_MODEL_VERSION
    from .toolchain import verilator_root
    h = hashlib.sha256()
    h.update(json.dumps(asdict(config.core), sort_keys=True).encode())
    h.update(f"{config.clk_hz} {config.baud} {amaranth.__version__} {CORE_MODEL_VERSION}".encode())
    h.update(str(verilator_root()).encode())
    paths = [path for _, path in package_sources(*GATEWARE_SOURCES)] + [BOARD_MAIN]
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def generate_top_verilog(config, path, build_id=None):
    """Write the Verilog of the neurofabric top level (hdl/top.py) for `config` to `path`;
    `build_id` (an int) is what HELLO will report."""
    from .verilator import ensure_tools
    ensure_tools()
    from amaranth.back import verilog
    try:
        from neurofabric.hdl.top import NeurofabricTop
    except ImportError as exc:
        raise BuildError(f"the top level (hdl/top.py) is not available: {exc}") from None
    top = NeurofabricTop(config.core, clk_hz=config.clk_hz, baud=config.baud, build_id=build_id)
    text = verilog.convert(top, name=TOPLEVEL, emit_src=False, **_convert_ports(top))
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _convert_ports(top):
    """`verilog.convert` needs explicit ports for a plain Elaboratable."""
    from amaranth.lib import wiring
    if isinstance(top, wiring.Component):
        return {}
    ports = getattr(top, "ports", None)
    return {"ports": ports() if callable(ports) else ports} if ports is not None else {}


def board_program(config: BoardConfig, build_root=None):
    """The board program for `config`, built once and cached; returns ``(path, build_id)``
    (`build_id` the hash of the build's inputs, 12 hex digits; HELLO reports its first 8)."""
    build_root = Path(build_root or cache_dir() / "board")
    build_id = _source_hash(config)
    build_dir = build_root / f"{config.key()}-{build_id}"
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build_dir / "built.ok").exists():
            core = config.core
            progress.info("building the simulated board for n=%d, m=%d (S=%d, W=%d, T=%d, %d lanes; first time at "
                          "this size: about %.0f s)", core.n, core.m, core.S, core.W, core.T, core.lanes,
                          previous_build_seconds(build_root))
        verilog_path = build_dir / f"{TOPLEVEL}.v"
        if not verilog_path.exists():
            progress.info("generating the Verilog of the simulated board (Amaranth)")
            start = time.monotonic()
            # HELLO reports the build's hash: it names exactly these sources and settings.
            generate_top_verilog(config, verilog_path, build_id=int(build_id[:8], 16))
            logger.info("generated %s in %.1f s", verilog_path, time.monotonic() - start)
        program = _build_locked([verilog_path], build_dir, TOPLEVEL, jobs=2)
    return program, build_id


# -- running ----------------------------------------------------------------------

class SimulatedBoard:
    """A running board program, reachable at `path` (a pty) while open.

    Give a `BoardConfig` (built or reused from the cache) or a built
    `program` with its `divisor`. `hangup_exit_s` makes the program exit when
    no client has had the pty open for that long after a first one did; the
    program also exits when this Python process dies.
    """

    def __init__(self, config: BoardConfig = None, *, program=None, divisor=None, build_root=None,
                 hangup_exit_s=0.0, quiet_cycles=None, trace=False, start_timeout_s=30.0):
        if (config is None) == (program is None):
            raise DeviceError("SimulatedBoard: give either a BoardConfig or a built program")
        self.config = config
        self.build_id = None
        if config is not None:
            program, self.build_id = board_program(config, build_root)
            divisor = config.divisor
        self.program = Path(program)
        self.divisor = int(divisor or 4)
        self.hangup_exit_s = hangup_exit_s
        self.quiet_cycles = quiet_cycles
        self.trace = trace
        self.start_timeout_s = start_timeout_s
        self.process = None
        self.path = None
        self.summary = None   # the program's last line at exit: cycles, bytes, cycles per second
        self.output = ""      # everything it wrote on stderr
        self._stderr = None

    def start(self):
        """Start the program; returns the pty path."""
        if self.process is not None:
            return self.path
        cmd = [str(self.program), "--divisor", str(self.divisor), "--exit-with-parent",
               "--hangup-exit", str(self.hangup_exit_s)]
        if self.quiet_cycles is not None:
            cmd += ["--quiet-cycles", str(self.quiet_cycles)]
        if self.trace:
            cmd += ["--trace"]
        # The program's stderr (its summary; with `trace` every byte) goes to a
        # file, or to ours when tracing: a pipe nobody reads would fill up.
        self._stderr = None if self.trace else tempfile.TemporaryFile()
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.process.stdout], [], [], self.start_timeout_s)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("/"):
            self.stop()
            raise DeviceError(f"the simulated board did not start ({self.program}): {line or 'no output'} "
                              f"{self.summary or ''}".strip())
        self.path = line
        logger.info("simulated board %s running on %s (pid %d)", self.program.parent.parent.name, self.path,
                    self.process.pid)
        return self.path

    def stop(self, timeout_s=5.0):
        """Stop the program (SIGTERM, then SIGKILL) and keep its summary line."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        self.summary = None
        if self._stderr is not None:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
            self._stderr.close()
            self._stderr = None
            self.output = text
            self.summary = text.splitlines()[-1] if text else None
            for line in text.splitlines()[:-1]:
                logger.warning("simulated board: %s", line)
        if self.summary:
            logger.info("%s", self.summary)
        self.path = None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        process = getattr(self, "process", None)
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.communicate()
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()


# -- the `rtl` device ----------------------------------------------------------------

class SimulatedBoardDevice(Device):
    """`open_device("rtl")`: the simulated board, driven by `SerialDevice`
    through its pseudo-terminal, exactly as a real board is driven.

    `load()` builds (or reuses from the cache) and starts a board large enough
    for the network, with the network's bit widths (n and m rounded up to
    powers of two, n at least `lanes`; `neurons`/`inputs` ask for more); a
    later network that fits the running board reuses it. `capabilities()`
    therefore accepts any size; `board_capabilities()` is the running board's
    handshake.
    """

    def __init__(self, *, lanes=4, neurons=None, inputs=None, clk_hz=DEFAULT_CLK_HZ, baud=DEFAULT_BAUD,
                 build_root=None, timeout=10.0, retries=2, **serial_options):
        super().__init__()
        self.lanes, self.neurons, self.inputs = lanes, neurons, inputs
        self.clk_hz, self.baud = clk_hz, baud
        self.build_root = build_root
        self.timeout, self.retries = timeout, retries
        self.serial_options = serial_options
        self.board = None
        self.serial = None

    def capabilities(self):
        return Capabilities(kind="rtl", lanes=self.lanes, clk_hz=self.clk_hz, baud=self.baud)

    def board_capabilities(self):
        """The running board's `Capabilities` (its HELLO), or None before `load()`."""
        return self.serial.capabilities() if self.serial is not None else None

    def _fits(self, config):
        have = self.board.config.core if self.board is not None else None
        want = config.core
        return (have is not None and self.board.running and have.n >= want.n and have.m >= want.m
                and (have.S, have.W, have.T, have.lanes) == (want.S, want.W, want.T, want.lanes))

    def _load(self, network):
        config = board_config_for(network, lanes=self.lanes, clk_hz=self.clk_hz, baud=self.baud,
                                  neurons=self.neurons, inputs=self.inputs)
        if not self._fits(config):
            self._stop()
            self.board = SimulatedBoard(config, build_root=self.build_root)
            self.board.start()
            from neurofabric.host.serial_device import SerialDevice
            self.serial = SerialDevice.open(self.board.path, config.baud, kind="rtl", timeout=self.timeout,
                                            retries=self.retries, build_id=self.board.build_id,
                                            **self.serial_options)
        self.serial.load(network, progress=self._load_progress)

    def _run(self, stimulus, record, snapshot_every, progress, rates, seed, *, record_neurons=None):
        # The board records only `record_neurons`, as a real one does; run selects them again.
        return self.serial._run(stimulus, record, snapshot_every, progress, rates, seed,
                                record_neurons=record_neurons)

    def _run_counts(self, stimulus, progress, rates, seed, *, record_neurons=None):
        # The board counts the spikes itself, as a real one does.
        return self.serial._run_counts(stimulus, progress, rates, seed, record_neurons=record_neurons)

    def read_weights(self):
        self._need_network()
        return self.serial.read_weights()

    def reset_state(self):
        self._need_network()
        self.serial.reset_state()

    def _stop(self):
        serial, self.serial = self.serial, None
        board, self.board = self.board, None
        try:
            if serial is not None:
                serial.close()
        finally:
            if board is not None:
                board.stop()

    def close(self):
        self._stop()
