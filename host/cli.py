"""The `neurofabric` command line: thin commands over the Python API.

Every command parses its arguments and calls the library. No failure shows a
traceback: a `NeurofabricError` becomes its one-line message on stderr and its
layer's exit code (see `errors.py`; 2 is click's own, for usage errors), and
anything else, which is a bug, one "internal error" line and exit code 70
(`INTERNAL_ERROR_EXIT`; with `-v`, the traceback too). Every output is checked
before the work starts (`safe_io.check_output_path`): a missing folder or an
output that is one of the inputs costs no run.
"""

import errno
import logging
import math
import os
import sys
import traceback
from pathlib import Path

import click
import numpy as np

from neurofabric.contract.model import CORE_MODEL_VERSION

from .device import DEVICE_KINDS, PROBES, open_device
from .errors import DeviceError, LinkError, NetworkError, NeurofabricError
from .files import Stimulus, load_network, save_network, save_recording
from .progress import PROGRESS_LOGGER, Progress
from .safe_io import check_output_folder, check_output_path

logger = logging.getLogger("neurofabric")

#: Exit code of an unexpected failure (a bug, not a refused input): sysexits.h's
#: EX_SOFTWARE, apart from the layers' 2..6 and the 1 of a `diff` that differs.
INTERNAL_ERROR_EXIT = 70

#: The largest count an option takes (steps, intervals, samples): more is a typo,
#: since no recording of that many steps fits in memory.
MAX_COUNT = (1 << 31) - 1
#: Seeds are numpy seeds of 32 bits.
MAX_SEED = (1 << 32) - 1


def _count(minimum):
    return click.IntRange(min=minimum, max=MAX_COUNT)


_SEED = click.IntRange(min=0, max=MAX_SEED)


