#!/usr/bin/env bash
# Set up a Debian 12 machine to build and run vgg-dp.
#
#   scripts/setup.sh [--no-build]
#
# Idempotent and safe to run as root with no TTY. It:
#   1. apt-get update, then installs OpenMPI, OpenBLAS, pkg-config, iproute2
#      and python3 with matplotlib/numpy (a no-op for packages already there);
#   2. makes sure the `python3` on PATH (possibly a pyenv python, not the
#      system one) can import matplotlib, pip-installing it if needed;
#   3. checks that Swift is on PATH (adding /opt/swift/usr/bin when present);
#   4. runs `swift build -c release`, unless --no-build is given.
set -euo pipefail

usage() {
    echo "usage: scripts/setup.sh [--no-build]"
}

build=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

say() { echo "==> $*"; }
die() { echo "setup.sh: error: $*" >&2; exit 1; }

# --- 1. system packages ------------------------------------------------------
packages=(
    libopenmpi-dev openmpi-bin libopenblas-dev pkg-config iproute2
    python3 python3-matplotlib python3-numpy
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        die "not running as root and sudo is not available; re-run as root"
    fi
fi

export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get update -qq -o Acquire::Retries=3
say "apt-get install ${packages[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${packages[@]}" >/dev/null

for pc in ompi-c openblas; do
    pkg-config --exists "$pc" || die "pkg-config cannot find '$pc' after installing packages"
done
say "pkg-config: ompi-c $(pkg-config --modversion ompi-c), openblas $(pkg-config --modversion openblas)"
command -v mpirun >/dev/null 2>&1 || die "mpirun is not on PATH after installing openmpi-bin"
say "$(mpirun --version 2>/dev/null | head -n 1)"

# --- 2. matplotlib for the python3 on PATH ------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH"
py="$(command -v python3)"
if python3 -c 'import matplotlib' >/dev/null 2>&1; then
    say "python3 ($py) has matplotlib"
else
    say "python3 ($py) lacks matplotlib: pip installing it"
    PIP_ROOT_USER_ACTION=ignore \
        python3 -m pip install --quiet --disable-pip-version-check matplotlib \
        || die "could not pip install matplotlib for $py"
    python3 -c 'import matplotlib' >/dev/null 2>&1 \
        || die "python3 ($py) still cannot import matplotlib"
    say "python3 ($py) now has matplotlib"
fi

# --- 3. Swift ------------------------------------------------------------------
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "setup.sh: error: Swift is not installed (no 'swift' on PATH or in /opt/swift/usr/bin)." >&2
    echo "  Install a Swift 6 toolchain for Debian 12 from https://www.swift.org/install/" >&2
    echo "  and put its usr/bin on PATH, then re-run scripts/setup.sh." >&2
    exit 1
fi
say "swift: $(command -v swift) ($(swift --version 2>/dev/null | head -n 1))"

# --- 4. build ------------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    say "swift build -c release"
    swift build -c release
    say "built $repo_root/.build/release/vgg-dp"
else
    say "skipping build (--no-build)"
fi
say "setup done"
