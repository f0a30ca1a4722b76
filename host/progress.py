"""Progress lines on stderr for long work (loads, long runs, builds)."""

import sys
import time

__all__ = ["Progress", "PROGRESS_LOGGER"]

#: The logger of lines that say what long work is doing, such as the stages of a
#: first build of the simulated board; the command line shows them unless -q.
PROGRESS_LOGGER = "neurofabric.progress"


class Progress:
    """Callable `progress(done, total)` that prints at most once per `interval_s`.

    Silent when `enabled` is false (the CLI's `-q`) and when the stream is not
    a terminal (logs and pipes get no progress lines), unless `always`.
    """

    def __init__(self, what, enabled=True, interval_s=1.0, stream=None, always=False):
        self.what = what
        self.stream = stream or sys.stderr
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self.enabled = enabled and (always or is_tty)
        self.interval_s = interval_s
        self.start = time.monotonic()
        self.last = None

    def __call__(self, done, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval_s and done < total:
            return
        if self.last is None and done < total and now - self.start < self.interval_s:
            return  # short jobs print nothing
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        elapsed = now - self.start
        eta = elapsed * (total - done) / done if done else 0.0
        print(f"{self.what}: {done}/{total} ({pct:.0f} %), {elapsed:.1f} s elapsed, "
              f"about {eta:.1f} s left", file=self.stream, flush=True)