class _Commands(click.Group):
    """The command group: every failure of a command ends as one line on stderr and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except NeurofabricError as exc:
            _fail(ctx, f"error: {exc}", exc.exit_code, exc, traceback_too=False)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click ends quietly when the reader of stdout went away (`| head`)
            _internal(ctx, exc)
        except Exception as exc:
            _internal(ctx, exc)


def _internal(ctx, exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    _fail(ctx, f"internal error: {text}", INTERNAL_ERROR_EXIT, exc, traceback_too=True)


def _fail(ctx, message, exit_code, exc, traceback_too):
    """Print `message` as one line (all of it, and the traceback of a bug, with -v) and exit."""
    verbose = (ctx.obj or {}).get("verbose", 0)
    lines = str(message).splitlines() or [""]
    if verbose:
        if traceback_too:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        click.echo("\n".join(lines), err=True)
    else:
        hint = " (rerun with -v for the traceback)" if traceback_too else (
            " (rerun with -v for the details)" if len(lines) > 1 else "")
        click.echo(lines[0] + hint, err=True)
    sys.exit(exit_code)


class _ProgressLines(logging.Handler):
    """Progress of long work (`PROGRESS_LOGGER`) as plain lines on the current stderr."""

    def emit(self, record):
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def _show_progress(level):
    progress = logging.getLogger(PROGRESS_LOGGER)
    for handler in [h for h in progress.handlers if isinstance(h, _ProgressLines)]:
        progress.removeHandler(handler)
    handler = _ProgressLines(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)
    progress.setLevel(min(level, logging.INFO))
    progress.propagate = False  # once here, not again through the root logger at -v


def _parse_record(value):
    if not value:
        return ()
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    for key in keys:
        if key not in PROBES:
            raise click.BadParameter(f"unknown probe {key!r}; allowed: {', '.join(PROBES)} (for example "
                                     "--record v,i,inputs)")
    return tuple(dict.fromkeys(keys))


def _check_device(name):
    """Refuse a device name before any work (a typo found after training costs the training)."""
    if name.startswith("serial:"):
        from .serial_device import parse_serial_name
        path, _ = parse_serial_name(name)
        if not os.path.exists(path):
            raise LinkError(f"serial port {path} does not exist: is the board plugged in and is the path right?")
        return name
    if name in DEVICE_KINDS:
        return name
    raise DeviceError(f"unknown device {name!r}; known devices: {', '.join(DEVICE_KINDS)}")


def _device_option(ctx, param, value):
    if value is None:
        return value
    if isinstance(value, tuple):
        return tuple(_check_device(v) for v in value)
    return _check_device(value)


def _check_run_memory(steps, net, record=(), snapshot_every=0, runs=1, steps_from="--steps"):
    """Refuse a run (of `runs` runs or trials) whose stimulus and recording could not fit this machine's memory.

    `steps_from` is the option the steps come from, which the message names.
    """
    # stimulus and spikes in bytes, v and i in int64, inputs in bytes
    per_step = net.m + net.n + sum(8 * net.n if key in ("v", "i") else net.m for key in record)
    snapshots = steps // snapshot_every if snapshot_every else 0
    need = runs * (steps * per_step + snapshots * (net.m + net.n) * net.n * 8)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return
    if need > have:
        raise click.BadParameter(
            f"{steps} steps of n = {net.n} neurons, m = {net.m} inputs"
            + (f" with {snapshots} weight snapshots" if snapshots else "")
            + f" need about {need / 2**30:.1f} GiB, more than this machine's {have / 2**30:.1f} GiB",
            param_hint=steps_from if steps * per_step * runs * 2 > need else "--snapshot-every")


class _Quantity(click.ParamType):
    """A number with an optional unit suffix (`units`: suffix -> scale, longest suffixes first)."""

    units: dict = {}
    noun = "number"      # what the messages call it
    examples = ""
    minimum_text = "an allowed value"

    def allowed(self, number):
        """Whether a finite `number` (in the base unit) is in range."""
        return True

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        number, scale = text, 1.0
        for suffix in self.units:
            if text.endswith(suffix):
                number, scale = text[: -len(suffix)], self.units[suffix]
                break
        try:
            quantity = float(number) * scale
        except ValueError:
            self.fail(f"{value!r} is not a {self.noun} (examples: {self.examples})", param, ctx)
        if not (math.isfinite(quantity) and self.allowed(quantity)):
            self.fail(f"{value!r} is not {self.minimum_text}", param, ctx)
        return quantity


class Duration(_Quantity):
    """A time: seconds, or a number with s, ms or us ("1ms", "0.5e-3", "250us")."""

    name = "duration"
    noun = "time"
    units = {"ms": 1e-3, "us": 1e-6, "s": 1.0}
    examples = "1ms, 0.001, 250us"
    minimum_text = "a positive, finite time"

    def allowed(self, seconds):
        return seconds > 0


class FiniteFloat(click.ParamType):
    """A finite number of at least `minimum` (NaN would turn every comparison with it off)."""

    name = "number"

    def __init__(self, minimum=None):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.minimum is not None and number < self.minimum:
            self.fail(f"{value!r} is below {self.minimum:g}", param, ctx)
        return number


class Rate(_Quantity):
    """A rate in Hz: a number with Hz or kHz, or a bare number of Hz ("20Hz", "0.5kHz", "20")."""

    name = "rate"
    noun = "rate"
    units = {"khz": 1e3, "hz": 1.0}
    examples = "20Hz, 0.5kHz, 20"
    minimum_text = "a finite rate of 0 Hz or more"

    def allowed(self, hz):
        return hz >= 0


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True,
              help="More output (-v: details and the traceback of an internal error, -vv: link frames, "
                   "-vvv: byte dumps).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="neurofabric")
@click.pass_context
def cli(ctx, verbose, quiet):
    """neurofabric: run spiking networks on the golden model, the simulated board or an FPGA."""
    # -v: progress details, -vv: one line per frame, -vvv: byte dumps (link.TRACE).
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG, 5)[min(verbose, 3)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # What long work is doing (a first build of the simulated board) shows unless -q.
    _show_progress(logging.ERROR if quiet else min(level, logging.INFO))
    ctx.obj = {"quiet": quiet, "verbose": verbose}


def _load_run_stimulus(path, net, steps, record, snapshot_every, runs=1):
    """The stimulus file at `path` for `net`, after checking that its run fits in memory (also before padding)."""
    if steps is not None:
        _check_run_memory(steps, net, record, snapshot_every, runs)
    stim = Stimulus.load(path, m=net.m, steps=steps)
    _check_run_memory(stim.steps, net, record, snapshot_every, runs * (stim.trials or 1),
                      steps_from="--steps" if steps is not None else "--input")
    if stim.trials is not None and snapshot_every:
        raise click.BadParameter(f"{path} is a batch of {stim.trials} trials, which keeps no weight snapshots "
                                 "(its weights are those after the last trial)", param_hint="--snapshot-every")
    return stim


def _stimulus_text(stim):
    """How a stimulus runs, for the summary lines: "30 steps", "4 trials of 30 steps"."""
    return f"{stim.trials} trials of {stim.steps} steps" if stim.trials is not None else f"{stim.steps} steps"


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--input", "stimulus", required=True, type=click.Path(dir_okay=False),
              help="Stimulus file: spikes (steps, m), and/or the generator's rates (m,) and seed; a leading "
                   "trials axis runs a batch of trials.")
@click.option("--device", default="golden", show_default=True, callback=_device_option,
              help=f"Where to run: {', '.join(DEVICE_KINDS)}.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Recording file to write.")
@click.option("--record", default="", help=f"Probes to record after each step: {', '.join(PROBES)} "
                                           "(inputs: the set U of each step, host and generated), e.g. v,i.")
@click.option("--steps", type=_count(0), default=None,
              help="Steps to run (of each trial; longer than the stimulus pads with silence).")
@click.option("--snapshot-every", type=_count(0), default=0,
              help="Keep the weights every K steps (key weight_snapshots; not for trials).")
@click.option("--neurons", default=None, callback=lambda ctx, param, value: _neurons_option(ctx, param, value),
              help="Record only these neurons, e.g. 0-9,20 (key neurons; spikes, v, i get a column each).")
@click.option("--counts", is_flag=True,
              help="Record only each neuron's spike count over the run (or each trial): key counts, no spikes.")
@click.pass_context
def run(ctx, network, stimulus, device, output, record, steps, snapshot_every, neurons, counts):
    """Run NETWORK on a device from the reset state and write a recording.

    The stimulus may hold the host's spikes, the stimulus generator's rates
    and seed (inputs made on the device), or both; a batch of trials runs
    each trial from the reset state (the weights carry over), and the
    recording gets a leading trials axis.

    \b
    Examples:
      neurofabric run net.npz --input stim.npz --device golden -o rec.npz
      neurofabric run net.npz --input stim.npz --device rtl -o rec.npz --record v,i --snapshot-every 100
      neurofabric run net.npz --input poisson.npz -o rec.npz --record inputs   # the generator's inputs too
      neurofabric run net.npz --input stim.npz --device serial:/dev/ttyUSB1@3000000 -o rec.npz --steps 5000
      neurofabric run net.npz --input trials.npz -o counts.npz --neurons 0-9 --counts   # class scores
    """
    record = _parse_record(record)
    inputs = (network, stimulus)
    check_output_path(output, inputs=inputs, what="recording")
    net = load_network(network)
    if neurons is not None and neurons[-1] >= net.n:
        raise click.BadParameter(f"neuron {neurons[-1]} is out of range: {network} has neurons 0..{net.n - 1}",
                                 param_hint="--neurons")
    stim = _load_run_stimulus(stimulus, net, steps, record, snapshot_every)
    quiet = ctx.obj["quiet"]
    with open_device(device) as dev:
        dev.load(net, progress=Progress("load", enabled=not quiet))
        rec = stim.run(dev, record=record, snapshot_every=snapshot_every,
                       progress=Progress("trials" if stim.trials is not None else "run", enabled=not quiet),
                       record_neurons=neurons, counts=counts)
    from .plot import GROUP_KEYS
    # The builder's group names travel with the recording, so its plots name the populations.
    rec.extras.update({key: net.extras[key] for key in GROUP_KEYS if key in net.extras})
    save_recording(rec, output, inputs=inputs)
    if not quiet:
        total = int(rec.counts.sum()) if rec.spikes is None else int(rec.spikes.sum())
        cells = rec.recorded_neurons.size * rec.steps * (rec.trials or 1)
        rate = total / cells if cells else 0.0
        changed = int((rec.weights != net.weights).sum())
        made = ""
        if rec.inputs is not None:
            made = f", {int(rec.inputs.sum())} input spikes"
        which = "" if rec.neurons is None else f" of {rec.neurons.size} recorded neurons"
        click.echo(f"{_stimulus_text(stim)} on {device}: {total} spikes{which} "
                   f"({rate:.4f} per neuron per step){made}, {changed} weights changed; wrote {output}")


@cli.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Stimulus file to write.")
@click.option("--steps", type=_count(1), required=True, help="Steps of the stimulus (of each trial).")
@click.option("--poisson", type=Rate(), default=None,
              help="Rate coding, random: each input spikes with probability RATE * dt in each step.")
@click.option("--on-chip", "on_chip", is_flag=True,
              help="With --poisson: write the stimulus generator's rates (round(65536 * RATE * dt), at most "
                   "65535) and its --seed instead of spikes; the device draws the inputs.")
@click.option("--regular", type=Rate(), default=None, help="Rate coding, evenly spaced spikes at RATE.")
@click.option("--latency", is_flag=True, help="Latency coding: one spike per input, earlier for larger "
                                              "values (needs --values).")
@click.option("--dt", type=Duration(), default=None, help="The time step (1ms, 0.5ms); needed by the rates.")
@click.option("--inputs", type=_count(1), default=None, help="Input channels, all at RATE (without --values).")
@click.option("--values", "values_path", type=click.Path(dir_okay=False), default=None,
              help="Intensities in 0..1, one per input (.npy, .npz, .csv); several rows are a batch of trials, "
                   "one per row. A rate scales RATE by them.")
@click.option("--seed", type=_SEED, default=None,
              help="Seed of --poisson: numpy's on the host [default: 0]; with --on-chip the generator's, "
                   "1..4294967295 [default: 1] (trial r of a batch starts where trial r-1's numbers end).")
def stimulus(output, steps, poisson, on_chip, regular, latency, dt, inputs, values_path, seed):
    """Write a stimulus file: rate (Poisson or regular) or latency coded inputs, or generator rates.

    Rows of --values are trials: each is encoded over --steps steps, and the
    file holds them with a leading trials axis (spikes (trials, steps, m),
    rates (trials, m)); `run` runs each from the reset state. One row (or
    --inputs) writes one run.

    \b
    Examples:
      neurofabric stimulus --poisson 20Hz --dt 1ms --steps 1000 --inputs 64 -o stim.npz
      neurofabric stimulus --poisson 20Hz --on-chip --dt 1ms --steps 1000 --inputs 64 --seed 7 -o gen.npz
      neurofabric stimulus --regular 50Hz --dt 1ms --steps 200 --inputs 8 -o stim.npz
      neurofabric stimulus --poisson 100Hz --dt 1ms --steps 25 --values digits.npy -o trials.npz
      neurofabric stimulus --latency --steps 20 --values intensities.csv -o stim.npz
    """
    from . import encoders
    from .files import MAX_FILE_VALUES
    check_output_path(output, inputs=(values_path,), what="stimulus")
    values = encoders.load_values(values_path) if values_path is not None else None
    chosen = [name for name, given in (("--poisson", poisson is not None), ("--regular", regular is not None),
                                       ("--latency", latency)) if given]
    if len(chosen) != 1:
        raise click.UsageError("choose one encoding: --poisson RATE, --regular RATE or --latency"
                               + (f" (got {' and '.join(chosen)})" if chosen else ""))
    if on_chip and poisson is None:
        raise click.BadParameter(f"the stimulus generator draws Poisson inputs only: --on-chip goes with "
                                 f"--poisson, not {chosen[0]}", param_hint="--on-chip")
    if on_chip and seed == 0:
        raise click.BadParameter("0 is not a generator seed: allowed 1..4294967295 (its state is never 0)",
                                 param_hint="--seed")
    if values is None:
        if latency:
            raise click.BadParameter("--latency encodes intensities: give them with --values FILE",
                                     param_hint="--values")
        if inputs is None:
            raise click.BadParameter("give the number of inputs (--inputs M) or their values (--values FILE)",
                                     param_hint="--inputs")
        values = np.ones((1, inputs))
    elif inputs is not None and inputs != values.shape[1]:
        raise click.BadParameter(f"{inputs} inputs, but {values_path} has {values.shape[1]} values per row",
                                 param_hint="--inputs")
    trials, m = values.shape
    if trials == 1:
        values = values[0]   # one run of (steps, m), its errors naming values[k]
    values = encoders.check_intensities(values, name=f"{values_path}: values" if values_path else "values")
    if not on_chip and trials * steps * m > MAX_FILE_VALUES:
        raise click.BadParameter(f"{trials} x {steps} steps x {m} inputs is {trials * steps * m:,} values, more "
                                 f"than a stimulus file holds (MAX_FILE_VALUES = {MAX_FILE_VALUES:,})",
                                 param_hint="--steps")
    if not latency and dt is None:
        raise click.BadParameter(f"{chosen[0]} is a rate in Hz: give the time step (--dt 1ms)", param_hint="--dt")
    batch = trials > 1
    if on_chip:
        rates = encoders.generator_rates(values * poisson, dt)
        first = 1 if seed is None else seed
        seeds = encoders.trial_seeds(first, trials, steps, m) if batch else first
        stim = Stimulus(rates=rates, seed=seeds, steps=steps)
    else:
        if latency:
            spikes = encoders.latency(values, steps)
        elif poisson is not None:
            spikes = encoders.poisson(values * poisson, steps, dt, seed=0 if seed is None else seed)
        else:
            spikes = encoders.regular(values * regular, steps, dt)
        stim = Stimulus(spikes=spikes)
    stim.save(output, inputs=(values_path,))
    layout = f"{_stimulus_text(stim)}, {m} inputs"
    if on_chip:
        mean = float(stim.rates.mean()) / encoders.RATE_ONE
        seeds = (f"seeds {int(stim.seed[0])}, {int(stim.seed[1])}, ... (one per trial)" if batch
                 else f"seed {stim.seed}")
        click.echo(f"{layout}: generator rates {int(stim.rates.min())}..{int(stim.rates.max())} of 65536 "
                   f"({mean:.4f} spikes per input per step expected), {seeds}, no host spikes; wrote {output}")
    else:
        rate = stim.spikes.mean() if stim.spikes.size else 0.0
        click.echo(f"{layout}: {int(stim.spikes.sum())} spikes ({rate:.4f} per input per step); wrote {output}")


def _file_kind(path):
    """"network", "recording" or "stimulus", from the names of a file's arrays (their data unread)."""
    from .files import read_npz_headers
    keys = set(read_npz_headers(path, "network, recording or stimulus"))
    if "threshold" in keys:
        return "network"
    if "weights" in keys and keys & {"spikes", "counts"}:
        return "recording"
    if keys & {"spikes", "rates"}:
        return "stimulus"
    return "network"


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
def info(file):
    """Summarise a network, recording or stimulus file.

    A network: sizes, widths, parameter ranges, plastic synapses, memory. A
    recording: steps (and trials), spikes and rates, the inputs, the probes,
    snapshots and weights it holds. A stimulus: steps, trials, inputs, the
    host's spikes, the generator's rates and seed.

    \b
    Examples:
      neurofabric info net.npz     # also prints the quantisation report of an imported network
      neurofabric info rec.npz     # what a run recorded
      neurofabric info stim.npz    # what a run will apply
    """
    kind = _file_kind(file)
    if kind == "recording":
        _info_recording(file)
    elif kind == "stimulus":
        _info_stimulus(file)
    else:
        _info_network(file)


