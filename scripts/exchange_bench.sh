#!/usr/bin/env bash
# The exchange benchmarks (issue: one replica per host), one run after
# another under /tmp/bench.lock: VGG-16 at 224, train, batch 4 per rank,
# 1 BLAS thread per rank:
#   E1 weak scaling on one host: 1 rank; 2 ranks with --exchange allreduce;
#      2 ranks with --exchange host-shared; with --rounds R, R rounds of the
#      three one after another, each round's efficiencies (its 2-rank median
#      step over its 1-rank one) and their medians over the rounds: a
#      neighbour's load that comes and goes moves all three runs of a round;
#   E2 the main job's layout, 4 ranks: allreduce against host-shared;
#   E3 (with --cluster) 2 simulated hosts x 2 ranks at 1 Gbit/s, allreduce
#      against host-shared (overlapped with backward, the default across
#      hosts, and after backward), with the bytes each host's link carried;
#      then both overlapped at 10 Gbit/s (c10_*), where the link's CPU, not
#      its bandwidth, is what the cores feel;
#   E4 the model against E1-E3: allreduce-bench fits (2 ranks on this host;
#      with --cluster, 2 simulated hosts x 1 rank at 1 and at 10 Gbit/s,
#      polled, so that each row's host CPU is what moving the bytes costs
#      rather than a spinning wait: the model's host CPU per byte); E1's
#      bound (w1 over the slower of 2 unconnected copies: what two ranks
#      reach with no exchange at all); then `vgg-dp model` from E1's
#      one-rank profile and the co-run profiles with the measured runs
#      (each predicted for its own layout). Needs E1-E3's reports in OUT.
# Co-run profiles: K copies of the one-rank run at once, unconnected; the
# slowest copy's report is the compute of ranks that share a host that way.
# Each is measured right after the runs it predicts: 2 copies after E1
# (corun2_*), 4 after E2 (corun4_*) and 4 again after E3 (corun4c_*); E4
# measures those that are missing.
# "after bwd" is the optimizer column: everything after backward (exchange
# and update). PSS is summed over the ranks. Reports and logs go to OUT
# (default runs/exchange-<time>). OPENBLAS_CORETYPE is left as set; every
# report records the kernel that ran.
#
#   scripts/exchange_bench.sh [--steps N] [--rounds R] [--cluster] [--only E1|E2|E3|E4] [OUT]
#
# Round 1's reports are w1, w2_allreduce and w2_hostshared (E4's profile is
# w1); round k > 1 adds _rk to the names.
#
# Environment:
#   VGGDP_BIN    the binary (default <repo>/.build/release/vgg-dp)
#   VGGDP_LOCK   lock file held for the whole set (default /tmp/bench.lock; empty: no lock)
set -euo pipefail
script=exchange_bench.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
steps=6
rounds=1
cluster=0
only=""
out=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --steps|--steps=*) take_value "$@"; steps=$value; shift "$taken" ;;
        --rounds|--rounds=*) take_value "$@"; rounds=$value; shift "$taken" ;;
        --cluster) cluster=1; shift ;;
        --only|--only=*) take_value "$@"; only=$value; shift "$taken" ;;
        -*) unknown_option "$1" ;;
        *) [ -z "$out" ] || die "takes one OUT folder (see --help)"; out=$1; shift ;;
    esac
done
positive "$steps" || die "--steps must be a positive integer, got '$steps'"
positive "$rounds" || die "--rounds must be a positive integer, got '$rounds'"
case "$only" in
    "") ;;
    E1|E2|E4) ;;
    E3) cluster=1 ;;
    *) die "--only takes E1, E2, E3 or E4, got '$only'" ;;
