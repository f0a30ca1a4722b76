"""The built wheel, installed with pip into a fresh venv outside the checkout,
runs a learning network on the simulated board bit-exact with the golden
model from a folder outside the checkout, writing nothing into site-packages
or the current folder but the outputs it was asked for; the sdist holds
every file the wheel does.

Slow (pip installs the `sim` extra, one Verilator build): marked `install`,
so a fast tier deselects it with ``-m 'not install'``.
"""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[1]

#: The run's network: n <= 4 and 32 < m <= 64 at the default widths make the
#: same simulated board as the pattern demo's (1 neuron, 64 inputs), so one
#: Verilator build serves both.
NEURONS, INPUTS, STEPS = 4, 64, 300

MAKE_INPUTS = f"""
import sys
import numpy as np
import neurofabric as nf
net = nf.random_network({NEURONS}, {INPUTS}, seed=5, learn=1)
nf.save_network(net, sys.argv[1])
spikes = np.random.default_rng(6).random(({STEPS}, {INPUTS})) < 0.15
nf.save_stimulus(spikes, sys.argv[2])
"""


class Installed:
    """A fresh venv with the wheel and its `sim` extra, and a clean environment to run it in."""

    def __init__(self, base):
        self.base = base
        self.venv = base / "venv"
        self.bin = self.venv / "bin"
        self.site = next(self.venv.glob("lib/python3*/site-packages"))
        self.cache = base / "cache"
        # Nothing of the checkout's environment: not its venv on PATH, no
        # PYTHONPATH, the cache in this test's folder.
        env = {k: v for k, v in os.environ.items()
               if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "NEUROFABRIC_CACHE", "XDG_CACHE_HOME")}
        keep = [p for p in env.get("PATH", "").split(os.pathsep)
                if p and not Path(p).resolve().is_relative_to(ROOT)]
        env["PATH"] = os.pathsep.join([str(self.bin), *keep])
        env["NEUROFABRIC_CACHE"] = str(self.cache)
        self.env = env

    def run(self, *args, cwd, timeout=900):
        """Run the installed `neurofabric` with `args` in `cwd`."""
        return subprocess.run([str(self.bin / "neurofabric"), *map(str, args)], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def python(self, *args, cwd):
        return subprocess.run([str(self.bin / "python"), *map(str, args)], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=300)

    def site_files(self):
        """Every file of site-packages, with its size and modification time."""
        files = {}
        for path in self.site.rglob("*"):
            if path.is_file() or path.is_symlink():
                st = path.lstat()
                files[path.relative_to(self.site).as_posix()] = (st.st_size, st.st_mtime_ns)
        return files


def _ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def _changed(before, after):
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """The sdist, built by setuptools in a venv of its own (as an isolated build would)."""
    base = tmp_path_factory.mktemp("sdist")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    _ok(subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "setuptools>=77,<90"], capture_output=True, text=True, timeout=600))
    code = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    result = _ok(subprocess.run([str(venv / "bin" / "python"), "-c", code, str(base / "dist")], cwd=ROOT,
                                capture_output=True, text=True, timeout=600))
    return base / "dist" / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory):
    """The wheel pip builds from the sdist: a clean build, so the sdist must hold all it needs."""
    out = tmp_path_factory.mktemp("wheel")
    _ok(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(sdist)],
                       capture_output=True, text=True, timeout=600))
    return next(out.glob("neurofabric-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    base = tmp_path_factory.mktemp("installed")
    assert not base.resolve().is_relative_to(ROOT)
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, capture_output=True)
    inst = Installed(base)
    # pip's own cache keeps the dependencies' downloads between runs.
    _ok(subprocess.run([str(inst.bin / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"{wheel}[sim]"], env=inst.env, capture_output=True, text=True, timeout=1800))
    return inst


@pytest.fixture
def work(installed, tmp_path):
    """An empty current folder outside the checkout."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_installed_wheel_runs_a_learning_network_on_rtl_bit_exact_from_outside_the_checkout(installed, work,
                                                                                               tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    net, stim = inputs / "net.npz", inputs / "stim.npz"
    _ok(installed.python("-c", MAKE_INPUTS, net, stim, cwd=inputs))
    mk = installed.site / "verilator" / "include" / "verilated.mk"
    assert "CFG_CXXFLAGS_PCH_I = -include" not in mk.read_text()  # the wheel as pip leaves it
    before = installed.site_files()

    _ok(installed.run("run", net, "--input", stim, "--device", "rtl", "-o", "rtl.npz", cwd=work))
    _ok(installed.run("run", net, "--input", stim, "--device", "golden", "-o", "golden.npz", cwd=work))

    rtl, golden = np.load(work / "rtl.npz"), np.load(work / "golden.npz")
    assert set(rtl.files) == set(golden.files)
    for key in golden.files:
        assert np.array_equal(rtl[key], golden[key]), key
    network = np.load(net)
    assert golden["spikes"].sum() > 0
    assert not np.array_equal(golden["weights"], network["weights"])  # learning changed weights
    # The simulated board was built in the cache folder, after the Verilator
    # fix-up that the build applied by itself: the only change to site-packages.
    assert any((installed.cache / "board").glob("*/obj/nf_board"))
    assert "CFG_CXXFLAGS_PCH_I = -include" in mk.read_text()
    assert _changed(before, installed.site_files()) == ["verilator/include/verilated.mk"]
    assert sorted(p.name for p in work.iterdir()) == ["golden.npz", "rtl.npz"]


def test_installed_demo_runs_on_rtl_bit_exact_and_writes_only_its_folder(installed, work):
    before = installed.site_files()
    result = _ok(installed.run("demo", "-o", "demo", cwd=work))
    assert "bit-exact with the golden model (every spike and every weight snapshot): yes" in result.stdout
    assert (work / "demo" / "summary.json").is_file() and (work / "demo" / "training.npz").is_file()
    assert [p.name for p in work.iterdir()] == ["demo"]
    # The fix-up, if this test ran first, is the only change.
    assert set(_changed(before, installed.site_files())) <= {"verilator/include/verilated.mk"}


def test_installed_commands_help_and_bench_says_it_needs_a_checkout(installed, work):
    for command in ("sim-board", "demo", "run", "build"):
        result = _ok(installed.run(command, "--help", cwd=work))
        assert "Usage:" in result.stdout, command
    result = installed.run("bench", "--quick", cwd=work)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "source checkout" in lines[0]
    assert list(work.iterdir()) == []


def test_sdist_holds_the_package_and_what_it_reads_at_run_time(sdist, wheel):
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"sim/board_main.cpp", "pyproject.toml", "README.md", "LICENSE"} <= names
    # Every module of the source tree is in the sdist, and so in the wheel built from it.
    sources = {path.relative_to(ROOT).as_posix()
               for folder in ("hdl", "host", "sim", "boards", "src/neurofabric")
               for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert sources - names == set()
    installed = set(zipfile.ZipFile(wheel).namelist())
    assert "neurofabric/sim/board_main.cpp" in installed
    assert {"neurofabric/" + name.removeprefix("src/neurofabric/") if name.startswith("src/") else
            "neurofabric/" + name for name in sources} <= installed