def _info_stimulus(path):
    from .encoders import RATE_ONE
    stim = Stimulus.load(path)
    click.echo(f"stimulus {path}")
    click.echo(f"  {_stimulus_text(stim)} of m = {stim.m} inputs")
    if stim.spikes is not None:
        spikes = stim.spikes
        rate = spikes.mean() if spikes.size else 0.0
        click.echo(f"  host spikes: {int(spikes.sum())} ({rate:.4f} per input per step)")
    else:
        click.echo("  host spikes: none (the generator makes every input)")
    if stim.rates is not None:
        rates = stim.rates
        per_trial = " (per trial)" if rates.ndim == 2 else ""
        click.echo(f"  generator rates{per_trial}: {int(rates.min())}..{int(rates.max())} of 65536, "
                   f"{float(rates.mean()) / RATE_ONE:.4f} spikes per input per step expected, "
                   f"{int((rates > 0).any(axis=0).sum()) if rates.ndim == 2 else int((rates > 0).sum())} "
                   f"of {stim.m} inputs generated")
    else:
        click.echo("  generator rates: none (all 0: the generator makes no input)")
    if stim.seed is None:
        click.echo("  seed: 1 (none given)")
    elif np.ndim(stim.seed):
        seeds = stim.seed
        click.echo(f"  seeds: one per trial, {', '.join(str(int(x)) for x in seeds[:3])}"
                   + (", ..." if len(seeds) > 3 else ""))
    else:
        click.echo(f"  seed: {stim.seed}")


