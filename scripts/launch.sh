#!/usr/bin/env bash
# Launch vgg-dp under mpirun with the right options for this machine.
#
#   scripts/launch.sh [-n RANKS] [--hostfile FILE] [--max-restarts K] [--] [vgg-dp args...]
#
#   -n, --np RANKS     number of MPI ranks (default 4)
#   --hostfile FILE    OpenMPI hostfile (default hostfiles/localhost in the repo)
#   --max-restarts K   when the job ends because a rank died, a host was lost
#                      or a rank failed (any exit but 0 and 2), relaunch it
#                      with --resume from the checkpoint in vgg-dp's
#                      --checkpoint-dir (needed), up to K times (default 0:
#                      none). Exit 2 (bad input) is never restarted. With no
#                      checkpoint yet, the same command runs again. With
#                      --hostfile, every host is probed first (mpirun -H HOST
#                      -n 1 true, VGGDP_PROBE_TIMEOUT s, default 20); those
#                      that do not answer are left out, and the job goes on
#                      with the ranks of the others when the global batch
#                      divides by their count, else it stops saying why. Each
#                      restart is one JSON line in CHECKPOINT-DIR/restarts.jsonl,
#                      given to vgg-dp as --restart-log: the report lists them.
#                      See scripts/lib/elastic.sh and docs/CLUSTER.md.
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
# exits with mpirun's status (without --max-restarts it becomes mpirun, so a
# signal to it is a signal to mpirun; with it, launch.sh passes TERM, INT and
# HUP on to mpirun and does not restart).
set -euo pipefail

script=launch.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# launch.sh's usage errors exit 1, as they always have (scripts and tests rely on it).
needs_value_status=1

ranks=4
hostfile="$repo_root/hostfiles/localhost"
hostfile_given=0
max_restarts=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        -n|-np|--np|-n=*|--np=*) take_value "$@"; ranks="$value"; shift "$taken" ;;
        --hostfile|--hostfile=*) take_value "$@"; hostfile="$value"; hostfile_given=1; shift "$taken" ;;
        --max-restarts|--max-restarts=*) take_value "$@"; max_restarts="$value"; shift "$taken" ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done

positive "$ranks" || fail "RANKS must be a positive integer, got '$ranks'"
whole "$max_restarts" || fail "--max-restarts must be a whole number (0: no restart), got '$max_restarts'"
[ -f "$hostfile" ] || fail "hostfile not found: $hostfile"

require_bin

command -v mpirun >/dev/null 2>&1 \
    || fail "mpirun not found: run scripts/setup.sh (installs openmpi-bin)"

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

if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1
    export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Sets cmd: mpirun running vgg-dp with the rest of the arguments on $1 ranks
# placed by hostfile $2.
mpirun_command() {
    local n="$1" file="$2"
    shift 2
    cmd=(mpirun -n "$n" --hostfile "$file" --bind-to none)
    if [ "$n" -gt "$cores" ]; then
        cmd+=(--mca mpi_yield_when_idle 1)
    fi
    if [ "$n" -gt "$(hostfile_slots "$file")" ]; then
        cmd+=(--oversubscribe)
    fi
    if [ -n "${MPIRUN_ARGS:-}" ]; then
        read -r -a extra <<<"$MPIRUN_ARGS"
        cmd+=("${extra[@]}")
    fi
    cmd+=("$bin" "$@")
}

if [ "$max_restarts" -gt 0 ]; then
    # shellcheck source=scripts/lib/elastic.sh
    . "$repo_root/scripts/lib/elastic.sh"
    elastic_command() { mpirun_command "$@"; }
    elastic_run "$max_restarts" "$ranks" "$hostfile" "$hostfile_given" -- "$@"
fi

mpirun_command "$ranks" "$hostfile" "$@"

# Print the command on one line, shell-quoted so it can be pasted back.
printf '+' >&2
printf ' %q' "${cmd[@]}" >&2
printf '\n' >&2

exec "${cmd[@]}"
