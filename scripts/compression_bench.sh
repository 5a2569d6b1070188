#!/usr/bin/env bash
# The compression benchmarks (issue: PowerSGD over slow links), one run after
# another under /tmp/bench.lock, 1 BLAS thread per rank:
#   P1 one host: VGG-16 at 224, batch 4, one rank alone and one rank with
#      --compression powersgd (its compression compute share of the step);
#   P2 2 simulated hosts x 1 rank at 1 Gbit/s, same model: fp32, bf16,
#      PowerSGD after backward (--no-overlap) and overlapped;
#   P3 (with --four) 4 simulated hosts at 1 Gbit/s on a reduced
#      configuration that fits 2 cores (VGG-16 at 128, batch 2): one rank
#      alone, fp32, PowerSGD --no-overlap;
#   P4 (with --host-shared) 2 simulated hosts x 2 ranks at 1 Gbit/s, VGG-16
#      at 224: host-shared fp32, and host-shared with PowerSGD (what crosses
#      hosts compressed), both overlapped (the default across hosts).
# Each row: step median, × the one-rank step of its part, bytes sent per
# step per rank and the compression ratio (fp32 bytes / bytes sent),
# compression seconds per step.
# Reports and logs go to OUT (default runs/compression-<time>).
#
#   scripts/compression_bench.sh [--steps N] [--rank R] [--four] [--host-shared] [OUT]
#
# Environment:
#   VGGDP_BIN    the binary (default <repo>/.build/release/vgg-dp)
#   VGGDP_LOCK   lock file held for the whole set (default /tmp/bench.lock; empty: no lock)
set -euo pipefail
script=compression_bench.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
steps=4
rank=4
four=0
hier=0
out=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --steps|--steps=*) take_value "$@"; steps=$value; shift "$taken" ;;
        --rank|--rank=*) take_value "$@"; rank=$value; shift "$taken" ;;
        --four) four=1; shift ;;
        --host-shared) hier=1; shift ;;
        -*) unknown_option "$1" ;;
        *) [ -z "$out" ] || die "takes one OUT folder (see --help)"; out=$1; shift ;;
    esac
done
positive "$steps" || die "--steps must be a positive integer, got '$steps'"
positive "$rank" || die "--rank must be a positive integer, got '$rank'"
cd "$repo_root"
vggdp_bin
require_bin
B=$(realpath "$bin")
O=${out:-runs/compression-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$O"
O=$(realpath "$O")
hold_lock
P="--compression powersgd --powersgd-rank $rank"
base=""
row() {
  "$B" summary "$O/$1.json" --field ranks,step_seconds.median,per_rank.exchange_bytes_per_step,compression_ratio,compression_seconds_per_step,exposed_seconds_per_step |
    awk -F '\t' -v t="$1" -v b="$base" '{ printf "%-16s ranks %d  step median %.3f s  x one rank %s  sent/rank/step %.2f MiB (fp32 / sent %s)  compression %s s  exposed %.3f s\n", t, $1, $2, (b == "" ? "-" : sprintf("%.2f", $2 / b)), $3 / 1048576, ($4 == "" ? "-" : sprintf("%.0f", $4)), ($5 == "" ? "-" : sprintf("%.3f", $5)), $6 }'
}
one() { local name=$1; shift; "$B" "$@" --report "$O/$name.json" > "$O/$name.txt" 2>&1 || { echo "$name failed:"; tail -5 "$O/$name.txt"; return 1; }; row "$name"; }
hosts() { local name=$1 n=$2; shift 2; VGGDP_BIN=$B bash scripts/cluster.sh run "$n" ${PER_HOST:+--ranks-per-host "$PER_HOST"} --rate 1gbit -- "$@" --report "$O/$name.json" > "$O/$name.txt" 2>&1 || { echo "$name failed:"; tail -5 "$O/$name.txt"; return 1; }; row "$name"; }
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
A="train --model vgg16 --image-size 224 --batch-size 4 --threads 1 --warmup 2 --steps $steps"
echo "== P1 one host, VGG-16 at 224, batch 4"
one p1_one $A
base=$("$B" summary "$O/p1_one.json" --field step_seconds.median)
one p1_one_psgd $A $P
echo "== P2 2 simulated hosts x 1 rank, 1 Gbit/s"
hosts p2_fp32 2 $A
hosts p2_bf16 2 $A --allreduce-dtype bf16
hosts p2_psgd_after 2 $A $P --no-overlap
hosts p2_psgd_overlap 2 $A $P --overlap
if [ "$four" -eq 1 ]; then
    R="train --model vgg16 --image-size 128 --batch-size 2 --threads 1 --warmup 2 --steps $steps"
    echo "== P3 4 simulated hosts x 1 rank, 1 Gbit/s, VGG-16 at 128, batch 2"
    base=""
    one p3_one $R
    base=$("$B" summary "$O/p3_one.json" --field step_seconds.median)
    hosts p3_fp32 4 $R
    hosts p3_psgd_after 4 $R $P --no-overlap
fi
if [ "$hier" -eq 1 ]; then
    echo "== P4 2 simulated hosts x 2 ranks, 1 Gbit/s, host-shared (x one rank: P1's)"
    base=$("$B" summary "$O/p1_one.json" --field step_seconds.median)
    PER_HOST=2 hosts p4_hostshared_fp32 2 $A --exchange host-shared
    PER_HOST=2 hosts p4_hostshared_psgd 2 $A --exchange host-shared $P
fi
bash scripts/cluster.sh down > /dev/null 2>&1 || true
echo "reports: $O"
