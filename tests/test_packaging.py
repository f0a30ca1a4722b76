"""One distribution, one namespace: neurofabric.{hdl,host,sim,boards} and nothing top-level."""

import importlib.util
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
