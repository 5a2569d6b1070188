#!/usr/bin/env bash
# Launch vgg-dp under mpirun with the right options for this machine.
#
#   scripts/launch.sh [-n RANKS] [--hostfile FILE] [--] [vgg-dp args...]
#
#   -n, --np RANKS     number of MPI ranks (default 4)
#   --hostfile FILE    OpenMPI hostfile (default hostfiles/localhost in the repo)
#   --                 end of launch.sh options; the rest goes to vgg-dp
#   The first argument launch.sh does not know also ends its options.
#
# Environment:
#   VGGDP_BIN     binary to run (default <repo>/.build/release/vgg-dp)
#   MPIRUN_ARGS   extra mpirun options, split on whitespace
#                 (e.g. MPIRUN_ARGS="--mca btl_tcp_if_include eth0")
#
# What it adds to mpirun:
#   --bind-to none                  each rank's BLAS threads may use any core
#   --mca mpi_yield_when_idle 1     only when RANKS > nproc: waiting ranks yield
#                                   the CPU instead of busy-polling
#   --oversubscribe                 only when RANKS > the hostfile's slots
#   OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 in the environment when run as root
# The mpirun command is printed on stderr as "+ mpirun ..." and launch.sh
# exits with mpirun's status.
set -euo pipefail

usage() {
    sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die() { echo "launch.sh: $*" >&2; exit 1; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

ranks=4
hostfile="$repo_root/hostfiles/localhost"
while [ "$#" -gt 0 ]; do
    case "$1" in
        -n|-np|--np)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            ranks="$2"; shift 2 ;;
        -n=*|--np=*) ranks="${1#*=}"; shift ;;
        --hostfile)
            [ "$#" -ge 2 ] || die "$1 needs a value"
            hostfile="$2"; shift 2 ;;
        --hostfile=*) hostfile="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done

case "$ranks" in
    ''|*[!0-9]*|0*) die "RANKS must be a positive integer, got '$ranks'" ;;
esac
[ -f "$hostfile" ] || die "hostfile not found: $hostfile"

bin="${VGGDP_BIN:-$repo_root/.build/release/vgg-dp}"
if [ ! -x "$bin" ] || [ -d "$bin" ]; then
    [ -n "${VGGDP_BIN:-}" ] && echo "launch.sh: VGGDP_BIN=$VGGDP_BIN is not an executable file" >&2
    echo "vgg-dp is not built: run scripts/setup.sh (or swift build -c release)" >&2
    exit 1
fi

command -v mpirun >/dev/null 2>&1 \
    || die "mpirun not found: run scripts/setup.sh (installs openmpi-bin)"

# Total slots in the hostfile: "host slots=N" counts N, a bare host counts 1.
hostfile_slots() {
    awk '
        { sub(/#.*/, "") }
        NF == 0 { next }
        {
            n = 1
            line = $0
            if (match(line, /(^|[ \t])slots[ \t]*=[ \t]*[0-9]+/)) {
                s = substr(line, RSTART, RLENGTH)
                sub(/.*=[ \t]*/, "", s)
                n = s + 0
            }
            total += n
        }
        END { print total + 0 }
    ' "$1"
}

cores="$(nproc 2>/dev/null || echo 1)"
slots="$(hostfile_slots "$hostfile")"

if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1
    export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

cmd=(mpirun -n "$ranks" --hostfile "$hostfile" --bind-to none)
if [ "$ranks" -gt "$cores" ]; then
    cmd+=(--mca mpi_yield_when_idle 1)
fi
if [ "$ranks" -gt "$slots" ]; then
    cmd+=(--oversubscribe)
fi
if [ -n "${MPIRUN_ARGS:-}" ]; then
    read -r -a extra <<<"$MPIRUN_ARGS"
    cmd+=("${extra[@]}")
fi
cmd+=("$bin" "$@")

# Print the command on one line, shell-quoted so it can be pasted back.
printf '+' >&2
printf ' %q' "${cmd[@]}" >&2
printf '\n' >&2

exec "${cmd[@]}"
