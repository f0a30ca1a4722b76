"""The `neurofabric` command line: thin commands over the Python API.

Every command parses its arguments and calls the library; errors become one
line on stderr and a distinct exit code (see `errors.py`), never a traceback.
"""

import functools
import logging
import sys
from pathlib import Path

import click
import numpy as np

from .device import DEVICE_KINDS, open_device
from .errors import DeviceError, NetworkError, NeurofabricError
from .files import load_network, load_stimulus, save_network, save_recording
from .progress import Progress

logger = logging.getLogger("neurofabric")


def _handle_errors(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NeurofabricError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def _parse_record(value):
    if not value:
        return ()
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    for key in keys:
        if key not in ("v", "i"):
            raise click.BadParameter(f"unknown probe {key!r}; allowed: v, i (for example --record v,i)")
    return keys


class Duration(click.ParamType):
    """A time: seconds, or a number with s, ms or us ("1ms", "0.5e-3", "250us")."""

    name = "duration"
    units = {"s": 1.0, "ms": 1e-3, "us": 1e-6}

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        for suffix in ("ms", "us", "s"):
            if text.endswith(suffix):
                number, scale = text[: -len(suffix)], self.units[suffix]
                break
        else:
            number, scale = text, 1.0
        try:
            seconds = float(number) * scale
        except ValueError:
            self.fail(f"{value!r} is not a time (examples: 1ms, 0.001, 250us)", param, ctx)
        if not seconds > 0:
            self.fail(f"{value!r} is not a positive time", param, ctx)
        return seconds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output (-vv: link frames, -vvv: byte dumps).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="neurofabric")
@click.pass_context
def cli(ctx, verbose, quiet):
    """neurofabric: run spiking networks on the golden model, the simulated board or an FPGA."""
    # -v: progress details, -vv: one line per frame, -vvv: byte dumps (link.TRACE).
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG, 5)[min(verbose, 3)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"quiet": quiet, "verbose": verbose}


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--input", "stimulus", required=True, type=click.Path(dir_okay=False),
              help="Stimulus file: spikes, shape (steps, m).")
@click.option("--device", default="golden", show_default=True,
              help=f"Where to run: {', '.join(DEVICE_KINDS)}.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Recording file to write.")
@click.option("--record", default="", help="Probes to record after each step: v, i or v,i.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Steps to run (longer than the stimulus pads with silence).")
@click.option("--snapshot-every", type=click.IntRange(min=0), default=0,
              help="Keep the weights every K steps (key weight_snapshots).")