def _info_network(path):
    net = load_network(path)
    facts = net.summary()
    click.echo(f"network {path}")
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
    click.echo(f"  core model {CORE_MODEL_VERSION}: decays lose decay/4096 per step (0: none, 4096: all)")
    for name in ("threshold", "v_reset", "bias", "decay_mem", "decay_syn", "refractory", "reset_mode"):
        arr = getattr(net, name)
        click.echo(f"  {name}: {int(arr.min())}..{int(arr.max())}")
    if net.learn:
        click.echo(f"  learning on: a_plus {net.a_plus}, a_minus {net.a_minus}, shift {net.stdp_shift}, "
                   f"decay_pre {net.decay_pre}, decay_post {net.decay_post}, inc_pre {net.inc_pre}, "
                   f"inc_post {net.inc_post}, trace mode {net.trace_mode}, weights kept in {net.w_min}..{net.w_max}")
    else:
        click.echo("  learning off")
    click.echo(f"  memory: weights {facts['weight_memory_bits']} bits "
               f"({facts['weight_memory_bits'] / 8192:.1f} KiB), accumulator {facts['accumulator_bits']} bits")
    if "quantisation_report" in net.extras:
        from .units import QuantisationReport
        for line in QuantisationReport.from_json(str(net.extras["quantisation_report"])).lines():
            click.echo(f"  {line}")


def _info_recording(path):
    from .files import load_recording
    rec = load_recording(path)
    steps, n = rec.steps, rec.weights.shape[1]
    m = rec.weights.shape[0] - n
    ids = rec.recorded_neurons
    click.echo(f"recording {path}")
    runs = f"{rec.trials} trials of {steps} steps" if rec.trials is not None else f"{steps} steps"
    click.echo(f"  {runs} of n = {n} neurons, m = {m} inputs")
    if rec.neurons is not None:
        from .plot import ranges_text
        click.echo(f"  recorded neurons: {ranges_text(list(ids))} ({ids.size} of {n})")
    per_neuron = rec.counts if rec.spikes is None else rec.spikes.sum(axis=-2)   # (c,) or (trials, c)
    counts = per_neuron.reshape(-1, ids.size).sum(axis=0)
    cells = ids.size * steps * (rec.trials or 1)
    rate = counts.sum() / cells if cells else 0.0
    busiest = int(np.argmax(counts)) if ids.size else 0
    kind = "spike counts only" if rec.spikes is None else "spikes"
    click.echo(f"  {kind}: {int(counts.sum())} ({rate:.4f} per neuron per step); most from neuron "
               f"{int(ids[busiest]) if ids.size else 0} ({int(counts[busiest]) if ids.size else 0}), "
               f"{int((counts == 0).sum())} of {ids.size} {'neurons' if rec.neurons is None else 'recorded neurons'} "
               "silent")
    if rec.trials is not None:
        per_trial = per_neuron.reshape(rec.trials, -1).sum(axis=1)
        click.echo(f"  spikes per trial: {int(per_trial.min())}..{int(per_trial.max())}, mean {per_trial.mean():.1f}")
    for key, what in (("input_spikes", "host input spikes"), ("inputs", "inputs U (host and generated)")):
        arr = getattr(rec, key)
        if arr is not None:
            click.echo(f"  {what}: {int(arr.sum())} ({arr.mean() if arr.size else 0.0:.4f} per input per step)")
    probes = [f"{key} {int(getattr(rec, key).min())}..{int(getattr(rec, key).max())}" if getattr(rec, key).size
              else key for key in ("v", "i") if getattr(rec, key) is not None]
    click.echo(f"  probes: {', '.join(probes)}" if probes else "  probes: none (run with --record v,i)")
    snaps = rec.weight_snapshots
    if snaps is not None and len(snaps):
        where = ""
        if rec.snapshot_steps is not None and len(rec.snapshot_steps):
            where = f", after steps {int(rec.snapshot_steps[0])}..{int(rec.snapshot_steps[-1])}"
        changed = int((snaps != snaps[:1]).any(axis=0).sum() + 0)
        click.echo(f"  weight snapshots: {len(snaps)}{where}; {changed} synapses changed between them")
    elif rec.trials is None:
        click.echo("  weight snapshots: none (run with --snapshot-every K)")
    w = rec.weights
    after = "the last trial" if rec.trials is not None else "the run"
    click.echo(f"  weights after {after}: {int(w.min())}..{int(w.max())}, mean {w.mean():.2f}, "
               f"{int((w != 0).sum())} non-zero of {w.size}")
    if rec.extras:
        click.echo(f"  other keys: {', '.join(sorted(rec.extras))}")


