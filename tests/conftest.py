"""What every test session shares."""

import os
from pathlib import Path

from neurofabric.paths import CACHE_ENV

ROOT = Path(__file__).resolve().parents[1]

# The suite's Verilator models and board programs are cached in the checkout's
# git-ignored build/ (as `./dev.sh` does), not in the user's cache folder, so a
# checkout keeps its own builds; NEUROFABRIC_CACHE set by the caller wins.
os.environ.setdefault(CACHE_ENV, str(ROOT / "build"))