@click.pass_context
@_handle_errors
def run(ctx, network, stimulus, device, output, record, steps, snapshot_every):
    """Run NETWORK on a device from the reset state and write a recording.

    \b
    Examples:
      neurofabric run net.npz --input stim.npz --device golden -o rec.npz
      neurofabric run net.npz --input stim.npz --device rtl -o rec.npz --record v,i --snapshot-every 100
      neurofabric run net.npz --input stim.npz --device serial:/dev/ttyUSB1@1500000 -o rec.npz --steps 5000
    """
    record = _parse_record(record)
    net = load_network(network)
    stim = load_stimulus(stimulus, m=net.m, steps=steps)
    with open_device(device) as dev:
        dev.load(net, progress=Progress("load", enabled=not ctx.obj["quiet"]))
        rec = dev.run(stim, record=record, snapshot_every=snapshot_every,
                      progress=Progress("run", enabled=not ctx.obj["quiet"]))
    save_recording(rec, output)
    if not ctx.obj["quiet"]:
        rate = rec.spikes.mean() if rec.spikes.size else 0.0
        changed = int((rec.weights != net.weights).sum())
        click.echo(f"{rec.steps} steps on {device}: {int(rec.spikes.sum())} spikes "
                   f"({rate:.4f} per neuron per step), {changed} weights changed; wrote {output}")


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@_handle_errors
def info(network):
    """Summarise a network file: sizes, widths, parameter ranges, memory.

    \b
    Example:
      neurofabric info net.npz     # also prints the quantisation report of an imported network
    """
    net = load_network(network)
    facts = net.summary()
    click.echo(f"network {network}")
    click.echo(f"  neurons n = {facts['neurons']}, inputs m = {facts['inputs']}, "
               f"widths S = {net.state_bits}, W = {net.weight_bits}, T = {net.trace_bits}")
    names = net.extras.get("group_names")
    if names is not None:
        kinds, starts, sizes = (net.extras.get(k) for k in ("group_kinds", "group_starts", "group_sizes"))
        for name, kind, start, size in zip(names, kinds, starts, sizes):
            click.echo(f"  group {name}: {size} {kind} from {kind[:-1]} {start}")
    click.echo(f"  synapses: {facts['synapses_nonzero']} non-zero of {(net.m + net.n) * net.n}, "
               f"{facts['synapses_plastic']} plastic ({facts['synapses_plastic_nonzero']} of them non-zero)")
    w = net.weights
    click.echo(f"  weights: {int(w.min())}..{int(w.max())}, mean {w.mean():.2f}")
    for name in ("threshold", "v_reset", "bias", "k_mem", "k_syn", "refractory", "reset_mode"):
        arr = getattr(net, name)
        click.echo(f"  {name}: {int(arr.min())}..{int(arr.max())}")
    if net.learn:
        click.echo(f"  learning on: a_plus {net.a_plus}, a_minus {net.a_minus}, shift {net.stdp_shift}, "
                   f"k_pre {net.k_pre}, k_post {net.k_post}, inc_pre {net.inc_pre}, inc_post {net.inc_post}, "
                   f"trace mode {net.trace_mode}, weights kept in {net.w_min}..{net.w_max}")
    else:
        click.echo("  learning off")
    click.echo(f"  memory: weights {facts['weight_memory_bits']} bits "
               f"({facts['weight_memory_bits'] / 8192:.1f} KiB), accumulator {facts['accumulator_bits']} bits")
    if "quantisation_report" in net.extras:
        from .units import QuantisationReport
        for line in QuantisationReport.from_json(str(net.extras["quantisation_report"])).lines():
            click.echo(f"  {line}")


@cli.command("import-nir")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--dt", type=Duration(), required=True, help="The time step (1ms, 0.5ms, 0.001).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Network file to write.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Largest relative error allowed for a parameter (time constants are dt * 2**k).")
@click.option("--state-bits", type=int, default=16, show_default=True)
@click.option("--weight-bits", type=int, default=8, show_default=True)
@click.option("--trace-bits", type=int, default=8, show_default=True)
@click.pass_context
@_handle_errors
def import_nir_command(ctx, graph, dt, output, tolerance, state_bits, weight_bits, trace_bits):
    """Import a NIR graph (Input, Output, Affine, Linear, LIF, CubaLIF, IF) as a network.

    \b
    Example:
      neurofabric import-nir model.nir --dt 1ms -o net.npz
    """
    from .nir_io import import_nir
    from neurofabric.contract.model import Widths
    net, report = import_nir(graph, dt, widths=Widths(state_bits, weight_bits, trace_bits), tolerance=tolerance)
    save_network(net, output)
    if not ctx.obj["quiet"]:
        for line in report.lines():
            click.echo(line)
        click.echo(f"wrote {output}: {net.n} neurons, {net.m} inputs")


@cli.command("export-nir")
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="NIR file to write.")
@click.option("--dt", type=Duration(), default=None,
              help="The time step the graph describes (default: the network's, else 1ms).")
@click.option("--weights", "recording", type=click.Path(dir_okay=False), default=None,
              help="Take the weights from this recording (the weights after a run on a device).")
