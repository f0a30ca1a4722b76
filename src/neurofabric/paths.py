"""Where neurofabric keeps what it makes, and where its own sources are.

Pure Python (no Amaranth, no numpy), so any part imports it.

- `cache_dir()`: the per-user folder for build caches and generated files
  (Verilog, Verilator models, the simulated board's programs, the bench's
  board builds). Never site-packages, never the current folder: an installed
  wheel may be read-only, and a command run in a project folder should leave
  there only the files the user named.
- `source_checkout()`: the repository a development install runs from, or
  None for an installed wheel (what needs `benchmarks/` asks it).
- `package_sources(...)`: the Python files of named parts, for the hashes
  that key the build caches (they must work from a wheel as from a checkout).
"""

import importlib.util
import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "source_checkout", "package_sources"]

#: The environment variable that overrides the cache folder (`./dev.sh` sets it
#: to the checkout's git-ignored build/).
CACHE_ENV = "NEUROFABRIC_CACHE"


def cache_dir() -> Path:
    """The cache folder: ``$NEUROFABRIC_CACHE`` if set, else
    ``$XDG_CACHE_HOME/neurofabric``, else ``~/.cache/neurofabric``.

    Read on every call (so a changed environment takes effect); an absolute
    path; not created here (each cache makes its own subfolder when it writes).
    A relative ``$XDG_CACHE_HOME`` is ignored, as the XDG specification says.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "neurofabric"
    return Path.home() / ".cache" / "neurofabric"


def source_checkout():
    """The root of the source checkout this neurofabric runs from (an editable
    install: src/neurofabric/ inside a repository with pyproject.toml and
    benchmarks/), or None when it runs from an installed wheel."""
    package = Path(__file__).resolve().parent
    src = package.parent
    root = src.parent
    if src.name == "src" and (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir():
        return root
    return None


def package_sources(*names):
    """``[(label, path), ...]`` of the Python files of `names` (dotted module or
    package names under `neurofabric`): every ``*.py`` of a package's folder
    (not its subpackages), sorted, or a module's one file, in the order given.

    `label` is the file's place in the project's layout ("hdl/core.py",
    "contract/protocol.py"), the same in a checkout and in a wheel, so a hash
    of labels and contents names the same build in both. A name that does not
    exist raises ModuleNotFoundError: a cache key must not silently lose a part.
    """
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"no module named {name!r}", name=name)
        part = name.removeprefix("neurofabric.").removeprefix("neurofabric").replace(".", "/")
        if spec.submodule_search_locations:
            folder = Path(list(spec.submodule_search_locations)[0])
            for path in sorted(folder.glob("*.py")):
                found.append((f"{part}/{path.name}" if part else path.name, path))
        else:
            path = Path(spec.origin)
            found.append((f"{part}{path.suffix}", path))
    return found
