#!/usr/bin/env bash
# The benchmark set quoted in README.md ("Measured here"), one run after
# another under /tmp/bench.lock: VGG-16 at 224 forward-backward and forward
# on one thread (Winograd and im2col), training at global batch 8 on 1, 2, 4
# ranks with and without overlap, weak scaling at 2 ranks, allreduce-bench,
# and fp32 vs bf16 gradients on a 2-host simulated cluster at 1 Gbit/s.
# About 6 minutes on 2 cores. Reports and logs go to OUT (default
# runs/bench-<time>). OPENBLAS_CORETYPE is left as the environment sets it;
# every report records the kernel that ran.
#
#   scripts/bench.sh [OUT]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x .build/release/vgg-dp ] || swift build -c release
B=.build/release/vgg-dp
O=${1:-runs/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$O"
exec 8>/tmp/bench.lock
flock 8
summ() { python3 - "$1" "$O" <<'PY'
import json,sys; t=sys.argv[1]; d=json.load(open(sys.argv[2]+'/%s.json'%t)); r=d['per_rank']; n=len(r)
print('%-16s ranks %d thr %d batch/rank %d  step median %.3f mean %.3f sd %.3f  img/s %.3f GFLOP/s %.1f  fwd %.3f bwd %.3f opt %.3f allreduce %.3f exposed %.3f (%.1f%% of step)  rss %d MiB conv=%s dtype=%s' % (t, d['ranks'], d['blas_threads'], d['batch_per_rank'], d['step_seconds']['median'], d['step_seconds']['mean'], d['step_seconds']['sd'], d['images_per_second'], d['gflops_per_second'], sum(x['forward'] for x in r)/n, sum(x['backward'] for x in r)/n, sum(x['optimizer'] for x in r)/n, d['allreduce_seconds_per_step'], d['exposed_seconds_per_step'], 100*d['exposed_seconds_per_step']/d['step_seconds']['mean'], d['peak_rss_bytes']>>20, d.get('conv'), d.get('allreduce_dtype')))
PY
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
bash scripts/launch.sh -n 2 -- $A --threads 1 --no-overlap --report $O/t_r2t1_noov.json > $O/t_r2t1_noov.txt 2>&1; summ t_r2t1_noov
bash scripts/launch.sh -n 4 -- $A --threads 1 --overlap --report $O/t_r4t1.json > $O/t_r4t1.txt 2>&1; summ t_r4t1
bash scripts/launch.sh -n 4 -- $A --threads 1 --no-overlap --report $O/t_r4t1_noov.json > $O/t_r4t1_noov.txt 2>&1; summ t_r4t1_noov
echo "== B4 weak: 1 rank x 1 thread batch 8 vs 2 ranks x 1 thread batch 8 each"
bash scripts/launch.sh -n 2 -- train --batch-size 8 --warmup 1 --steps 4 --threads 1 --no-overlap --report $O/w_r2b8.json > $O/w_r2b8.txt 2>&1; summ w_r2b8
echo "== B5 allreduce-bench 2 ranks"
bash scripts/launch.sh -n 2 -- allreduce-bench --iterations 3 --min-bytes 1048576 > $O/arb2.txt 2>&1; tail -8 $O/arb2.txt
echo "== B6 16-bit gradients on the simulated cluster, 2 hosts at 1 Gbit/s"
for dt in fp32 bf16; do
  VGGDP_BIN=$PWD/$B bash scripts/cluster.sh run 2 --rate 1gbit -- train --model vgg16 --image-size 64 --width-divisor 4 --batch-size 4 --threads 1 --warmup 2 --steps 10 --allreduce-dtype $dt --report $O/c_$dt.json > $O/c_$dt.txt 2>&1; summ c_$dt
done
bash scripts/cluster.sh down > /dev/null 2>&1