@_handle_errors
def export_nir_command(network, output, dt, recording):
    """Export a network (optionally with learned weights) as a NIR graph.

    \b
    Example:
      neurofabric run net.npz --input stim.npz --device golden -o rec.npz
      neurofabric export-nir net.npz --weights rec.npz -o learned.nir
    """
    from .files import load_recording
    from .nir_io import export_nir, write_nir
    net = load_network(network)
    if recording is not None:
        rec = load_recording(recording)
        if rec.weights.shape != net.weights.shape:
            raise NetworkError(f"{recording}: weights of shape {rec.weights.shape} do not fit the network "
                               f"{net.weights.shape}")
        net = net.copy()
        net.weights = rec.weights
        net.validate()
    if dt is None:
        dt = float(net.extras["dt"]) if "dt" in net.extras else 1e-3
    try:
        write_nir(export_nir(net, dt=dt), output)
    except OSError as exc:
        raise NetworkError(f"cannot write {output!r}: {exc}") from None
    click.echo(f"wrote {output}")


@cli.command()
def devices():
    """List the device names --device accepts.

    \b
    Example:
      neurofabric devices
    """
    for name, text in DEVICE_KINDS.items():
        click.echo(f"{name:10s} {text}")


@cli.group(invoke_without_command=True)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default="out/demo",
              show_default=True, help="Folder for the demo's files.")
@click.option("--device", default="rtl", show_default=True,
              help="Where to run: rtl (the simulated board), golden, serial:PATH[@BAUD].")
@click.option("--seed", type=int, default=1, show_default=True)
@click.pass_context
@_handle_errors
def demo(ctx, out_dir, device, seed):
    """Learn a repeated spike pattern with on-chip STDP and report what changed.

    \b
    Examples:
      neurofabric demo                 # the pattern-learning demo
      neurofabric demo digits          # 8x8 handwritten digits, 500 held-out samples
    """
    if ctx.invoked_subcommand is not None:
        return
    from .demo import pattern_demo
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    summary = pattern_demo(device=device, out_dir=Path(out_dir), seed=seed,
                           progress=None if ctx.obj["quiet"] else click.echo)
    for line in summary:
        click.echo(line)
    import json
    if json.loads((Path(out_dir) / "summary.json").read_text()).get("bit_exact_with_golden") is False:
        raise DeviceError(f"{device} disagreed with the golden model during learning: run "
                          f"`neurofabric diff` on {Path(out_dir) / 'training.npz'}'s network to find where")


@demo.command("digits")
@click.option("--learning", type=click.Choice(["off-chip", "on-chip"]), default="off-chip", show_default=True,
              help="off-chip: a softmax trained in floating point, quantised; on-chip: the core's own STDP "
                   "learns the weights from 0, supervised by teacher spikes.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the network and the results [default: out/digits, "
                   "out/digits-on-chip with --learning on-chip].")
@click.option("--device", default="golden", show_default=True,
              help="Also run a subset of the test set here and check it against the golden model.")
@click.option("--subset", type=click.IntRange(min=1), default=50, show_default=True,
              help="Test samples (on-chip: and training samples learned) to run on --device when it is "
                   "not golden.")
