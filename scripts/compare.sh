#!/usr/bin/env bash
# vgg-dp against the notebook's benchmark in TensorFlow and the same VGG-16 in
# PyTorch (scripts/baselines/), back to back on the same model, batch sizes
# and thread counts, then `vgg-dp report --kind compare`: a side-by-side table
# and the ratios. See docs/COMPARE.md.
#
#   scripts/compare.sh [--quick] [--out DIR] [--frameworks "tensorflow pytorch"]
#                      [--coretype NAME] [--no-unset] [--warmup N] [--steps N]
#                      [--rss-steps N] [--build]
#
# The baselines run at their fastest here: TensorFlow with oneDNN on
# (TF_ENABLE_ONEDNN_OPTS=1, whatever the environment says; TensorFlow turns it
# on by default only on some Intel CPUs), PyTorch with its defaults.
#
# Cases (VGG-16 at 224×224; every tool runs each case before the next case):
#   forward-backward, batch 16, 1 thread and 2 threads
#   forward, batch 32, 1 thread
#   forward-backward, batch 32, 1 thread (for peak RSS; --rss-steps timed steps)
#   vgg-dp only: train, batch 16 per rank, 1 rank × 1 thread and 2 ranks × 1
#   thread, the latter with --overlap, with --no-overlap (both --exchange
#   allreduce) and with --exchange host-shared
# vgg-dp runs each case with OPENBLAS_CORETYPE as the environment has it, again
# with it unset (env -u; vgg-dp may then choose a kernel itself, see
# BLASKernel), and with --coretype NAME once more with OPENBLAS_CORETYPE=NAME.
#
#   --quick            1 warm-up + 2 timed steps, no batch-32 forward-backward
#                      case, only the environment's kernel for vgg-dp (about 7
#                      minutes on 2 cores)
#   --out DIR          reports, logs, compare.{md,csv} and the copy of vgg-dp
#                      that ran (default runs/compare-<time>)
#   --frameworks LIST  baselines to run, of "tensorflow pytorch" (default both; "" for none)
#   --coretype NAME    also run vgg-dp with OPENBLAS_CORETYPE=NAME (e.g. SkylakeX)
#   --no-unset         skip vgg-dp's OPENBLAS_CORETYPE-unset runs
#   --warmup N         untimed steps per run (default 1)
#   --steps N          timed steps per run (default 3; --quick 2)
#   --rss-steps N      timed steps of the batch-32 forward-backward case (default 1)
#   --build            run `swift build -c release` first (default: only when
#                      the binary is missing)
#
# Environment:
#   VGGDP_BIN       vgg-dp binary (default <repo>/.build/release/vgg-dp)
#   BASELINES_VENV  the baselines' virtual environment (default <repo>/.venv-baselines;
#                   created by scripts/baselines/setup.sh when missing)
#   VGGDP_LOCK      lock file every run holds (default /tmp/bench.lock; empty: no lock)
#
# Default run: about 20 minutes on the 2-core development machine (TensorFlow
# takes 7-10 s per forward-backward step at batch 16 on one thread).
set -euo pipefail

script=compare.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
count() { whole "$2" || die "$1 needs a whole number, got '$2'"; }

quick=0
out=""
frameworks="tensorflow pytorch"
coretype=""
unset_runs=1
warmup=1
steps=""
rss_steps=1
build=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --out|--out=*) take_value "$@"; out=$value; shift "$taken" ;;
        --frameworks|--frameworks=*) take_value "$@"; frameworks=$value; shift "$taken" ;;
        --coretype|--coretype=*) take_value "$@"; coretype=$value; shift "$taken" ;;
        --warmup|--warmup=*) take_value "$@"; count "${1%%=*}" "$value"; warmup=$value; shift "$taken" ;;
        --steps|--steps=*) take_value "$@"; count "${1%%=*}" "$value"; steps=$value; shift "$taken" ;;
        --rss-steps|--rss-steps=*) take_value "$@"; count "${1%%=*}" "$value"; rss_steps=$value; shift "$taken" ;;
        --no-unset) unset_runs=0; shift ;;
        --build) build=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) unknown_option "$1" ;;
    esac