@cli.command("convert")
@click.argument("old", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Core model 2 network file to write.")
@click.pass_context
def convert_command(ctx, old, output):
    """Convert a core model 1 network file (decay shifts k_*) to core model 2 (decay factors decay_*).

    Each shift k becomes the factor d = 4096 >> k (k = 31, no decay: d = 0);
    every other field and extra is kept, and the file gets core_model = 2.
    The converted network's results are close to, not identical with, core
    model 1's: core model 2 rounds a decay toward zero (core model 1 held
    small positive values up forever), and shifts of 13 to 30, whose leak is
    below the smallest factor of 1/4096, become no decay.

    \b
    Example:
      neurofabric convert old.npz -o net.npz
    """
    from .files import convert_core_model_1
    check_output_path(output, inputs=(old,), what="network")
    net, conversions = convert_core_model_1(old)
    save_network(net, output, inputs=(old,))
    if not ctx.obj["quiet"]:
        for conversion in conversions:
            click.echo(conversion.describe())
        click.echo(f"the results are close to, not identical with, core model 1's (d = 4096 >> k; core model 2 "
                   f"rounds each decay toward zero); wrote {output}: {net.n} neurons, {net.m} inputs, core model "
                   f"{CORE_MODEL_VERSION}")


@cli.command("import-nir")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--dt", type=Duration(), default=None,
              help="The time step (1ms, 0.1ms, 0.001); default: the one the graph records (neurofabric's "
                   "exports do; snnTorch's assume 0.1ms and record none). A different one wins, with a warning.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Network file to write.")
@click.option("--tolerance", type=FiniteFloat(minimum=0), default=0.1, show_default=True,
              help="Largest relative error allowed for a parameter once quantised to the core's integers.")
@click.option("--state-bits", type=int, default=None, help="S (default: the graph's, else 16).")
@click.option("--weight-bits", type=int, default=None, help="W (default: the graph's, else 8).")
@click.option("--trace-bits", type=int, default=None, help="T (default: the graph's, else 8).")
@click.pass_context
def import_nir_command(ctx, graph, dt, output, tolerance, state_bits, weight_bits, trace_bits):
    """Import a NIR graph (Input, Output, Affine, Linear, LIF, CubaLIF, IF) as a network.

    \b
    Example (a graph exported by snnTorch, which assumes 0.1 ms):
      neurofabric import-nir model.nir --dt 0.1ms -o net.npz
    """
    from .nir_io import import_nir
    from neurofabric.contract.model import WIDTH_LIMITS, Widths
    given = {"state_bits": state_bits, "weight_bits": weight_bits, "trace_bits": trace_bits}
    for name, value in given.items():
        lo, hi = WIDTH_LIMITS[name]
        if value is not None and not lo <= value <= hi:
            raise click.BadParameter(f"{value} is out of range: allowed {lo}..{hi}",
                                     param_hint=f"--{name.replace('_', '-')}")
    # None: the widths the graph records (neurofabric's exports do), else the defaults.
    widths = None if all(v is None for v in given.values()) else Widths(
        **{name: getattr(Widths(), name) if value is None else value for name, value in given.items()})
    check_output_path(output, inputs=(graph,), what="network")
    net, report = import_nir(graph, dt, widths=widths, tolerance=tolerance)
    save_network(net, output, inputs=(graph,))
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
def export_nir_command(network, output, dt, recording):
    """Export a network (optionally with learned weights) as a NIR graph.

    \b
    Example:
      neurofabric run net.npz --input stim.npz --device golden -o rec.npz
      neurofabric export-nir net.npz --weights rec.npz -o learned.nir
    """
    from .files import load_recording
    from .nir_io import export_nir, write_nir
    inputs = (network, recording)
    check_output_path(output, inputs=inputs, what="NIR graph")
    net = load_network(network)
    if recording is not None:
        rec = load_recording(recording)
        if rec.weights.shape != net.weights.shape:
            raise NetworkError(f"{recording}: weights of shape {rec.weights.shape} do not fit the network "
                               f"{net.weights.shape}")
        net = net.copy()
        net.weights = rec.weights
        net.validate()
    if dt is None:  # the loader has checked a dt it found
        dt = float(net.extras["dt"]) if "dt" in net.extras else 1e-3
    try:
        write_nir(export_nir(net, dt=dt), output, inputs=inputs)
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
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the demo's files [default: out/demo, made with its parents].")
@click.option("--device", default="rtl", show_default=True, callback=_device_option,
              help="Where to run: rtl (the simulated board), golden, serial:PATH[@BAUD].")