@click.pass_context
@_handle_errors
def demo_digits(ctx, learning, out_dir, device, subset):
    """Classify scikit-learn's 8x8 digits with a spiking network trained off-chip or learned on-chip.

    \b
    Examples:
      neurofabric demo digits                          # 500 held-out samples on the golden model
      neurofabric demo digits --device rtl --subset 50 # and 50 of them on the simulated board
      neurofabric demo digits --learning on-chip       # weights learned by on-chip STDP instead
    """
    import json
    from .digits import digits_demo
    quiet = ctx.obj["quiet"]
    if learning == "on-chip":
        from .digits_onchip import onchip_digits_demo, save_onchip_results, summary_lines
        result = onchip_digits_demo(device=device, subset=subset, show_progress=not quiet)
        paths = save_onchip_results(result, out_dir or "out/digits-on-chip")
        for line in summary_lines(result):
            click.echo(line)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}")
        if "device_agrees" in result and not result["device_agrees"]:
            raise DeviceError(f"{device} disagrees with the golden model while learning or testing the digits")
        return
    out_dir = out_dir or "out/digits"
    result = digits_demo(device=device, subset=subset,
                         progress=Progress("samples", enabled=not quiet))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_network(result["network"], out / "digits_network.npz")
    report = result.pop("report")
    result.pop("network")
    (out / "quantisation_report.txt").write_text("\n".join(report.lines()) + "\n")
    (out / "result.json").write_text(json.dumps(result, indent=2))
    if not quiet:
        for line in report.lines():
            click.echo(line)
    click.echo(f"digits: {result['train_samples']} training samples, softmax regression trained off-chip, "
               f"{result['steps']} steps per sample, {result['spikes_per_sample']:.1f} output spikes per sample")
    click.echo(f"test accuracy: {result['test_accuracy']:.3f} ({result['test_samples']} samples) on the golden "
               f"model; the same classifier in floating point: {result['float_accuracy']:.3f}")
    if "device_samples" in result:
        verdict = "identical to the golden model" if result["device_agrees"] else "DIFFERENT from the golden model"
        click.echo(f"on {device}: accuracy {result['device_accuracy']:.3f} on the first "
                   f"{result['device_samples']} test samples, spikes and predictions {verdict}")
        if not result["device_agrees"]:
            raise DeviceError(f"{device} disagrees with the golden model on the digits test subset")
    click.echo(f"wrote {out / 'digits_network.npz'}, {out / 'quantisation_report.txt'}, {out / 'result.json'}")


@cli.command()
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Picture to write (.png, .svg, .pdf); default: RECORDING-KIND.png.")
@click.option("--kind", type=click.Choice(["raster", "traces", "weights", "evolution"]), default="raster",
              show_default=True, help="What to draw.")
@click.option("--neurons", default=None, help="Neurons for --kind traces, for example 0,3,7.")
@click.option("--ascii", "as_text", is_flag=True, help="Print the raster as text instead (no display needed).")
@click.option("--width", type=click.IntRange(min=10), default=100, show_default=True,
              help="Columns of the --ascii raster.")