done
for f in $frameworks; do
    case "$f" in
        tensorflow|pytorch) ;;
        *) die "--frameworks: unknown framework '$f' (known: tensorflow pytorch)" ;;
    esac
done
[ -z "$coretype" ] || [[ "$coretype" =~ ^[A-Za-z0-9_]+$ ]] || die "--coretype: not a kernel name: '$coretype'"
if [ -z "$steps" ]; then
    if [ "$quick" -eq 1 ]; then steps=2; else steps=3; fi
fi
[ "$steps" -ge 1 ] || die "--steps must be at least 1"
[ "$rss_steps" -ge 1 ] || die "--rss-steps must be at least 1"
[ "$quick" -eq 0 ] || unset_runs=0

# --out is relative to where the script was called from; the default is in the repo.
[ -z "$out" ] || out=$(realpath -m -- "$out")
cd "$repo_root"
out=${out:-runs/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || die "cannot create $out"

# --- vgg-dp and the baselines ------------------------------------------------
vggdp_bin
if [ "$build" -eq 1 ] || { [ -z "${VGGDP_BIN:-}" ] && [ ! -x "$bin" ]; }; then
    echo "== swift build -c release"
    swift build -c release
fi
require_bin
# A copy, so that a rebuild during the runs cannot change the binary under them.
mkdir -p "$out/bin"
cp "$bin" "$out/bin/vgg-dp"
built_from="$bin"
bin="$PWD/$out/bin/vgg-dp"
[[ "$out" = /* ]] && bin="$out/bin/vgg-dp"

venv="${BASELINES_VENV:-$repo_root/.venv-baselines}"
python="$venv/bin/python"
if [ -n "${frameworks// /}" ]; then
    modules=""
    for f in $frameworks; do
        case "$f" in tensorflow) modules+="import tensorflow; " ;; pytorch) modules+="import torch; " ;; esac
    done
    if ! { [ -x "$python" ] && TF_CPP_MIN_LOG_LEVEL=3 "$python" -c "$modules" >/dev/null 2>&1; }; then
        echo "== $venv is missing or incomplete: scripts/baselines/setup.sh"
        BASELINES_VENV="$venv" bash scripts/baselines/setup.sh || die "scripts/baselines/setup.sh failed"
    fi
fi

lock_command

# --- kernels vgg-dp runs with: label and the env arguments that set it up -----
kernel_labels=()
kernel_envs=()
env_core="${OPENBLAS_CORETYPE:-}"
if [ -n "$env_core" ]; then
    kernel_labels+=("$env_core"); kernel_envs+=("")
    if [ "$unset_runs" -eq 1 ]; then kernel_labels+=("unset"); kernel_envs+=("-u OPENBLAS_CORETYPE"); fi
else
    kernel_labels+=("unset"); kernel_envs+=("-u OPENBLAS_CORETYPE")
fi
if [ -n "$coretype" ] && [ "$coretype" != "$env_core" ]; then
    kernel_labels+=("$coretype"); kernel_envs+=("OPENBLAS_CORETYPE=$coretype")
fi

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-unset}"
    echo "vgg-dp: $built_from, built $(date -u -r "$built_from" +%Y-%m-%dT%H:%M:%SZ), copied to $bin (tree: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ', uncommitted changes'))"
    echo "vgg-dp kernels: ${kernel_labels[*]}"
    echo "frameworks: ${frameworks:-none}"
    [ -z "${frameworks// /}" ] || echo "baselines: TensorFlow with TF_ENABLE_ONEDNN_OPTS=1 (oneDNN on), PyTorch with its defaults (oneDNN on); each report's blas_config says what ran"
    echo "warm-up $warmup, steps $steps, batch-32 forward-backward steps $rss_steps"
} | tee "$out/environment.txt"

# --- running -----------------------------------------------------------------
reports=()
failed=()

# run NAME COMMAND...: under the lock, output to NAME.txt, report NAME.json;
# prints one line of what it measured. A failure is noted and the rest goes on.
run() {
    local name=$1; shift
    local log="$out/$name.txt" json="$out/$name.json"
    local start=$SECONDS
    printf '%-34s ' "$name"
    if "${locked[@]}" "$@" --report "$json" > "$log" 2>&1 && [ -s "$json" ]; then
        reports+=("$json")
        "$bin" summary "$json" --field step_seconds.median,step_seconds.mean,step_seconds.sd,images_per_second,gflops_per_second,peak_rss_bytes |
            awk -F '\t' -v s="$((SECONDS - start))" '{ printf "s/batch median %.3f mean %.3f ± %.3f  images/s %6.2f  GFLOP/s %6.1f  peak RSS %5d MiB  (%s s)\n", $1, $2, $3, $4, $5, int($6 / 1048576), s }'
    else
        failed+=("$name")
        echo "FAILED (exit status or no report; $log):"
        tail -n 5 "$log" | sed 's/^/    /'
    fi
}

# vggdp LABEL ENVS NAME ARGS...: vgg-dp with one kernel set-up (ENVS: env(1) arguments).
vggdp() {
    local label=$1 envs=$2 name=$3; shift 3
    # shellcheck disable=SC2086  # envs is a list of env(1) arguments
    run "vggdp-$label-$name" env $envs "$bin" "$@" --warmup "$warmup"
}

# one_case NAME MODE BATCH THREADS STEPS: every tool on one case.
one_case() {
    local name=$1 mode=$2 batch=$3 threads=$4 n=$5 i
    echo "== $mode, batch $batch, $threads thread(s), warm-up $warmup + $n steps"
    for i in "${!kernel_labels[@]}"; do
        vggdp "${kernel_labels[$i]}" "${kernel_envs[$i]}" "$name" \
            --mode "$mode" --batch-size "$batch" --threads "$threads" --steps "$n"
    done
    for f in $frameworks; do
        # Each baseline at its fastest here: TensorFlow with oneDNN on (its
        # default turns oneDNN on only on some Intel CPUs), PyTorch as it
        # comes (oneDNN on). The report's blas_config records the setting.
        local file=tf_vgg16.py short=tf settings=(TF_ENABLE_ONEDNN_OPTS=1)
        [ "$f" = pytorch ] && file=torch_vgg16.py short=torch settings=()
        run "$short-$name" env "${settings[@]}" "$python" "scripts/baselines/$file" --mode "$mode" --batch-size "$batch" \
            --threads "$threads" --burn-in "$warmup" --steps "$n"
    done
}

one_case fb-b16-t1 forward-backward 16 1 "$steps"
one_case fb-b16-t2 forward-backward 16 2 "$steps"
one_case f-b32-t1 forward 32 1 "$steps"
[ "$quick" -eq 1 ] || one_case fb-b32-t1 forward-backward 32 1 "$rss_steps"

echo "== train, batch 16 per rank: 1 rank × 1 thread, 2 ranks × 1 thread: allreduce with and without overlap, host-shared (vgg-dp), warm-up $warmup + $steps steps"
for i in "${!kernel_labels[@]}"; do
    for variant in r1t1 r2t1 r2t1-no-overlap r2t1-host-shared; do
        n=${variant:1:1} extra=()
        case "$variant" in
            r2t1) extra=(--overlap) ;;
            r2t1-no-overlap) extra=(--exchange allreduce --no-overlap) ;;
            r2t1-host-shared) extra=(--exchange host-shared) ;;
        esac
        # shellcheck disable=SC2086
        run "vggdp-${kernel_labels[$i]}-train-b16-$variant" env ${kernel_envs[$i]} VGGDP_BIN="$bin" \
            bash scripts/launch.sh -n "$n" -- train --batch-size 16 --threads 1 --warmup "$warmup" --steps "$steps" "${extra[@]}"
    done
done

# --- the comparison ------------------------------------------------------------
[ "${#reports[@]}" -gt 0 ] || { echo "compare.sh: no run succeeded" >&2; exit 1; }
"$bin" report --kind compare "${reports[@]}" --markdown "$out/compare.md" --csv "$out/compare.csv"
echo
sed '/^## Runs/,$d' "$out/compare.md"
echo "reports, logs and compare.{md,csv}: $out"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "compare.sh: ${#failed[@]} run(s) failed: ${failed[*]}" >&2
    exit 1
fi
