#!/usr/bin/env bash
# Strong or weak scaling study: one vgg-dp run per rank count, then a report.
#
#   scripts/scaling.sh --kind strong --global-batch G [options] [-- vgg-dp args...]
#   scripts/scaling.sh --kind weak   --batch-size B   [options] [-- vgg-dp args...]
#
#   --kind strong|weak   strong: the same --global-batch G at every rank count
#                        (G must divide by each); weak: the same --batch-size B
#                        per rank
#   --ranks "N ..."      rank counts, space- or comma-separated (default "1 2 4")
#   --hostfile FILE      passed to scripts/launch.sh
#   --out DIR            where runs and report go
#                        (default <repo>/runs/scaling-<kind>-<timestamp>)
#   --no-plots           skip the PNGs (no python3/matplotlib needed)
#   --                   the rest goes to every run, e.g.
#                        -- --model vgg11 --image-size 32 --steps 20
#
# Each point runs `scripts/launch.sh -n N [--hostfile F] -- ARGS --report
# DIR/ranks-N.json` with its output in DIR/ranks-N.log, then
#   vgg-dp report DIR/ranks-*.json --kind KIND --markdown DIR/report.md \
#       --csv DIR/report.csv --plots DIR
# writes the report (printed at the end). If the plots cannot be drawn, the
# report is written without them. A failed point is left out of the report
# and makes the exit status 1.
#
# Environment:
#   VGGDP_BIN    the binary (default <repo>/.build/release/vgg-dp)
#   VGGDP_LOCK   lock file each run holds so that benchmarks sharing a machine
#                do not overlap (default /tmp/bench.lock; empty: no lock).
#                Do not wrap this script in flock on the same file: it would
#                wait for itself.
#   MPIRUN_ARGS  extra mpirun options (see scripts/launch.sh)
set -euo pipefail

script=scaling.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

kind="" global_batch="" batch_size="" ranks_list="1 2 4" hostfile="" out="" plots=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --kind|--kind=*) take_value "$@"; kind="$value"; shift "$taken" ;;
        --global-batch|--global-batch=*) take_value "$@"; global_batch="$value"; shift "$taken" ;;
        --batch-size|--batch-size=*) take_value "$@"; batch_size="$value"; shift "$taken" ;;
        --ranks|--ranks=*) take_value "$@"; ranks_list="$value"; shift "$taken" ;;
        --hostfile|--hostfile=*) take_value "$@"; hostfile="$value"; shift "$taken" ;;
        --out|--out=*) take_value "$@"; out="$value"; shift "$taken" ;;
        --no-plots) plots=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) unknown_option "$1" "vgg-dp options go after --; see --help" ;;
    esac
done
extra=("$@")

case "$kind" in
    strong)
        [ -n "$global_batch" ] || die "--kind strong needs --global-batch G"
        [ -z "$batch_size" ] || die "--kind strong takes --global-batch, not --batch-size"
        positive "$global_batch" || die "--global-batch must be a positive integer, got '$global_batch'"
        batch_args=(--global-batch "$global_batch") ;;
    weak)
        [ -n "$batch_size" ] || die "--kind weak needs --batch-size B"
        [ -z "$global_batch" ] || die "--kind weak takes --batch-size, not --global-batch"
        positive "$batch_size" || die "--batch-size must be a positive integer, got '$batch_size'"
        batch_args=(--batch-size "$batch_size") ;;
    '') die "give --kind strong or --kind weak" ;;
    *) die "--kind must be strong or weak, got '$kind'" ;;
esac

for a in "${extra[@]}"; do
    case "$a" in
        --batch-size|--batch-size=*|--global-batch|--global-batch=*|--report|--report=*)
            die "$a is set by scaling.sh; give it as a scaling.sh option, not after --" ;;
    esac
done

read -r -a ranks <<<"${ranks_list//,/ }"
[ "${#ranks[@]}" -ge 1 ] || die "--ranks is empty"
for n in "${ranks[@]}"; do
    positive "$n" || die "--ranks: '$n' is not a positive integer"
    if [ "$kind" = strong ] && [ $((global_batch % n)) -ne 0 ]; then
        die "--global-batch $global_batch does not divide by $n ranks; pick a multiple of every rank count"
    fi
done
if [ -n "$hostfile" ]; then
    [ -f "$hostfile" ] || die "hostfile not found: $hostfile"
    hostfile_args=(--hostfile "$hostfile")
else
    hostfile_args=()
fi

require_bin
lock_command

out="${out:-$repo_root/runs/scaling-$kind-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out" || die "cannot create $out"


echo "scaling.sh: $kind scaling over ranks ${ranks[*]} (${batch_args[*]}) into $out"
files=() failed=()
for n in "${ranks[@]}"; do
    json="$out/ranks-$n.json" log="$out/ranks-$n.log"
    rm -f "$json"
    echo "== $n rank(s): log $log"
    status=0
    "${locked[@]}" "$repo_root/scripts/launch.sh" -n "$n" "${hostfile_args[@]}" -- \
        "${extra[@]}" "${batch_args[@]}" --report "$json" >"$log" 2>&1 || status=$?
    if [ "$status" -eq 0 ] && [ -f "$json" ]; then
        grep -E 'sec / batch|^images/s' "$log" | sed 's/^/   /' || true
        files+=("$json")
    else
        echo "   FAILED (exit status $status); last lines of $log:" >&2
        tail -n 5 "$log" | sed 's/^/   /' >&2
        failed+=("$n")
    fi
done

[ "${#files[@]}" -gt 0 ] || { echo "scaling.sh: every run failed; no report" >&2; exit 1; }

report=("$bin" report "${files[@]}" --kind "$kind" --markdown "$out/report.md" --csv "$out/report.csv")
status=0
if [ "$plots" -eq 1 ]; then
    "${report[@]}" --plots "$out" || status=$?
    if [ "$status" -eq 1 ]; then
        echo "scaling.sh: plots failed (above); writing the report without them" >&2
        status=0
        "${report[@]}" || status=$?
    fi
else
    "${report[@]}" || status=$?
fi
[ "$status" -eq 0 ] || { echo "scaling.sh: vgg-dp report failed (exit status $status)" >&2; exit "$status"; }

echo
cat "$out/report.md"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "scaling.sh: the run(s) at ${failed[*]} rank(s) failed and are not in the report" >&2
    exit 1
fi
