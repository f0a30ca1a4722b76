"""Every command, given bad arguments, refuses with one line and an exit code, never a traceback.

The commands are the click group's own, so a new command is covered as soon
as it exists; the bad values follow from each parameter's type and name:
input files that are missing, folders, garbage, empty, FIFOs or device nodes;
outputs that are FIFOs, device nodes, folders, in a missing folder, under a
regular file, or one of the inputs; numbers that are NaN, infinite, negative
or huge; unknown devices, boards, probes, neuron lists and windows. Work that
takes minutes (Verilator and bitstream builds, the benchmark, the demos) is
replaced by a tripwire: bad input must be refused before it starts, so an
input that reaches it fails the test as an internal error.
"""

import os
import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner

import neurofabric as nf
from neurofabric.host.cli import INTERNAL_ERROR_EXIT, Duration, FiniteFloat, cli

#: Parameters that name something a command writes.
OUTPUTS = {"output", "out_dir", "json_path", "docs_path", "link_path"}

#: A good value for each required parameter, so that one bad value at a time is tested.
#: ("{name}" is a file of the `files` fixture.)
GOOD = {
    "network": "{net}",
    "file": "{net}",
    "stimulus": "{stim}",
    "recording": "{rec}",
    "graph": "{graph}",
    "dt": "1ms",
    "board_name": "icebreaker",
    "device": "rtl",
    "devices_": ("golden", "golden"),
    "steps": "10",
    "old": "{old}",
}
#: The output a command writes when one is required (by the command's name).
GOOD_OUTPUT = {"run": "{tmp}/new.npz", "import-nir": "{tmp}/new.npz", "export-nir": "{tmp}/new.nir",
               "stimulus": "{tmp}/new.npz", "convert": "{tmp}/new.npz"}

#: Bad values of the string parameters, by name (a new string parameter needs an entry).
BAD_STRINGS = {
    "device": ["nope", "serial:", "serial:{tmp}/no-such-tty", "serial:/dev/null@abc", "serial:/dev/null@0"],
    "devices_": ["nope", "serial:{tmp}/no-such-tty"],
    "board_name": ["nope", ""],
    "record": ["w", "v,x", "inputs,u"],
    "neurons": ["a-b", "5-2", "-3", "99999", ","],
    "window": ["2000:1000", "a:b", "5", "-5:3", "0:99999"],
    "poisson": ["nan", "inf", "-1Hz", "ten", "20MHz", "1e400Hz"],
    "regular": ["nan", "-inf", "-20", "Hz", "2kHz"],
}
#: Bad values only for some commands: selftest needs a link.
BAD_FOR = {("selftest", "device"): ["golden", "rtl-direct"]}

#: Counts also refuse the huge; a huge time step or tolerance is only unusual.
BAD_INTEGERS = ["nan", "inf", "-1", "1e400", "2.5", str(10 ** 30)]
BAD_REALS = ["nan", "inf", "-inf", "-1", "1e400", "ten"]
BAD_INPUTS = ["{tmp}/missing.npz", "{folder}", "{garbage}", "{empty}", "{fifo}", "/dev/null", "{plain}/x.npz"]
#: Bad files of the right format for some inputs, by parameter name: a core model 1 network, a core model 2
#: network without its core_model key, stimuli with a rate or a seed out of range or trials that disagree.
BAD_INPUTS_FOR = {
    "network": ["{old}", "{keyless}"],
    "file": ["{old}", "{keyless}", "{badrates}", "{badseed}"],
    "stimulus": ["{old}", "{badrates}", "{badseed}", "{badtrials}"],
    "old": ["{net}", "{keyless}", "{stim}"],
}


