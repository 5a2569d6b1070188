#!/usr/bin/env bash
# The benchmark set quoted in README.md ("Measured here"), one run after
# another under /tmp/bench.lock: VGG-16 at 224 forward-backward and forward
# on one thread (Winograd and im2col), training at global batch 8 on 1, 2, 4
# ranks with and without overlap (all with --exchange allreduce, as these rows
# were measured before host-shared; scripts/exchange_bench.sh compares the
# exchanges), weak scaling at 2 ranks, allreduce-bench,
# and fp32 vs bf16 gradients on a 2-host simulated cluster at 1 Gbit/s.
# About 6 minutes on 2 cores. Reports and logs go to OUT (default
# runs/bench-<time>). OPENBLAS_CORETYPE is left as the environment sets it;
# every report records the kernel that ran.
#
#   scripts/bench.sh [OUT]
#
# Environment:
#   VGGDP_BIN    the binary (default <repo>/.build/release/vgg-dp, built
#                when missing)
#   VGGDP_LOCK   lock file held for the whole set (default /tmp/bench.lock;
#                empty: no lock)
set -euo pipefail
script=bench.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    -*) unknown_option "$1" ;;
esac
[ "$#" -le 1 ] || die "takes one argument, OUT (see --help)"
cd "$repo_root"
vggdp_bin
[ -n "${VGGDP_BIN:-}" ] || [ -x "$bin" ] || swift build -c release
require_bin
B=$bin
O=${1:-runs/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$O"
hold_lock
# One line per report, every figure read through `vgg-dp summary`.
summ() {
  "$B" summary "$O/$1.json" --field ranks,blas_threads,batch_per_rank,step_seconds.median,step_seconds.mean,step_seconds.sd,images_per_second,gflops_per_second,per_rank.forward,per_rank.backward,per_rank.optimizer,allreduce_seconds_per_step,exposed_seconds_per_step,peak_rss_bytes,conv,allreduce_dtype |
    awk -F '\t' -v t="$1" '{ printf "%-16s ranks %d thr %d batch/rank %d  step median %.3f mean %.3f sd %.3f  img/s %.3f GFLOP/s %.1f  fwd %.3f bwd %.3f opt %.3f allreduce %.3f exposed %.3f (%.1f%% of step)  rss %d MiB conv=%s dtype=%s\n", t, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 100 * $13 / $5, int($14 / 1048576), ($15 == "" ? "None" : $15), ($16 == "" ? "None" : $16) }'
}
echo "== peak"; $B peak --threads 1; $B peak --threads 2
echo "== B1 forward-backward batch 16, 1 thread"
$B --mode forward-backward --batch-size 16 --threads 1 --warmup 1 --steps 3 --conv auto --report $O/fb16_auto.json > $O/fb16_auto.txt 2>&1; summ fb16_auto
$B --mode forward-backward --batch-size 16 --threads 1 --warmup 1 --steps 2 --conv im2col --report $O/fb16_im2col.json > $O/fb16_im2col.txt 2>&1; summ fb16_im2col
echo "== B2 forward batch 32, 1 thread"
$B --mode forward --batch-size 32 --threads 1 --warmup 1 --steps 3 --report $O/f32_auto.json > $O/f32_auto.txt 2>&1; summ f32_auto
echo "== B3 train, global batch 8"
A="train --global-batch 8 --warmup 1 --steps 4"
bash scripts/launch.sh -n 1 -- $A --threads 1 --report $O/t_r1t1.json > $O/t_r1t1.txt 2>&1; summ t_r1t1
bash scripts/launch.sh -n 1 -- $A --threads 2 --report $O/t_r1t2.json > $O/t_r1t2.txt 2>&1; summ t_r1t2
bash scripts/launch.sh -n 2 -- $A --threads 1 --overlap --report $O/t_r2t1.json > $O/t_r2t1.txt 2>&1; summ t_r2t1
bash scripts/launch.sh -n 2 -- $A --threads 1 --exchange allreduce --no-overlap --report $O/t_r2t1_noov.json > $O/t_r2t1_noov.txt 2>&1; summ t_r2t1_noov
bash scripts/launch.sh -n 4 -- $A --threads 1 --overlap --report $O/t_r4t1.json > $O/t_r4t1.txt 2>&1; summ t_r4t1
bash scripts/launch.sh -n 4 -- $A --threads 1 --exchange allreduce --no-overlap --report $O/t_r4t1_noov.json > $O/t_r4t1_noov.txt 2>&1; summ t_r4t1_noov
echo "== B4 weak: 1 rank x 1 thread batch 8 vs 2 ranks x 1 thread batch 8 each"
bash scripts/launch.sh -n 2 -- train --batch-size 8 --warmup 1 --steps 4 --threads 1 --exchange allreduce --no-overlap --report $O/w_r2b8.json > $O/w_r2b8.txt 2>&1; summ w_r2b8
echo "== B5 allreduce-bench 2 ranks"
bash scripts/launch.sh -n 2 -- allreduce-bench --iterations 3 --min-bytes 1048576 > $O/arb2.txt 2>&1; tail -8 $O/arb2.txt
echo "== B6 16-bit gradients on the simulated cluster, 2 hosts at 1 Gbit/s"
for dt in fp32 bf16; do
  VGGDP_BIN=$(realpath "$B") bash scripts/cluster.sh run 2 --rate 1gbit -- train --model vgg16 --image-size 64 --width-divisor 4 --batch-size 4 --threads 1 --warmup 2 --steps 10 --allreduce-dtype $dt --report $O/c_$dt.json > $O/c_$dt.txt 2>&1; summ c_$dt
done
bash scripts/cluster.sh down > /dev/null 2>&1
