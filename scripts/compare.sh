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
# Cases (VGG-16 at 224×224; every tool runs each case before the next case):
#   forward-backward, batch 16, 1 thread and 2 threads
#   forward, batch 32, 1 thread
#   forward-backward, batch 32, 1 thread (for peak RSS; --rss-steps timed steps)
#   vgg-dp only: train, batch 16 per rank, 1 rank × 1 thread and 2 ranks × 1
#   thread, the latter with --overlap and with --no-overlap
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

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}
die() { echo "compare.sh: $*" >&2; exit 2; }
count() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

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
        --out|--frameworks|--coretype|--warmup|--steps|--rss-steps)
            [ $# -ge 2 ] || die "$1 needs a value"
            case "$1" in
                --out) out=$2 ;;
                --frameworks) frameworks=$2 ;;
                --coretype) coretype=$2 ;;
                --warmup) count "$1" "$2"; warmup=$2 ;;
                --steps) count "$1" "$2"; steps=$2 ;;
                --rss-steps) count "$1" "$2"; rss_steps=$2 ;;
            esac
            shift 2 ;;
        --no-unset) unset_runs=0; shift ;;
        --build) build=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
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
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out=${out:-runs/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || die "cannot create $out"

# --- vgg-dp and the baselines ------------------------------------------------
bin="${VGGDP_BIN:-$repo_root/.build/release/vgg-dp}"
if [ "$build" -eq 1 ] || [ ! -x "$bin" ]; then
    [ -z "${VGGDP_BIN:-}" ] || [ "$build" -eq 1 ] || die "VGGDP_BIN=$bin is not an executable"
    echo "== swift build -c release"
    swift build -c release
fi
[ -x "$bin" ] || die "vgg-dp is not built ($bin): run swift build -c release"
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

lock="${VGGDP_LOCK-/tmp/bench.lock}"
locked=()
if [ -n "$lock" ]; then
    command -v flock >/dev/null 2>&1 || die "flock not found (util-linux); set VGGDP_LOCK= to run without $lock"
    locked=(flock "$lock")
fi

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
        python3 - "$json" "$((SECONDS - start))" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); s = d["step_seconds"]
print("s/batch median %.3f mean %.3f ± %.3f  images/s %6.2f  GFLOP/s %6.1f  peak RSS %5d MiB  (%s s)"
      % (s["median"], s["mean"], s["sd"], d["images_per_second"], d["gflops_per_second"], d["peak_rss_bytes"] >> 20, sys.argv[2]))
PY
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
        local script=tf_vgg16.py short=tf
        [ "$f" = pytorch ] && script=torch_vgg16.py short=torch
        run "$short-$name" "$python" "scripts/baselines/$script" --mode "$mode" --batch-size "$batch" \
            --threads "$threads" --burn-in "$warmup" --steps "$n"
    done
}

one_case fb-b16-t1 forward-backward 16 1 "$steps"
one_case fb-b16-t2 forward-backward 16 2 "$steps"
one_case f-b32-t1 forward 32 1 "$steps"
[ "$quick" -eq 1 ] || one_case fb-b32-t1 forward-backward 32 1 "$rss_steps"

echo "== train, batch 16 per rank: 1 rank × 1 thread, 2 ranks × 1 thread with and without overlap (vgg-dp), warm-up $warmup + $steps steps"
for i in "${!kernel_labels[@]}"; do
    for variant in r1t1 r2t1 r2t1-no-overlap; do
        n=${variant:1:1} extra=()
        case "$variant" in r2t1) extra=(--overlap) ;; r2t1-no-overlap) extra=(--no-overlap) ;; esac
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
