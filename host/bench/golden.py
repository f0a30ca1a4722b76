"""The golden section: `benchmarks/golden_vs_brian2.py`, whose Brian2 time over
the golden model's time is `golden_vs_brian2`."""

import json
import sys
import tempfile
from pathlib import Path

from .plan import BenchError
from .tools import checkout, run_streamed, script_path

__all__ = ["bench_golden"]


def bench_golden(plan, say):
    """benchmarks/golden_vs_brian2.py with the plan's arguments; its JSON."""
    script = script_path("golden_vs_brian2")
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as tmp:
        out = Path(tmp) / "golden.json"
        cmd = [sys.executable, str(script), *plan.golden_args, "--json", str(out)]
        say(f"golden: python benchmarks/golden_vs_brian2.py {' '.join(plan.golden_args)} (the first run also "
            "makes Brian2's venv in the cache folder)")
        returncode, tail = run_streamed(cmd, checkout(), lambda line: say(f"golden: {line}"))
        if returncode != 0 or not out.exists():
            raise BenchError(f"benchmarks/golden_vs_brian2.py failed (exit {returncode}):\n" + "\n".join(tail))
        result = json.loads(out.read_text())
    result["arguments"] = plan.golden_args
    return result