@click.option("--seed", type=_SEED, default=1, show_default=True)
@click.pass_context
def demo(ctx, out_dir, device, seed):
    """Learn a repeated spike pattern with on-chip STDP and report what changed.

    \b
    Examples:
      neurofabric demo                 # the pattern-learning demo
      neurofabric demo digits          # 8x8 handwritten digits, 500 held-out samples
    """
    if ctx.invoked_subcommand is not None:
        return
    from .demo import DEFAULT_OUT_DIR, OUTPUT_FILES, pattern_demo
    # Checked here too, before the demo's first step: the folder, and every file it will hold.
    folder = check_output_folder(out_dir or DEFAULT_OUT_DIR, OUTPUT_FILES, what="demo", parents=out_dir is None)
    summary = pattern_demo(device=device, out_dir=folder, seed=seed,
                           progress=None if ctx.obj["quiet"] else click.echo)
    for line in summary:
        click.echo(line)
    import json
    if json.loads((folder / "summary.json").read_text()).get("bit_exact_with_golden") is False:
        raise DeviceError(f"{device} disagreed with the golden model during learning: run "
                          f"`neurofabric diff` on {folder / 'training.npz'}'s network to find where")


@demo.command("digits")
@click.option("--learning", type=click.Choice(["off-chip", "on-chip"]), default="off-chip", show_default=True,
              help="off-chip: a softmax trained in floating point, quantised; on-chip: the core's own STDP "
                   "learns the weights from 0, supervised by teacher spikes.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the network and the results [default: out/digits, "
                   "out/digits-on-chip with --learning on-chip].")
@click.option("--device", default="golden", show_default=True, callback=_device_option,
              help="Also run a subset of the test set here and check it against the golden model.")
@click.option("--subset", type=_count(1), default=50, show_default=True,
              help="Test samples (on-chip: and training samples learned) to run on --device when it is "
                   "not golden.")
@click.pass_context
def demo_digits(ctx, learning, out_dir, device, subset):
    """Classify scikit-learn's 8x8 digits with a spiking network trained off-chip or learned on-chip.

    \b
    Examples:
      neurofabric demo digits                          # 500 held-out samples on the golden model
      neurofabric demo digits --device rtl --subset 50 # and 50 of them on the simulated board
      neurofabric demo digits --learning on-chip       # weights learned by on-chip STDP instead
    """
    from . import digits
    quiet = ctx.obj["quiet"]
    if learning == "on-chip":
        from .digits_onchip import OUTPUT_FILES, onchip_digits_demo, save_onchip_results, summary_lines
        folder = check_output_folder(out_dir or "out/digits-on-chip", OUTPUT_FILES, what="digits demo",
                                     parents=out_dir is None)
        result = onchip_digits_demo(device=device, subset=subset, show_progress=not quiet)
        paths = save_onchip_results(result, folder)
        for line in summary_lines(result):
            click.echo(line)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}")
        if "device_agrees" in result and not result["device_agrees"]:
            raise DeviceError(f"{device} disagrees with the golden model while learning or testing the digits")
        return
    out = check_output_folder(out_dir or "out/digits", digits.OUTPUT_FILES, what="digits demo",
                              parents=out_dir is None)
    result = digits.digits_demo(device=device, subset=subset, progress=Progress("samples", enabled=not quiet))
    written = digits.save_digits_results(result, out)
    report = result["report"]
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
    click.echo(f"wrote {', '.join(str(path) for path in written)}")


def _recorded_only(rec, neurons, path):
    """The neurons to draw from a recording of some neurons: those asked for, all of them recorded."""
    recorded = [int(j) for j in rec.neurons]
    if neurons is None:
        return recorded
    missing = sorted(set(neurons) - set(recorded))
    if missing:
        from .plot import ranges_text
        raise click.BadParameter(f"{path} recorded neurons {ranges_text(recorded)} only, not "
                                 f"{ranges_text(missing)}", param_hint="--neurons")
    return neurons


def _neurons_option(ctx, param, value):
    from .plot import parse_neurons
    if value is None:
        return None
    try:
        return parse_neurons(value)
    except NeurofabricError as exc:
        raise click.BadParameter(str(exc)) from None


def _window_option(ctx, param, value):
    from .plot import parse_window
    if value is None:
        return None
    try:
        return parse_window(value)
    except NeurofabricError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Picture to write (.png, .svg, .pdf); default: RECORDING-KIND.png.")
@click.option("--kind", type=click.Choice(["raster", "traces", "weights", "evolution"]), default="raster",
              show_default=True, help="What to draw.")
@click.option("--neurons", default=None, callback=_neurons_option,
              help="Neurons to draw, for example 0-9,20 [default: all; traces: the first 4; evolution: the "
                   "first 8 with plastic synapses].")
@click.option("--window", default=None, callback=_window_option,
              help="Steps to draw, START:STOP (for example 1000:2000; either side may be left out).")
@click.option("--network", type=click.Path(dir_okay=False), default=None,
              help="The network that ran: --kind evolution then follows its plastic synapses (without it, "
                   "the synapses whose weight changed between snapshots).")
@click.option("--ascii", "as_text", is_flag=True, help="Print the raster as text instead (no display needed).")
@click.option("--width", type=click.IntRange(min=10, max=10_000), default=100, show_default=True,
              help="Columns of the --ascii raster.")
@click.option("--trial", type=_count(0), default=None,
              help="The trial to draw, of a recording of trials [default: 0, the first].")
