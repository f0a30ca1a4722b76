"""Running a build tool (Verilator, with the make and C++ compilers it starts) so
that an interrupt stops all of it, and saying what a long build is doing.

`run_build(cmd, cwd=..., log_path=..., what=...)` starts `cmd` in a session of
its own (`start_new_session=True`), so its process group holds every compiler
that make starts and a Ctrl-C at the terminal reaches only this process. While
it runs, SIGINT and SIGTERM are only noted; the build's whole process group is
then killed (SIGTERM, SIGKILL after a grace period) and the signal delivered
again with its usual handler, so Ctrl-C still raises KeyboardInterrupt and
SIGTERM still ends the process, and no compiler is left running as an orphan.
The same cleanup runs on any exception. Every `interval_s` a line on the
progress logger (`neurofabric.host.progress.PROGRESS_LOGGER`) says the build is
still going.

`previous_build_seconds(build_root)` reads how long earlier builds took from
their `built.ok` stamps, for the announcement of a first build.
"""

import contextlib
import logging
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

from neurofabric.host.progress import PROGRESS_LOGGER

__all__ = ["run_build", "previous_build_seconds", "progress"]

#: Lines that say what a long build is doing (the command line shows them unless -q).
progress = logging.getLogger(PROGRESS_LOGGER)

#: How long the build's processes get to exit after SIGTERM before SIGKILL.
KILL_GRACE_S = 5.0


@contextlib.contextmanager
def _signals_noted(caught):
    """While inside, SIGINT and SIGTERM append their number to `caught` instead of acting.

    Only the main thread can set handlers; elsewhere the signals keep their
    handlers and an exception they raise still reaches the cleanup.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue        # ignored (a background job's SIGINT): it stays ignored, the build goes on
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(process, grace_s=KILL_GRACE_S):
    """Stop every process of `process`'s group (its session): SIGTERM, then SIGKILL."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()  # reap the leader: a zombie still counts as a member of the group
        if not _group_alive(pgid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait()


def run_build(cmd, *, cwd, log_path, what, env=None, interval_s=15.0):
    """Run the build command `cmd` in `cwd` with its output in `log_path`; return its exit code.

    `what` names the build in the "still building" lines. On SIGINT, SIGTERM
    or an exception the build's whole process group is stopped first (see the
    module's docstring).
    """
    start = time.monotonic()
    caught = []
    with open(log_path, "w") as log, _signals_noted(caught):
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            next_line = start + interval_s
            # poll() and sleep(), not wait(timeout): a signal handler that raised inside
            # Popen.wait() could leave its lock held and hang the cleanup.
            while process.poll() is None and not caught:
                time.sleep(0.1)
                now = time.monotonic()
                if now >= next_line:
                    progress.info("still building %s (%.0f s)", what, now - start)
                    next_line += interval_s
        finally:
            if process.poll() is None or caught:
                _kill_group(process)
    if caught:
        # Now that nothing of the build is left, the signal does what it would have done.
        signal.raise_signal(caught[0])
    return process.returncode


def previous_build_seconds(build_root, default=60.0):
    """A typical duration of the builds under `build_root` (the median of their `built.ok`
    stamps, "built in X s"), or `default` when there is none."""
    seconds = []
    for stamp in Path(build_root).glob("*/built.ok"):
        with contextlib.suppress(OSError):
            found = re.search(r"built in ([0-9.]+) s", stamp.read_text())
            if found:
                seconds.append(float(found.group(1)))
    return statistics.median(seconds) if seconds else default