@_handle_errors
def plot(recording, output, kind, neurons, as_text, width):
    """Draw a recording: spike raster, v/i traces, weights, or weight evolution.

    \b
    Examples:
      neurofabric plot rec.npz                       # rec-raster.png
      neurofabric plot rec.npz --kind traces --neurons 0,1 -o traces.png
      neurofabric plot rec.npz --kind evolution      # needs run --snapshot-every K
      neurofabric plot rec.npz --ascii               # in the terminal
    """
    from . import plot as plots
    from .files import load_recording
    rec = load_recording(recording)
    if as_text:
        click.echo(plots.ascii_raster(rec.spikes, width=width))
        return
    chosen = None
    if neurons:
        try:
            chosen = [int(x) for x in neurons.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(f"{neurons!r} is not a list of neuron numbers", param_hint="--neurons")
    name = Path(recording).stem
    if kind == "raster":
        fig = plots.raster(rec, title=f"spikes of {name}")
    elif kind == "traces":
        fig = plots.traces(rec, chosen, title=f"membrane and current of {name}")
    elif kind == "weights":
        n = rec.spikes.shape[1]
        fig = plots.weights(rec.weights, m=rec.weights.shape[0] - n, title=f"weights after {name}")
    else:
        fig = plots.evolution(rec, title=f"weight evolution in {name}")
    output = output or str(Path(recording).with_name(f"{name}-{kind}.png"))
    plots.save(fig, output)
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--input", "stimulus", required=True, type=click.Path(dir_okay=False), help="Stimulus file.")
@click.option("--device", "devices_", multiple=True, required=True,
              help="Give it twice: the two devices to compare (for example golden and rtl).")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Steps to run.")
@click.option("--snapshot-every", type=click.IntRange(min=0), default=0,
              help="Compare the weights every K steps too (1: every step).")
@click.pass_context
@_handle_errors
def diff(ctx, network, stimulus, devices_, steps, snapshot_every):
    """Run NETWORK on two devices and report the first divergence, or that they agree.

    \b
    Example:
      neurofabric diff net.npz --input stim.npz --device golden --device rtl
    """
    from .compare import first_divergence
    if len(devices_) != 2:
        raise click.BadParameter(f"give exactly two devices, got {len(devices_)}", param_hint="--device")
    net = load_network(network)
    stim = load_stimulus(stimulus, m=net.m, steps=steps)
    recs = []
    for name in devices_:
        with open_device(name) as dev:
            dev.load(net)
            recs.append(dev.run(stim, record=("v", "i"), snapshot_every=snapshot_every,
                                progress=Progress(f"run on {name}", enabled=not ctx.obj["quiet"])))
    found = first_divergence(*recs)
    a, b = devices_
    if found is None:
        click.echo(f"{a} and {b} agree: {stim.shape[0]} steps, spikes, v, i and weights identical")
        return
    click.echo(found.describe(a, b))
    sys.exit(1)


@cli.command("boards")
def boards_command():
    """List the boards `build` knows, with their default core sizes and clocks.

    \b
    Example:
      neurofabric boards
    """
    from ..boards import BOARDS
    click.echo(f"{'board':<12} {'neurons':>7} {'inputs':>6} {'lanes':>5} {'clock':>8} {'baud':>9}  description")
    for b in BOARDS.values():
        tools = " (Vivado: --prepare-only)" if b.needs_vivado else ""
        click.echo(f"{b.name:<12} {b.neurons:>7} {b.inputs:>6} {b.lanes:>5} {b.clk_hz / 1e6:>5g} MHz "
                   f"{b.baud:>9}  {b.description}{tools}")


@cli.command("build")
@click.option("--board", "board_name", required=True, help="Board name (see `neurofabric boards`).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Build folder (default: build/BOARD).")
@click.option("--neurons", type=click.IntRange(min=1), default=None, help="Neurons n (default: the board's).")
@click.option("--inputs", type=click.IntRange(min=0), default=None, help="Inputs m (default: the board's).")
@click.option("--lanes", type=click.IntRange(min=1), default=None, help="Weights per memory word.")
@click.option("--baud", type=click.IntRange(min=1), default=None, help="UART baud rate.")
@click.option("--clk-hz", type=click.IntRange(min=1), default=None, help="Core clock (a PLL makes it).")
@click.option("--prepare-only", is_flag=True, help="Xilinx boards: write the Vivado build folder only.")
@click.pass_context
@_handle_errors
def build_command(ctx, board_name, out_dir, neurons, inputs, lanes, baud, clk_hz, prepare_only):
    """Build a bitstream with the open tools (iCE40, ECP5) and write DIR/report.json.

    \b
    Examples:
      neurofabric build --board icebreaker
      neurofabric build --board ulx3s-85f --neurons 512 --inputs 512 -o build/ulx3s
      neurofabric build --board cmod-a7 --prepare-only
    """
    import json
    from ..boards import build_bitstream, get_board, prepare_vivado
    from .errors import BuildError
    board = get_board(board_name).with_sizes(neurons=neurons, inputs=inputs, lanes=lanes, baud=baud,
                                             clk_hz=clk_hz)
    out_dir = out_dir or str(Path("build") / board.name)
    say = (lambda *a: None) if ctx.obj["quiet"] else click.echo
    if board.needs_vivado:
        if not prepare_only:
            raise BuildError(f"{board.description} bitstreams need Vivado, which the set-up does not install; "
                             "run with --prepare-only to write the Vivado build folder, then build it there")
        report = prepare_vivado(board, out_dir)
        say(f"wrote the Vivado build folder {out_dir}; in it, with Vivado on PATH: sh build_neurofabric.sh")
        return
    if prepare_only:
        raise BuildError(f"--prepare-only is for the Vivado boards; {board.name} builds with the open tools")
    result = build_bitstream(board, out_dir, progress=say)
    report = result.report
    say(json.dumps({k: report[k] for k in ("board", "neurons", "inputs", "lanes", "clk_hz", "fmax_hz",
                                           "baud", "build_s")}))
    for key, use in report["resources"].items():
        say(f"  {key}: {use['used']} of {use['available']}")
    click.echo(f"wrote {report['bitstream']} and {Path(out_dir) / 'report.json'}")


@cli.command("flash")
@click.option("--board", "board_name", required=True, help="Board name (see `neurofabric boards`).")
@click.argument("bitstream", required=False, type=click.Path(dir_okay=False))
@click.option("--flash", "to_flash", is_flag=True, help="Write the configuration flash (default: SRAM).")
@_handle_errors
def flash_command(board_name, bitstream, to_flash):
    """Program a board with openFPGALoader (default bitstream: build/BOARD/neurofabric.bin|bit).

    \b
    Examples:
      neurofabric flash --board icebreaker
      neurofabric flash --board ulx3s-85f build/ulx3s/neurofabric.bit --flash
    """
    from ..boards import flash, get_board
    board = get_board(board_name)
    if bitstream is None:
        suffix = ".bin" if board.family == "ice40" else ".bit"
        bitstream = str(Path("build") / board.name / f"neurofabric{suffix}")
    flash(board, bitstream, to_flash=to_flash)
    click.echo(f"programmed {board.description} ({'flash' if to_flash else 'SRAM'}) with {bitstream}")


@cli.command("sim-board")
@click.option("--neurons", type=click.IntRange(min=1), default=64, show_default=True, help="Neurons n of the core.")
@click.option("--inputs", type=click.IntRange(min=1), default=64, show_default=True, help="Inputs m of the core.")
@click.option("--lanes", type=click.IntRange(min=1), default=4, show_default=True, help="Weights per memory word.")
@click.option("--state-bits", type=int, default=16, show_default=True, help="S: width of v and i.")
@click.option("--weight-bits", type=int, default=8, show_default=True, help="W: width of a weight.")
@click.option("--trace-bits", type=int, default=8, show_default=True, help="T: width of a trace.")
@click.option("--link", "link_path", type=click.Path(dir_okay=False), default=None,
              help="Also make this symlink to the pty (a name that stays the same).")
@click.option("--trace", is_flag=True, help="Print every byte on the line, with its clock cycle, on stderr.")
@click.pass_context
@_handle_errors
def sim_board(ctx, neurons, inputs, lanes, state_bits, weight_bits, trace_bits, link_path, trace):
    """Start a simulated board (the gateware under Verilator) on a pseudo-terminal.

    Prints the pty's path on the first line of stdout, then runs until Ctrl-C.
    The first start of a configuration builds it (a minute or so); later
    starts reuse the build.

    \b
    Example:
      neurofabric sim-board --neurons 16 --inputs 8 --link /tmp/nf-board &
      neurofabric run net.npz --input stim.npz --device serial:/tmp/nf-board -o rec.npz
    """
    import os
    import signal
    import threading

    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.sim.board import BoardConfig, SimulatedBoard
    try:
        core = CoreConfig(n=neurons, m=inputs, S=state_bits, W=weight_bits, T=trace_bits, lanes=lanes)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    quiet = ctx.obj["quiet"]
    if not quiet:
        click.echo(f"simulated board {core.key()}: building or reusing the Verilator model ...", err=True)
    board = SimulatedBoard(BoardConfig(core), trace=trace)
    board.start()
    try:
        if link_path:
            if os.path.islink(link_path):
                os.unlink(link_path)
            os.symlink(board.path, link_path)
        click.echo(board.path)
        if not quiet:
            where = link_path or board.path
            click.echo(f"simulated board on {board.path}{f' (link {link_path})' if link_path else ''}: "
                       f"n = {neurons}, m = {inputs}, S = {state_bits}, W = {weight_bits}, T = {trace_bits}, "
                       f"{lanes} lanes; use --device serial:{where}. Ctrl-C stops it.", err=True)
        # Ctrl-C (or SIGTERM) only sets a flag: a KeyboardInterrupt raised inside
        # Popen.poll() could leave its wait lock held and hang the stop below.
        stopping = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while board.running and not stopping.wait(0.2):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        board.stop()
        if link_path and os.path.islink(link_path):
            os.unlink(link_path)
    if not quiet and board.summary:
        click.echo(board.summary, err=True)


@cli.command("selftest")
@click.option("--device", required=True, help="rtl (the simulated board) or serial:PATH[@BAUD].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@_handle_errors
def selftest_command(device, seed, steps):
    """Check a board: handshake, echo of every frame length, a network against the golden model, weights.

    \b
    Examples:
      neurofabric selftest --device rtl
      neurofabric selftest --device serial:/dev/ttyUSB1@1500000
    """
    from .selftest import selftest
    checks = selftest(device, seed=seed, steps=steps, say=click.echo)
    failed = [c for c in checks if not c.passed]
    if failed or len(checks) < 5:
        click.echo(f"selftest FAILED: {len(failed)} of {len(checks)} checks failed"
                   + ("" if len(checks) == 5 else " (later checks were not run)"))
        sys.exit(DeviceError.exit_code)
    click.echo(f"selftest passed: {len(checks)} checks on {device}")


@cli.command("bench")
@click.option("--quick", is_flag=True,
              help="Short sweeps, small board builds (or cached ones), a smaller Brian2 comparison: about ten "
                   "minutes on two cores, every figure's key still there.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results as JSON.")
@click.option("-o", "--docs", "docs_path", type=click.Path(dir_okay=False), default=None,
              help="Write the page here (docs/benchmarks.md is the full run's); its pictures go to the folder of "
                   "the same name next to it. Without -o no page is written.")
@click.pass_context
@_handle_errors
def bench_command(ctx, quick, json_path, docs_path):
    """Measure the core, the boards, the link, the simulated board and the golden model.

    Runs from the source checkout (it uses benchmarks/; its board builds are
    cached in bench/ of the cache folder). The full run builds every open-tool
    board at its default size (about a quarter of an hour on two cores);
    --quick stays within about ten minutes. The page is written only with -o.
    Exit code 1 when a section failed (the others are still measured and written).

    \b
    Examples:
      neurofabric bench -o docs/benchmarks.md          # the full run: the committed page
      neurofabric bench --quick --json out/bench.json  # every key, in about ten minutes
      neurofabric bench --quick -o out/bench.md        # a quick page, elsewhere
    """
    from .bench import BenchPlan, run_bench
    plan = BenchPlan.quick() if quick else BenchPlan.full()
    say = (lambda message: None) if ctx.obj["quiet"] else (lambda message: click.echo(message, err=True))
    results = run_bench(plan, say=say, json_path=json_path, docs_path=docs_path)
    core, ratio = results.get("core"), results.get("golden_vs_brian2")
    if core:
        c = core["cycles_per_step"]
        click.echo(f"core (n = m = {core['reference']['n']}, {core['reference']['lanes']} lanes, 10 % activity): "
                   f"{c['learn_off']:,.0f} cycles/step learning off, {c['learn_on']:,.0f} learning on")
    if ratio is not None:
        click.echo(f"golden_vs_brian2: {ratio:.2f}")
    written = [path for path in (docs_path, json_path) if path]
    click.echo(f"{plan.name} run in {results['wall_s'] / 60:.1f} minutes; "
               + (f"wrote {' and '.join(written)}" if written else "no page written (-o PAGE writes one)"))
    if results["errors"]:
        click.echo(f"error: sections failed: {', '.join(results['errors'])}", err=True)
        sys.exit(1)


def main():
    """Console-script entry point."""
    cli(prog_name="neurofabric")
