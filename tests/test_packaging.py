"""One distribution, one namespace: neurofabric.{hdl,host,sim,boards} and nothing top-level."""

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import neurofabric

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("part", ["hdl", "host", "sim", "boards"])
def test_parts_map_to_top_level_folders(part):
    module = importlib.import_module(f"neurofabric.{part}")
    assert Path(module.__file__).resolve().parent == ROOT / part


@pytest.mark.parametrize("name", ["hdl", "host", "sim", "boards"])
def test_no_top_level_part_modules_outside_the_checkout(name, tmp_path):
    # From a neutral folder, so the checkout itself is not on sys.path.
    code = f"import importlib.util, sys; print(importlib.util.find_spec({name!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "None"


def test_public_api_is_importable_from_the_top():
    for name in neurofabric.__all__:
        assert hasattr(neurofabric, name), name


def test_wheel_holds_only_the_neurofabric_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("neurofabric-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"neurofabric", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for part in ("hdl", "host", "sim", "boards"):
        assert f"neurofabric/{part}/__init__.py" in names
    assert "neurofabric/host/golden.py" in names


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "neurofabric"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "info" in out.stdout


def test_wheel_ships_what_the_package_reads_at_run_time(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("neurofabric-*.whl"))).namelist())
    assert "neurofabric/sim/board_main.cpp" in names
    assert "neurofabric/paths.py" in names
    assert {"neurofabric/host/bench/__init__.py", "neurofabric/host/bench/page.py"} <= names
    # Every folder of Python modules in the source tree is a package of the wheel.
    for folder in ("hdl", "host", "sim", "boards", "src/neurofabric"):
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.relative_to(ROOT / folder).as_posix()
            prefix = "neurofabric/" if folder == "src/neurofabric" else f"neurofabric/{folder}/"
            assert prefix + rel in names, init


def test_cache_dir_is_the_variable_else_xdg_else_home(monkeypatch, tmp_path):
    from neurofabric.paths import cache_dir
    monkeypatch.setenv("NEUROFABRIC_CACHE", str(tmp_path / "nf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "nf"
    monkeypatch.delenv("NEUROFABRIC_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "neurofabric"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as XDG says
    assert cache_dir() == tmp_path / "home" / ".cache" / "neurofabric"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "neurofabric"
    monkeypatch.setenv("NEUROFABRIC_CACHE", "rel")
    monkeypatch.chdir(tmp_path)
    assert cache_dir() == tmp_path / "rel"


def test_builds_take_their_folders_from_the_cache_dir(monkeypatch, tmp_path):
    from neurofabric.hdl.core_ports import CoreConfig
    from neurofabric.host.bench import BenchPlan
    from neurofabric.sim.link_build import top_build_dir
    monkeypatch.setenv("NEUROFABRIC_CACHE", str(tmp_path / "cache"))
    assert top_build_dir(CoreConfig(n=4, m=4)).parent == tmp_path / "cache" / "rtl"
    assert BenchPlan.full().cache_dir == tmp_path / "cache" / "bench"
    assert BenchPlan.tiny().cache_dir == tmp_path / "cache" / "bench"


def test_no_module_takes_its_own_folder_for_the_repository():
    # Inside an installed wheel, "the folder above this file" is site-packages:
    # caches and generated files must come from neurofabric.paths instead.
    above = re.compile(r"__file__\)?(\.resolve\(\))?\.(parent\.parent|parents\[[1-9]\])")
    offenders = []
    for folder in ("hdl", "host", "sim", "boards", "src/neurofabric"):
        for path in (ROOT / folder).rglob("*.py"):
            if above.search(path.read_text()):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def test_source_checkout_is_this_repository():
    from neurofabric.paths import source_checkout
    assert source_checkout() == ROOT


def test_the_version_is_written_once():
    # pyproject.toml takes it from the package; no second literal to keep in step.
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "neurofabric.__version__"}
    assert importlib.metadata.version("neurofabric") == neurofabric.__version__