esac
part() { [ -z "$only" ] || [ "$only" = "$1" ]; }
cd "$repo_root"
vggdp_bin
require_bin
B=$bin
O=${out:-runs/exchange-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$O"
hold_lock
A="train --model vgg16 --image-size 224 --batch-size 4 --threads 1 --warmup 2 --steps $steps"
summ() {
  "$B" summary "$O/$1.json" --field ranks,exchange,step_seconds.median,images_per_second,per_rank.forward,per_rank.backward,per_rank.optimizer,exposed_seconds_per_step,peak_rss_bytes,peak_pss_bytes_sum,per_rank.exchange_bytes_per_step |
    awk -F '\t' -v t="$1" '{ printf "%-14s ranks %d %-11s step median %.3f s  img/s %.3f  fwd %.3f bwd %.3f after bwd %.3f exposed %.3f  rss(max) %d MiB  pss(sum) %s MiB  sent/rank/step %.1f MB\n", t, $1, ($2 == "" ? "-" : $2), $3, $4, $5, $6, $7, $8, int($9 / 1048576), ($10 == "" ? "-" : int($10 / 1048576)), $11 / 1e6 }'
}
run() { local name=$1 n=$2; shift 2; bash scripts/launch.sh -n "$n" -- $A --report "$O/$name.json" "$@" > "$O/$name.txt" 2>&1 || { echo "$name failed:"; tail -5 "$O/$name.txt"; return 1; }; summ "$name"; }
# K one-rank copies at once, unconnected (corun K TAG): compute under the
# contention of K ranks on this host, measured right after the runs it will
# predict (this machine's speed drifts by ±10% within minutes). Prints the
# slowest copy's report; reuses corunK<TAG>_*.json where OUT has them.
corun() {
    local k=$1 tag=$2 i pids=() f
    if ! ls "$O"/corun"$k$tag"_*.json > /dev/null 2>&1; then
        for i in $(seq 1 "$k"); do
            bash scripts/launch.sh -n 1 -- $A --report "$O/corun$k${tag}_$i.json" > "$O/corun$k${tag}_$i.txt" 2>&1 & pids+=("$!")
        done
        for i in "${pids[@]}"; do wait "$i" || die "a co-run copy of $k failed (see $O/corun$k${tag}_*.txt)"; done
    fi
    for f in "$O"/corun"$k$tag"_*.json; do echo "$("$B" summary "$f" --field step_seconds.mean) $f"; done | sort -g | tail -1 | cut -d' ' -f2
}
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /'
if part E1; then
    echo "== E1 weak scaling, one host"
    median_step() { "$B" summary "$O/$1.json" --field step_seconds.median; }
    effs=()
    for r in $(seq 1 "$rounds"); do
        s=""; [ "$r" -eq 1 ] || s=_r$r
        run "w1$s" 1
        run "w2_allreduce$s" 2 --exchange allreduce
        run "w2_hostshared$s" 2 --exchange host-shared
        e=$(awk -v a="$(median_step "w1$s")" -v b="$(median_step "w2_allreduce$s")" -v c="$(median_step "w2_hostshared$s")" \
            'BEGIN { printf "%.3f %.3f", a / b, a / c }')
        echo "round $r: weak-scaling efficiency allreduce ${e% *}  host-shared ${e#* }"
        effs+=("$e")
    done
    summ "$(basename "$(corun 2 "")" .json)"
    if [ "$rounds" -gt 1 ]; then
        printf '%s\n' "${effs[@]}" | awk '{ a[NR] = $1; h[NR] = $2 }
            function med(x, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
                return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
            END { printf "median over %d rounds: weak-scaling efficiency allreduce %.3f  host-shared %.3f\n", NR, med(a, NR), med(h, NR) }'
    fi
fi
if part E2; then
    echo "== E2 the main job's layout: 4 ranks x batch 4"
    run m4_allreduce 4 --exchange allreduce
    run m4_hostshared 4 --exchange host-shared
    summ "$(basename "$(corun 4 "")" .json)"
fi
if [ "$cluster" -eq 1 ] && part E3; then
    echo "== E3 2 simulated hosts x 2 ranks, 1 Gbit/s"
    for variant in allreduce host-shared host-shared_after; do
        flags="--exchange ${variant%_after}"
        [ "$variant" = host-shared_after ] && flags="$flags --no-overlap"
        VGGDP_BIN=$(realpath "$B") bash scripts/cluster.sh run 2 --ranks-per-host 2 --rate 1gbit --bytes -- $A $flags \
            --report "$O/c_$variant.json" > "$O/c_$variant.txt" 2>&1 || { echo "c_$variant failed:"; tail -5 "$O/c_$variant.txt"; }
        summ "c_$variant"; grep -E '^cluster: ' "$O/c_$variant.txt" || true
    done
    for variant in allreduce host-shared; do
        VGGDP_BIN=$(realpath "$B") bash scripts/cluster.sh run 2 --ranks-per-host 2 --rate 10gbit --bytes -- $A --exchange "$variant" \
            --report "$O/c10_$variant.json" > "$O/c10_$variant.txt" 2>&1 || { echo "c10_$variant failed:"; tail -5 "$O/c10_$variant.txt"; }
        summ "c10_$variant"; grep -E '^cluster: ' "$O/c10_$variant.txt" || true
    done
    bash scripts/cluster.sh down > /dev/null 2>&1
    summ "$(basename "$(corun 4 c)" .json)"
fi
if part E4; then
    echo "== E4 the model against the measured runs"
    [ -f "$O/w1.json" ] || die "E4 needs E1's one-rank profile $O/w1.json (run E1 first, same OUT)"
    bash scripts/launch.sh -n 2 -- allreduce-bench --iterations 3 --min-bytes 1048576 --json "$O/fit_host.json" > "$O/fit_host.txt" 2>&1 \
        || { tail -5 "$O/fit_host.txt"; die "allreduce-bench on this host failed"; }
    grep -E '^fit' "$O/fit_host.txt" || true
    corun2=$(corun 2 ""); corun4=$(corun 4 "")
    # What E1 can reach here: two unconnected copies exchange nothing, so their efficiency bounds any exchange's.
    awk -v a="$("$B" summary "$O/w1.json" --field step_seconds.median)" -v b="$("$B" summary "$corun2" --field step_seconds.median)" \
        'BEGIN { printf "bound on E1: 2 unconnected copies, the slower one: weak-scaling efficiency %.3f\n", a / b }'
    co=(--corun "2:$corun2" --corun "4:$corun4")
    one=()
    for f in w2_allreduce w2_hostshared m4_allreduce m4_hostshared; do [ -f "$O/$f.json" ] && one+=("$O/$f.json"); done
    # --refit absolute: the largest buckets (fc6's 411 MB) set the step's allreduce time, and on this host
    # they run at a fraction of the in-cache sizes' bandwidth, which a relative fit follows.
    [ "${#one[@]}" -eq 0 ] || "$B" model "$O/w1.json" --fit "$O/fit_host.json" --refit absolute --ranks "1 2 4" --ranks-per-host 4 \
        --cores-per-host "$(nproc)" "${co[@]}" --measured "${one[@]}" --markdown "$O/model_host.md" > /dev/null
    [ -f "$O/model_host.md" ] && sed -n '/## Measured vs predicted/,$p' "$O/model_host.md"
    if [ "$cluster" -eq 1 ]; then
        for n in "" 10; do  # fit_cluster, model_cluster at 1 Gbit/s; fit_cluster10, model_cluster10 at 10
            rate=${n:-1}gbit
            VGGDP_BIN=$(realpath "$B") bash scripts/cluster.sh run 2 --rate "$rate" --down -- allreduce-bench --iterations 2 \
                --min-bytes 1048576 --comm-wait polling --json "$(realpath "$O")/fit_cluster$n.json" > "$O/fit_cluster$n.txt" 2>&1 \
                || { tail -5 "$O/fit_cluster$n.txt"; die "allreduce-bench on the simulated cluster ($rate) failed"; }
            grep -E '^fit' "$O/fit_cluster$n.txt" || true
            two=()
            if [ -z "$n" ]; then runs="c_allreduce c_host-shared c_host-shared_after"; else runs="c10_allreduce c10_host-shared"; fi
            for f in $runs; do [ -f "$O/$f.json" ] && two+=("$O/$f.json"); done
            # The simulated hosts share this machine's cores.
            [ "${#two[@]}" -eq 0 ] || "$B" model "$O/w1.json" --fit "$O/fit_cluster$n.json" --ranks "1 2 4" --ranks-per-host 2 \
                --cores-per-host "$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))" --corun "2:$corun2" --corun "4:$(corun 4 c)" --measured "${two[@]}" --markdown "$O/model_cluster$n.md" > /dev/null
            [ -f "$O/model_cluster$n.md" ] && { echo "-- $rate"; sed -n '/## Measured vs predicted/,$p' "$O/model_cluster$n.md"; }
        done
    fi
fi
echo "reports: $O"