def plot(recording, output, kind, neurons, window, network, as_text, width, trial):
    """Draw a recording: spike raster, v/i traces, weights, or weight evolution.

    The raster's inputs are the set U of each step (host and generated) when
    the run recorded them (--record inputs), else the host's input spikes. A
    recording of trials is drawn one trial at a time (--trial K).

    \b
    Examples:
      neurofabric plot rec.npz                       # rec-raster.png
      neurofabric plot rec.npz --kind traces --neurons 0,1 -o traces.png
      neurofabric plot rec.npz --neurons 0-9,20 --window 1000:2000
      neurofabric plot rec.npz --kind evolution --network net.npz   # needs run --snapshot-every K
      neurofabric plot trials.npz --trial 3          # the fourth trial of a batch
      neurofabric plot rec.npz --ascii               # in the terminal
    """
    from . import plot as plots
    from .files import load_recording
    if network is not None and kind != "evolution":
        raise click.BadParameter("--network is for --kind evolution (its plastic synapses)", param_hint="--network")
    if kind == "weights" and window is not None:
        raise click.BadParameter("--kind weights draws the weights after the run; a time window does not apply "
                                 "(--kind evolution follows them over time)", param_hint="--window")
    name = Path(recording).stem
    if not as_text:
        output = output or str(Path(recording).with_name(f"{name}-{kind}.png"))
        plots.picture_format(output)
        check_output_path(output, inputs=(recording, network), what="plot file")
    rec = load_recording(recording)
    if rec.spikes is None and kind != "weights":
        raise click.BadParameter(f"{recording} holds spike counts only (run --counts), no spikes over time; "
                                 "`neurofabric info` shows its counts, --kind weights its weights",
                                 param_hint="--kind")
    if rec.neurons is not None:
        neurons = _recorded_only(rec, neurons, recording)
        rec = plots.expand_neurons(rec)
    if rec.trials is None and trial is not None:
        raise click.BadParameter(f"{recording} is a recording of one run, not of trials", param_hint="--trial")
    title = name
    if rec.trials is not None:
        if kind == "evolution":
            raise click.BadParameter(f"{recording} is a recording of {rec.trials} trials, which keeps no weight "
                                     "snapshots", param_hint="--kind")
        if kind == "weights" and trial is not None:
            raise click.BadParameter("--kind weights draws the weights after the last trial; --trial does not "
                                     "apply", param_hint="--trial")
        chosen = 0 if trial is None else trial
        if chosen >= rec.trials:
            raise click.BadParameter(f"{chosen} is out of range: {recording} has trials 0..{rec.trials - 1}",
                                     param_hint="--trial")
        title = (f"{name} (the last of {rec.trials} trials)" if kind == "weights"
                 else f"{name}, trial {chosen} of {rec.trials}")
        rec = plots.select_trial(rec, chosen)
    if as_text:
        click.echo(plots.ascii_raster(rec.spikes, width=width, rows=neurons, window=window))
        return
    if kind == "raster":
        fig = plots.raster(rec, title=f"spikes of {title}", window=window, neurons=neurons)
    elif kind == "traces":
        fig = plots.traces(rec, neurons, title=f"membrane and current of {title}", window=window)
    elif kind == "weights":
        n = rec.spikes.shape[1]
        fig = plots.weights(rec.weights, m=rec.weights.shape[0] - n, title=f"weights after {title}",
                            neurons=neurons)
    else:
        plastic = None
        if network is not None:
            net = load_network(network)
            if net.weights.shape != rec.weights.shape:
                raise NetworkError(f"{network}: weights of shape {net.weights.shape} are not the recording's "
                                   f"{rec.weights.shape}: not the network that ran")
            plastic = net.plastic_mask()
        fig = plots.evolution(rec, title=f"weight evolution in {title}", neurons=neurons, plastic=plastic,
                              window=window)
    plots.save(fig, output, inputs=(recording, network))
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--input", "stimulus", required=True, type=click.Path(dir_okay=False),
              help="Stimulus file (spikes, rates and seed, trials: as for run).")
@click.option("--device", "devices_", multiple=True, required=True, callback=_device_option,
              help="Give it twice: the two devices to compare (for example golden and rtl).")
@click.option("--steps", type=_count(0), default=None, help="Steps to run.")
@click.option("--snapshot-every", type=_count(0), default=0,
              help="Compare the weights every K steps too (1: every step).")
@click.pass_context
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
    probes = ("v", "i")
    stim = _load_run_stimulus(stimulus, net, steps, probes, snapshot_every, runs=2)
    recs = []
    for name in devices_:
        with open_device(name) as dev:
            dev.load(net)
            what = f"trials on {name}" if stim.trials is not None else f"run on {name}"
            recs.append(stim.run(dev, record=probes, snapshot_every=snapshot_every,
                                 progress=Progress(what, enabled=not ctx.obj["quiet"])))
    a, b = devices_
    if stim.trials is None:
        found, where = first_divergence(*recs), ""
    else:
        from .plot import select_trial
        found = None
        for t in range(stim.trials):
            ra, rb = select_trial(recs[0], t), select_trial(recs[1], t)
            if t < stim.trials - 1:
                rb.weights = ra.weights   # only the weights after the last trial are recorded
            found, where = first_divergence(ra, rb), f"trial {t}: "
            if found is not None:
                break
    if found is None:
        click.echo(f"{a} and {b} agree: {_stimulus_text(stim)}, spikes, v, i and weights identical")
        return
    click.echo(where + found.describe(a, b))
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


def _check_board(board):
    """Refuse sizes, a clock or a baud rate the core, the link, the UART or the PLL cannot
    take, before a build of minutes finds out."""
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.hdl.link import check_link_sizes
    from neurofabric.hdl.uart import uart_divisor
    try:
        CoreConfig(n=board.neurons, m=board.inputs, lanes=board.lanes, weight_memory=board.weight_memory)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    check_link_sizes(board.neurons, board.inputs)
    uart_divisor(board.clk_hz, board.baud)
    if board.clk_hz != board.osc_hz:
        from ..boards.pll import ecp5_pll_params, ice40_pll_params
        pll = {"ice40": ice40_pll_params, "ecp5": ecp5_pll_params}.get(board.family)
        if pll is not None:
            pll(board.osc_hz, board.clk_hz)


@cli.command("build")
@click.option("--board", "board_name", required=True, help="Board name (see `neurofabric boards`).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Build folder (default: build/BOARD).")
@click.option("--neurons", type=_count(1), default=None, help="Neurons n (default: the board's).")
@click.option("--inputs", type=_count(0), default=None, help="Inputs m (default: the board's).")
@click.option("--lanes", type=_count(1), default=None, help="Weights per memory word.")
@click.option("--pot-banks", type=_count(1), default=None,
              help="Weight banks for potentiation (CoreConfig.pot_banks; default: the board's).")