def commands(group=cli, path=()):
    """(path, command) of every command, subcommands of groups included."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def input_files(command, values):
    """The files among `values` that `command` reads."""
    return [values[p.name] for p in command.params
            if isinstance(p.type, click.Path) and p.name not in OUTPUTS and p.name in values]


def bad_values(path, command, param, good):
    """The bad values of one parameter, from its type and its name (`good`: the other arguments)."""
    kind = param.type
    if isinstance(kind, click.Path):
        if param.name in OUTPUTS:
            values = ["{fifo}", "/dev/null", "{plain}/sub"]
            if not kind.file_okay:      # a folder: a file where it should be is bad, a missing one is made
                return values + ["{plain}"]
            # and an output that is one of the command's own inputs
            return values + ["{tmp}/missing/out.png", "{folder}"] + input_files(command, good)
        return BAD_INPUTS + BAD_INPUTS_FOR.get(param.name, [])
    if isinstance(kind, click.Choice):
        return ["nope"]
    if getattr(param, "is_flag", False) or isinstance(kind, click.types.BoolParamType):
        return []
    if isinstance(kind, click.types.IntParamType):
        return BAD_INTEGERS
    if isinstance(kind, (click.types.FloatParamType, Duration, FiniteFloat)):
        return BAD_REALS
    if param.name in BAD_STRINGS:
        return BAD_STRINGS[param.name] + BAD_FOR.get((path[-1], param.name), [])
    raise AssertionError(f"no bad values known for {param.name} of {' '.join(path)}: add some to this test")


def baseline(path, command):
    """Good values of every required parameter of `command`."""
    values = {}
    for param in command.params:
        if not param.required:
            continue
        if param.name == "output":
            values["output"] = GOOD_OUTPUT[path[-1]]
        else:
            assert param.name in GOOD, (f"no good value for the required {param.name} of {' '.join(path)}: "
                                        "add one to this test")
            values[param.name] = GOOD[param.name]
    return values


def render(command, values):
    """Command-line arguments for `values` (arguments in order, options as --name=value)."""
    args = []
    for param in command.params:
        if param.name not in values:
            continue
        value = values[param.name]
        if isinstance(param, click.Argument):
            args.append(value)
        else:
            flag = max(param.opts, key=len)
            for one in value if isinstance(value, tuple) else (value,):
                args.append(f"{flag}={one}")
    return args


def cases():
    for path, command in commands():
        yield pytest.param(path, ["--no-such-option"], id=f"{' '.join(path)} --no-such-option")
        good = baseline(path, command)
        for param in command.params:
            if param.name == "help":
                continue
            for bad in bad_values(path, command, param, good):
                values = dict(good)
                if isinstance(good.get(param.name), tuple):
                    values[param.name] = (*good[param.name][:-1], bad)
                else:
                    values[param.name] = bad
                args = render(command, values)
                yield pytest.param(path, args, id=f"{' '.join(path)} {param.name}={bad}")


class Tripwire:
    """Stands in for work that takes minutes: reaching it means bad input was not refused first."""

    def __init__(self, what):
        self.what = what

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"{self.what} started although the input was bad")


@pytest.fixture(autouse=True)
def tripwires(monkeypatch):
    import neurofabric.boards
    import neurofabric.host.bench
    import neurofabric.host.demo
    import neurofabric.host.digits
    import neurofabric.host.digits_onchip
    import neurofabric.sim.board
    import neurofabric.sim.rtl_device
    import neurofabric.sim.verilator
    for module, name in ((neurofabric.sim.board, "board_program"), (neurofabric.sim.verilator, "core_model"),
                         (neurofabric.sim.rtl_device, "core_model"), (neurofabric.boards, "build_bitstream"),
                         (neurofabric.boards, "prepare_vivado"), (neurofabric.host.bench, "run_bench"),
                         (neurofabric.host.demo, "pattern_demo"), (neurofabric.host.digits, "digits_demo"),
                         (neurofabric.host.digits_onchip, "onchip_digits_demo")):
        monkeypatch.setattr(module, name, Tripwire(f"{module.__name__}.{name}"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    net = nf.random_network(8, 5, seed=11, learn=1)
    nf.save_network(net, tmp / "net.npz")
    stim = np.random.default_rng(2).random((30, 5)) < 0.3
    nf.save_stimulus(stim, tmp / "stim.npz")
    nf.save_recording(nf.GoldenModel(net).run(stim, record=("v", "i"), snapshot_every=10), tmp / "rec.npz")
    from neurofabric.host.nir_io import export_nir, write_nir
    write_nir(export_nir(net, dt=1e-3), tmp / "graph.nir")
    old = {key: np.asarray(value) for key, value in net.to_arrays().items()}
    np.savez(tmp / "keyless.npz", **old)
    for shift in ("mem", "syn", "pre", "post"):
        old[f"k_{shift}"] = np.full(np.shape(old.pop(f"decay_{shift}")), 4)
    np.savez(tmp / "old.npz", **old)
    np.savez(tmp / "badrates.npz", rates=np.array([0, 1, 70000, 3, 4]), steps=np.array(10))
    np.savez(tmp / "badseed.npz", rates=np.ones(5, int), seed=np.array(0), steps=np.array(10))
    np.savez(tmp / "badtrials.npz", spikes=np.zeros((2, 10, 5), np.uint8), seed=np.array([1, 2, 3]))
    (tmp / "garbage.npz").write_bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp / "empty.npz").write_bytes(b"")
    (tmp / "plain").write_text("a regular file\n")
    (tmp / "folder").mkdir()
    os.mkfifo(tmp / "fifo")
    names = {"net": "net.npz", "stim": "stim.npz", "rec": "rec.npz", "graph": "graph.nir", "garbage": "garbage.npz",
             "empty": "empty.npz", "plain": "plain", "folder": "folder", "fifo": "fifo", "old": "old.npz",
             "keyless": "keyless.npz", "badrates": "badrates.npz", "badseed": "badseed.npz",
             "badtrials": "badtrials.npz"}
    return {"tmp": str(tmp), **{key: str(tmp / name) for key, name in names.items()}}


def fill(text, files):
    return text.format(**files)


def assert_refused_in_one_line(result, args):
    shown = f"neurofabric {' '.join(args)}\nexit {result.exit_code}\n{result.output}"
    assert result.exit_code not in (0, None), shown
    assert result.exit_code != INTERNAL_ERROR_EXIT, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 2:   # click's usage error: its usage lines, then one line of error
        assert [line for line in lines if line.startswith("Error:")] == [lines[-1]], shown
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), shown


@pytest.mark.parametrize("path, args", list(cases()))
def test_a_command_refuses_bad_input_in_one_line(files, path, args):
    args = [*path, *(fill(a, files) for a in args)]
    result = CliRunner().invoke(cli, args)
    assert_refused_in_one_line(result, args)


def test_every_command_is_enumerated_with_its_parameters():
    found = {" ".join(path) for path, _ in commands()}
    assert {"run", "info", "plot", "demo", "demo digits", "sim-board", "selftest", "bench", "build", "convert",
            "stimulus", "diff"} <= found
    ids = [case.id for case in cases()]
    for path in found:
        assert sum(i.startswith(f"{path} ") for i in ids) >= 1, path
    assert any(i.startswith("run output=") for i in ids) and any(i.startswith("plot window=") for i in ids)
    for case in ("run stimulus={badrates}", "run network={old}", "convert old={net}", "plot trial=-1",
                 "stimulus seed=nan", "run record=v,x"):
        assert case in ids, case


@pytest.mark.parametrize("args", [
    ["plot", "{rec}", "-o", "{tmp}/picture.xyz"],
    ["plot", "{rec}", "-o", "{tmp}/missing/picture.png"],
    ["sim-board", "--link", "{tmp}/missing/board"],
    ["sim-board", "--link", "{plain}"],
    ["demo", "-o", "{plain}/sub", "--device", "golden"],
    ["selftest", "--device", "rtl-direct"],
    ["run", "{net}", "--input", "{stim}", "-o", "{net}"],
    ["run", "{net}", "--input", "{stim}", "-o", "{fifo}"],
    ["run", "{old}", "--input", "{stim}", "-o", "{tmp}/from-old.npz"],
    ["run", "{net}", "--input", "{badrates}", "-o", "{tmp}/from-bad.npz"],
    ["convert", "{net}", "-o", "{tmp}/converted.npz"],
])
def test_the_real_command_refuses_in_one_line(files, args):
    """The console script itself (its logging set-up, its exit): one line on stderr, no traceback."""
    args = [fill(a, files) for a in args]
    proc = subprocess.run([sys.executable, "-m", "neurofabric", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode not in (0, INTERNAL_ERROR_EXIT), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert proc.stdout == ""


def test_an_unexpected_failure_is_one_internal_error_line_and_its_traceback_with_v(files, monkeypatch):
    import neurofabric.host.cli as cli_module

    def broken(path):
        raise ZeroDivisionError("division by zero in a loader")
    monkeypatch.setattr(cli_module, "load_network", broken)
    result = CliRunner().invoke(cli, ["info", files["net"]])
    assert result.exit_code == INTERNAL_ERROR_EXIT
    assert result.stderr == ("internal error: ZeroDivisionError: division by zero in a loader "
                             "(rerun with -v for the traceback)\n")
    verbose = CliRunner().invoke(cli, ["-v", "info", files["net"]])
    assert verbose.exit_code == INTERNAL_ERROR_EXIT
    assert verbose.stderr.startswith("Traceback (most recent call last):")
    assert "in broken" in verbose.stderr
    assert verbose.stderr.rstrip().endswith("internal error: ZeroDivisionError: division by zero in a loader")


def test_an_unexpected_failure_of_the_real_command_is_one_line(files):
    code = ("import neurofabric.host.cli as c\n"
            "def broken(path):\n    raise KeyError('group_kinds')\n"
            "c.load_network = broken\nc.main()\n")
    proc = subprocess.run([sys.executable, "-c", code, "info", files["net"]], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == INTERNAL_ERROR_EXIT
    assert proc.stderr == "internal error: KeyError: 'group_kinds' (rerun with -v for the traceback)\n"


def test_a_layer_error_of_several_lines_is_one_line_unless_v(files, monkeypatch):
    import neurofabric.host.cli as cli_module
    from neurofabric.host.errors import BuildError

    def failing(path):
        raise BuildError("Verilator build failed (log build.log):\nline one of the log\nline two")
    monkeypatch.setattr(cli_module, "load_network", failing)
    result = CliRunner().invoke(cli, ["info", files["net"]])
    assert result.exit_code == BuildError.exit_code
    assert result.stderr == "error: Verilator build failed (log build.log): (rerun with -v for the details)\n"
    verbose = CliRunner().invoke(cli, ["-v", "info", files["net"]])
    assert verbose.stderr.splitlines()[-2:] == ["line one of the log", "line two"]


def test_an_interrupt_is_one_line_and_exit_130(files, monkeypatch):
    import neurofabric.host.cli as cli_module

    def interrupted(path):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_module, "load_network", interrupted)
    result = CliRunner().invoke(cli, ["info", files["net"]])
    assert result.exit_code == 130 and result.stderr == "interrupted\n"


def test_a_huge_run_is_refused_before_the_stimulus_is_padded(files):
    result = CliRunner().invoke(cli, ["run", files["net"], "--input", files["stim"], "-o", f"{files['tmp']}/r.npz",
                                      "--steps", str((1 << 31) - 1), "--record", "v,i"])
    assert result.exit_code == 2
    assert "steps of n = 8 neurons, m = 5 inputs need about" in result.stderr and "GiB" in result.stderr
    assert not os.path.exists(f"{files['tmp']}/r.npz")


def test_a_huge_run_of_generated_inputs_is_refused_naming_the_stimulus(files):
    path = f"{files['tmp']}/long.npz"
    np.savez(path, rates=np.ones(5, int), steps=np.array(10 ** 15))
    result = CliRunner().invoke(cli, ["run", files["net"], "--input", path, "-o", f"{files['tmp']}/r.npz"])
    assert result.exit_code == 2 and "Invalid value for --input: 1000000000000000 steps of n = 8 neurons" \
        in result.stderr
    trials = f"{files['tmp']}/many.npz"
    np.savez(trials, rates=np.ones((4, 5), int), steps=np.array(10 ** 9))
    result = CliRunner().invoke(cli, ["diff", files["net"], "--input", trials, "--device", "golden",
                                      "--device", "golden"])
    assert result.exit_code == 2 and "GiB, more than this machine's" in result.stderr
    assert not os.path.exists(f"{files['tmp']}/r.npz")
