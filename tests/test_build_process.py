"""Builds stop whole on an interrupt, and a first build says what it does.

A build runs in a session of its own (sim/build_process.py): on SIGINT or
SIGTERM its whole process group is killed before the signal takes effect, so
no compiler is left running as an orphan.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neurofabric.sim.build_process import previous_build_seconds


def processes_matching(text):
    """PIDs of the processes whose command line or working folder contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if text in cmdline or text in cwd:
            found.append(int(entry.name))
    return found


def wait_until(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def start_fake_build(tmp_path, marker, sigint="signal.default_int_handler"):
    """A Python process running a "build" that starts two long-lived children, as make starts compilers;
    `sigint` is its SIGINT handler."""
    # Ctrl-C raises KeyboardInterrupt, as at a terminal, even when this test runs in a
    # background job, whose children inherit SIGINT ignored.
    script = textwrap.dedent(f"""
        import signal
        import sys
        signal.signal(signal.SIGINT, {sigint})
        from neurofabric.sim.build_process import run_build
        cmd = ["sh", "-c", "sleep 300 {marker} & sleep 300 {marker} & wait"]
        try:
            run_build(cmd, cwd={str(tmp_path)!r}, log_path={str(tmp_path / "build.log")!r}, what="a test build")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # sh and its two sleeps (the Python process names the marker too)
    wait_until(lambda: len([p for p in processes_matching(marker) if p != proc.pid]) >= 3, 30, "the children")
    return proc


def kill_fake_build(proc, marker):
    """Whatever of a fake build is left, killed."""
    for pid in processes_matching(marker):
        os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig, exit_code", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_a_signal_during_a_build_stops_every_process_of_the_build(tmp_path, sig, exit_code):
    marker = f"{1000 + os.getpid() % 1000}.{sig.value}"
    proc = start_fake_build(tmp_path, marker)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        # SIGTERM still ends the process by that signal; SIGINT still raises KeyboardInterrupt.
        assert proc.returncode == exit_code, err
        assert (out.strip() == "interrupted") == (sig == signal.SIGINT)
        wait_until(lambda: not processes_matching(marker), 10, "the build's processes to exit")
    finally:
        kill_fake_build(proc, marker)


def test_a_process_that_ignores_sigint_keeps_its_build_through_a_sigint(tmp_path):
    """A background job ignores SIGINT: its build goes on through one, and SIGTERM still stops all of it."""
    marker = f"{3000 + os.getpid() % 1000}.2"
    proc = start_fake_build(tmp_path, marker, sigint="signal.SIG_IGN")
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proc.poll() is None and len([p for p in processes_matching(marker) if p != proc.pid]) >= 3
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM
        wait_until(lambda: not processes_matching(marker), 10, "the build's processes to exit")
    finally:
        kill_fake_build(proc, marker)


def test_an_exception_during_a_build_stops_the_build(tmp_path, monkeypatch):
    import neurofabric.sim.build_process as build_process
    marker = f"{2000 + os.getpid() % 1000}.7"

    def failing(*args):
        raise RuntimeError("the progress line could not be written")
    monkeypatch.setattr(build_process.progress, "info", failing)
    with pytest.raises(RuntimeError, match="the progress line could not be written"):
        build_process.run_build(["sh", "-c", f"sleep 300 {marker} & wait"], cwd=tmp_path,
                                log_path=tmp_path / "build.log", what="a test build", interval_s=0.3)
    wait_until(lambda: not processes_matching(marker), 10, "the build's processes to exit")


def test_a_long_build_says_it_is_still_going(tmp_path, caplog):
    import logging

    from neurofabric.sim.build_process import run_build
    with caplog.at_level(logging.INFO, logger="neurofabric.progress"):
        code = run_build(["sh", "-c", "sleep 0.5; exit 3"], cwd=tmp_path, log_path=tmp_path / "build.log",
                         what="the test build", interval_s=0.2)
    assert code == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "neurofabric.progress"]
    assert lines and all(line.startswith("still building the test build (") for line in lines)


def test_the_expected_duration_comes_from_earlier_builds(tmp_path):
    assert previous_build_seconds(tmp_path) == 60.0
    for name, text in (("a", "built in 40.0 s\n"), ("b", "built in 50.5 s\n"), ("c", "built in 90.0 s\n"),
                       ("d", "ok\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "built.ok").write_text(text)
    assert previous_build_seconds(tmp_path) == 50.5


@pytest.mark.rtl
def test_sim_board_announces_its_first_build_and_sigterm_stops_it_whole(tmp_path):
    """The real thing: `neurofabric sim-board` at a size never built, in a fresh cache folder.

    It says what it builds and how long that takes, with no -v; SIGTERM in the
    middle of the Verilator build ends it with every compiler it started.
    """
    cache = tmp_path / "cache"
    env = {**os.environ, "NEUROFABRIC_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "neurofabric", "sim-board", "--neurons", "8", "--inputs", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("compiling the simulated board with Verilator"):
                break
        else:
            raise AssertionError("no compile stage announced:\n" + "\n".join(lines))
        assert any(line.startswith("building the simulated board for n=8, m=4 (S=16, W=8, T=8, 4 lanes; first time "
                                   "at this size: about 60 s)") for line in lines), lines
        assert "generating the Verilog of the simulated board (Amaranth)" in lines
        wait_until(lambda: len(processes_matching(str(cache))) >= 2, 60, "the Verilator build's processes")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM
        wait_until(lambda: not processes_matching(str(cache)), 15, "every process of the build to exit")
        assert not list(cache.glob("board/*/built.ok"))
    finally:
        for pid in processes_matching(str(cache)):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
