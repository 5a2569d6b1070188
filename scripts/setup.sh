#!/usr/bin/env bash
# Set up a Debian 12 machine to build and run vgg-dp.
#
#   scripts/setup.sh [--no-build] [--slurm]
#   scripts/setup.sh --undo-mpi-config
#
# Idempotent and safe to run as root with no TTY. It:
#   1. apt-get update, then installs OpenMPI, OpenBLAS, pkg-config, iproute2
#      and python3 with matplotlib/numpy (a no-op for packages already there);
#   2. on a machine where Open MPI has fewer slots (cores) than the README's
#      `mpirun -n 4` asks for, allows oversubscription in the per-user MCA
#      parameter file ($HOME/.openmpi/mca-params.conf:
#      rmaps_base_oversubscribe = 1, between marker comments), so that the
#      line works as typed; a machine with enough slots is left as it is;
#   3. makes sure the `python3` on PATH (possibly a pyenv python, not the
#      system one) can import matplotlib, pip-installing it if needed;
#   4. checks that Swift is on PATH (adding /opt/swift/usr/bin when present);
#   5. runs `swift build -c release`, unless --no-build is given;
#   6. with --slurm (after step 2), installs slurm-wlm and munge for the
#      Slurm test (scripts/slurm/local-cluster.sh install: apt-get update and
#      install, starting no system service; nothing when they are installed;
#      a warning, not an error, when they cannot be installed: the test skips).
#
#   --undo-mpi-config   removes step 2's lines from $HOME/.openmpi/mca-params.conf
#                       (the file too, if nothing else is left in it) and exits
#
# As root, mpirun also needs OMPI_ALLOW_RUN_AS_ROOT=1 and
# OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment (or --allow-run-as-root);
# setup does not set them (scripts/launch.sh does, for its own mpirun).
set -euo pipefail

script=setup.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
say_prefix="==> "

build=1
undo_mpi=0
slurm=0
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --slurm) slurm=1 ;;
        --undo-mpi-config) undo_mpi=1 ;;
        -h|--help) usage; exit 0 ;;
        *) unknown_option "$arg" ;;
    esac
done

cd "$repo_root"

# --- Open MPI: oversubscription where the machine has too few slots -----------
mpi_ranks=4  # the README's `mpirun -n 4 .build/release/vgg-dp`
mca_file="${HOME:?HOME must be set}/.openmpi/mca-params.conf"
mca_begin="# >>> vgg-dp scripts/setup.sh (undo: scripts/setup.sh --undo-mpi-config)"
mca_end="# <<< vgg-dp scripts/setup.sh"

mca_configured() { [ -f "$mca_file" ] && grep -qxF "$mca_begin" "$mca_file"; }

# mpirun -n N true, as a user types it but with oversubscription off: its
# output, and whether Open MPI found N slots.
mpi_probe() {
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        timeout 60 mpirun "$@" -n "$mpi_ranks" true 2>&1
}

configure_mpi() {
    if mca_configured; then
        say "Open MPI: $mca_file already allows oversubscription (scripts/setup.sh --undo-mpi-config removes it)"
        return 0
    fi
    local out
    if out="$(mpi_probe --mca rmaps_base_oversubscribe 0)"; then
        say "Open MPI: $mpi_ranks slots or more here; its configuration is left as it is"
        return 0
    fi
    if ! grep -qi "not enough slots" <<<"$out"; then
        warn "mpirun -n $mpi_ranks true failed for another reason; Open MPI's configuration is left as it is:"
        sed 's/^/    /' <<<"$out" | head -n 20 >&2
        return 0
    fi
    mkdir -p "$(dirname "$mca_file")"
    {
        echo "$mca_begin"
        echo "# Fewer Open MPI slots (cores) here than \`mpirun -n $mpi_ranks\` asks for: allow oversubscription."
        echo "rmaps_base_oversubscribe = 1"
        echo "$mca_end"
    } >>"$mca_file"
    out="$(mpi_probe)" || fail "error: mpirun -n $mpi_ranks true still fails after allowing oversubscription in $mca_file:"$'\n'"$out"
    say "Open MPI: fewer than $mpi_ranks slots here: allowed oversubscription in $mca_file (undo: scripts/setup.sh --undo-mpi-config)"
}

undo_mpi_config() {
    if ! mca_configured; then
        say "Open MPI: no vgg-dp lines in $mca_file; nothing to undo"
        return 0
    fi
    local tmp
    tmp="$(mktemp "$mca_file.XXXXXX")"
    awk -v b="$mca_begin" -v e="$mca_end" '$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' \
        "$mca_file" >"$tmp"
    if grep -q '[^[:space:]]' "$tmp"; then
        cat "$tmp" >"$mca_file"
        say "Open MPI: removed vgg-dp's lines from $mca_file"
    else
        rm -f "$mca_file"
        say "Open MPI: removed $mca_file (it held only vgg-dp's lines)"
    fi
    rm -f "$tmp"
}

if [ "$undo_mpi" -eq 1 ]; then
    undo_mpi_config
    exit 0
fi

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
        fail "error: not running as root and sudo is not available; re-run as root"
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
    pkg-config --exists "$pc" || fail "error: pkg-config cannot find '$pc' after installing packages"
done
say "pkg-config: ompi-c $(pkg-config --modversion ompi-c), openblas $(pkg-config --modversion openblas)"
command -v mpirun >/dev/null 2>&1 || fail "error: mpirun is not on PATH after installing openmpi-bin"
say "$(mpirun --version 2>/dev/null | head -n 1)"
configure_mpi
if [ "$slurm" -eq 1 ]; then
    say "Slurm: scripts/slurm/local-cluster.sh install"
    slurm_status=0
    bash "$repo_root/scripts/slurm/local-cluster.sh" install || slurm_status=$?
    case "$slurm_status" in
        0) ;;
        4) warn "warning: slurm-wlm and munge could not be installed; the Slurm test (SlurmTests) will skip" ;;
        *) fail "error: scripts/slurm/local-cluster.sh install failed (exit status $slurm_status)" ;;
    esac
fi

# --- 3. matplotlib for the python3 on PATH ------------------------------------
command -v python3 >/dev/null 2>&1 || fail "error: python3 is not on PATH"
py="$(command -v python3)"
if python3 -c 'import matplotlib' >/dev/null 2>&1; then
    say "python3 ($py) has matplotlib"
else
    say "python3 ($py) lacks matplotlib: pip installing it"
    PIP_ROOT_USER_ACTION=ignore \
        python3 -m pip install --quiet --disable-pip-version-check matplotlib \
        || fail "error: could not pip install matplotlib for $py"
    python3 -c 'import matplotlib' >/dev/null 2>&1 \
        || fail "error: python3 ($py) still cannot import matplotlib"
    say "python3 ($py) now has matplotlib"
fi

# --- 4. Swift ------------------------------------------------------------------
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

# --- 5. build ------------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    say "swift build -c release"
    swift build -c release
    say "built $repo_root/.build/release/vgg-dp"
else
    say "skipping build (--no-build)"
fi
say "setup done"