@click.option("--spike-counters/--no-spike-counters", default=None,
              help="A 16-bit spike counter per neuron (one more block RAM), so that counts-only runs send no "
                   "records (default: the board's).")
@click.option("--record-filter/--no-record-filter", default=None,
              help="Drop the spikes a run does not record in the link's gateware, so that its controller only "
                   "handles recorded ones (a memory of n bits; default: the board's).")
@click.option("--step-blocks/--no-step-blocks", default=None,
              help="Let the link send several steps' records in one frame (RUN flag BLOCKS; a program ROM of "
                   "2,048 words; default: the board's).")
@click.option("--baud", type=_count(1), default=None, help="UART baud rate.")
@click.option("--clk-hz", type=_count(1), default=None, help="Core clock (a PLL makes it).")
@click.option("--prepare-only", is_flag=True, help="Xilinx boards: write the Vivado build folder only.")
@click.pass_context
def build_command(ctx, board_name, out_dir, neurons, inputs, lanes, pot_banks, spike_counters, record_filter,
                  step_blocks, baud, clk_hz, prepare_only):
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
                                             clk_hz=clk_hz, pot_banks=pot_banks, spike_counters=spike_counters,
                                             record_filter=record_filter, step_blocks=step_blocks)
    if pot_banks is not None and board.pot_banks != pot_banks:
        raise BuildError(f"--pot-banks {pot_banks}: a core of {board.neurons} neurons in {board.lanes} lanes allows "
                         f"{board.pot_banks} (the banks must divide its word columns, a power of two)")
    out_dir = out_dir or str(Path("build") / board.name)
    say = (lambda *a: None) if ctx.obj["quiet"] else click.echo
    if board.needs_vivado:
        if not prepare_only:
            raise BuildError(f"{board.description} bitstreams need Vivado, which the set-up does not install; "
                             "run with --prepare-only to write the Vivado build folder, then build it there")
        _check_board(board)
        check_output_folder(out_dir, ("report.json",), what="build", parents=True)
        report = prepare_vivado(board, out_dir)
        say(f"wrote the Vivado build folder {out_dir}; in it, with Vivado on PATH: sh build_neurofabric.sh")
        return
    if prepare_only:
        raise BuildError(f"--prepare-only is for the Vivado boards; {board.name} builds with the open tools")
    _check_board(board)
    bitstream = "neurofabric.bin" if board.family == "ice40" else "neurofabric.bit"
    check_output_folder(out_dir, ("report.json", bitstream), what="build", parents=True)
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


def _check_link_path(link_path):
    """Refuse a --link that would replace something other than an earlier link, or cannot be made."""
    path = Path(link_path)
    if path.is_symlink():
        return  # the link of an earlier sim-board: replaced
    if os.path.lexists(path):
        raise NetworkError(f"--link {link_path!r} exists and is not a symbolic link: refusing to replace it; "
                           "name a new path")
    check_output_path(path, what="--link")


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
    import signal
    import threading

    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.hdl.link import check_link_sizes
    from neurofabric.sim.board import BoardConfig, SimulatedBoard
    from .errors import BuildError
    try:
        core = CoreConfig(n=neurons, m=inputs, S=state_bits, W=weight_bits, T=trace_bits, lanes=lanes)
        check_link_sizes(neurons, inputs)
    except (ValueError, BuildError) as exc:
        raise click.BadParameter(str(exc)) from None
    if link_path:
        _check_link_path(link_path)
    quiet = ctx.obj["quiet"]
    if not quiet:
        click.echo(f"simulated board {core.key()}: building or reusing the Verilator model ...", err=True)
    board = SimulatedBoard(BoardConfig(core), trace=trace)
    board.start()
    try:
        if link_path:
            try:
                if os.path.islink(link_path):
                    os.unlink(link_path)
                os.symlink(board.path, link_path)
            except OSError as exc:
                raise NetworkError(f"--link {link_path!r} cannot be made: {exc.strerror or exc}") from None
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
@click.option("--device", required=True, callback=_device_option,
              help="rtl (the simulated board) or serial:PATH[@BAUD].")
@click.option("--seed", type=_SEED, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1, max=100_000), default=200, show_default=True)
def selftest_command(device, seed, steps):
    """Check a board: handshake, echo of every frame length, a network against the golden model, weights.

    \b
    Examples:
      neurofabric selftest --device rtl
      neurofabric selftest --device serial:/dev/ttyUSB1@3000000
    """
    from .selftest import CHECKS, selftest
    checks = selftest(device, seed=seed, steps=steps, say=click.echo)
    failed = [c for c in checks if not c.passed]
    if failed or len(checks) < len(CHECKS):
        click.echo(f"selftest FAILED: {len(failed)} of {len(checks)} checks failed"
                   + ("" if len(checks) == len(CHECKS) else " (later checks were not run)"))
        sys.exit(DeviceError.exit_code)
    click.echo(f"selftest passed: {len(checks)} checks on {device}")


@cli.command("bench")
@click.option("--quick", is_flag=True,
              help="Short sweeps, small board builds (or cached ones), a smaller Brian2 comparison: about ten "
                   "minutes on two cores, every figure's key still there.")
@click.option("--no-builds", is_flag=True,
              help="Build no bitstream: each board's build is taken from the cache when one of these sources is "
                   "there, else shown as not built (docs/boards.md has the measured builds).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the results as JSON.")
@click.option("-o", "--docs", "docs_path", type=click.Path(dir_okay=False), default=None,
              help="Write the page here (docs/benchmarks.md is the full run's); its pictures go to the folder of "
                   "the same name next to it. Without -o no page is written.")
@click.pass_context
def bench_command(ctx, quick, no_builds, json_path, docs_path):
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
      neurofabric bench --no-builds -o out/bench.md    # everything but the bitstreams
    """
    import dataclasses

    from .bench import BenchPlan, run_bench
    for path, what in ((json_path, "results file"), (docs_path, "page")):
        if path is not None:
            check_output_path(path, what=what)
    plan = BenchPlan.quick() if quick else BenchPlan.full()
    if no_builds:
        plan = dataclasses.replace(plan, board_builds="cached")
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
