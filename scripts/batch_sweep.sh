#!/usr/bin/env bash
# The notebook's batch-size sweep: time per batch of one rank for each batch
# size, then its two plots.
#
#   scripts/batch_sweep.sh [options] [-- vgg-dp args...]
#
#   --sizes "B ..."      batch sizes, space- or comma-separated (default "1 2 3 4 5 6 7 8 9")
#   --mode MODE          forward-backward (default, as the notebook), forward or train
#   --label NAME         this machine's name in the CSV's file name and the plot
#                        legends (default: hostname)
#   --out DIR            where it all goes (default <repo>/runs/sweep-<timestamp>)
#   --compare CSV        another sweep (e.g. another machine's sweep-<label>.csv)
#                        to draw with this one; may be given more than once. The
#                        ratio plot is this sweep's time / the first CSV's time.
#   --no-plots           skip the PNGs (no python3/matplotlib needed)
#   --                   the rest goes to every run, e.g.
#                        -- --model vgg11 --image-size 32 --warmup 2 --steps 20
#
# Writes DIR/batch-B.json and DIR/batch-B.log per size, DIR/sweep-<label>.csv
# (batch_size, mean, sd, images_per_second: seconds per batch, sd as the
# notebook computes it), DIR/report.md, and with plots
#   scripts/plot.py sweep DIR/sweep-<label>.csv [--compare CSVs] --out DIR
# DIR/sweep-time.png (time per batch vs batch size), DIR/sweep-ratio.png (with
# --compare) and DIR/sweep-throughput.png.
#
# To plot sweeps from several machines together afterwards:
#   scripts/plot.py sweep runs/a/sweep-macbook.csv runs/b/sweep-desktop.csv --out DIR
#
# Environment:
#   VGGDP_BIN    the binary (default <repo>/.build/release/vgg-dp)
#   VGGDP_LOCK   lock file each run holds (default /tmp/bench.lock; empty: no
#                lock). Do not wrap this script in flock on the same file.
set -euo pipefail

script=batch_sweep.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

sizes_list="1 2 3 4 5 6 7 8 9" mode="forward-backward" label="" out="" plots=1
compare=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --sizes|--sizes=*) take_value "$@"; sizes_list="$value"; shift "$taken" ;;
        --mode|--mode=*) take_value "$@"; mode="$value"; shift "$taken" ;;
        --label|--label=*) take_value "$@"; label="$value"; shift "$taken" ;;
        --out|--out=*) take_value "$@"; out="$value"; shift "$taken" ;;
        --compare|--compare=*) take_value "$@"; compare+=("$value"); shift "$taken" ;;
        --no-plots) plots=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) unknown_option "$1" "vgg-dp options go after --; see --help" ;;
    esac
done
extra=("$@")

case "$mode" in
    forward|forward-backward|train) ;;
    *) die "--mode must be forward, forward-backward or train, got '$mode'" ;;
esac
for a in "${extra[@]}"; do
    case "$a" in
        --batch-size|--batch-size=*|--global-batch|--global-batch=*|--report|--report=*|--mode|--mode=*)
            die "$a is set by batch_sweep.sh; give --sizes / --mode to batch_sweep.sh, not after --" ;;
    esac
done
read -r -a sizes <<<"${sizes_list//,/ }"
[ "${#sizes[@]}" -ge 1 ] || die "--sizes is empty"
for b in "${sizes[@]}"; do
    positive "$b" || die "--sizes: '$b' is not a positive integer"
done
for c in "${compare[@]}"; do
    [ -f "$c" ] || die "--compare: no such file: $c"
done

label="${label:-$(hostname 2>/dev/null || uname -n)}"
# The label becomes part of a file name; keep it to safe characters.
safe_label="$(printf '%s' "$label" | tr -c 'A-Za-z0-9._-' '_')"
[ -n "$safe_label" ] || safe_label=run

require_bin
lock_command

out="${out:-$repo_root/runs/sweep-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out" || die "cannot create $out"


echo "batch_sweep.sh: $mode, batch sizes ${sizes[*]}, one rank, label $safe_label, into $out"
files=()
for b in "${sizes[@]}"; do
    json="$out/batch-$b.json" log="$out/batch-$b.log"
    rm -f "$json"
    status=0
    "${locked[@]}" "$bin" "${extra[@]}" --mode "$mode" --batch-size "$b" --report "$json" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ] || [ ! -f "$json" ]; then
        echo "batch_sweep.sh: batch size $b failed (exit status $status); last lines of $log:" >&2
        tail -n 5 "$log" >&2
        exit 1
    fi
    echo "batch $b: $(grep -E 'sec / batch' "$log" | sed 's/^.*: //')"
    files+=("$json")
done

csv="$out/sweep-$safe_label.csv"
"$bin" report "${files[@]}" --kind sweep --csv "$csv" --markdown "$out/report.md"

if [ "$plots" -eq 1 ]; then
    if ! command -v python3 >/dev/null 2>&1; then
        echo "batch_sweep.sh: python3 not found: no plots (run scripts/setup.sh); the CSV is $csv" >&2
        exit 1
    fi
    # Legend names, comma-separated for plot.py: commas inside become spaces.
    labels="${label//,/ }"
    for c in "${compare[@]}"; do
        stem="$(basename "$c" .csv)"
        stem="${stem#sweep-}"
        labels="$labels,${stem//,/ }"
    done
    pngs="$(python3 "$repo_root/scripts/plot.py" sweep "$csv" "${compare[@]}" --labels "$labels" --out "$out")" || {
        echo "batch_sweep.sh: plotting failed (above); the CSV is $csv" >&2
        exit 1
    }
    {
        echo
        echo "## Plots"
        while IFS= read -r png; do
            [ -n "$png" ] || continue
            name="$(basename "$png")"
            echo
            echo "![${name%.png}]($name)"
        done <<<"$pngs"
    } >>"$out/report.md"
    printf '%s\n' "$pngs"
fi
echo "batch_sweep.sh: $csv, $out/report.md"
