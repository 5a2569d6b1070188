#!/usr/bin/env bash
# A simulated cluster on one machine: N hosts as Linux network namespaces,
# joined by a bridge, with a rate limit (and, where the kernel has netem, a
# delay) on every host's link; vgg-dp runs on it with K ranks per host (default 1).
#
#   scripts/cluster.sh up N [--rate R] [--delay D]
#   scripts/cluster.sh run N [--ranks-per-host K] [--bytes] [--rate R] [--delay D] [--allreduce ring|default] [--down] -- VGG-DP-ARGS...
#   scripts/cluster.sh down
#   scripts/cluster.sh status
#   scripts/cluster.sh check          can this machine make namespaces? (exit 0/1)
#   scripts/cluster.sh agent HOST COMMAND...   (mpirun's rsh agent; not for people)
#
#   up N        makes hosts 1..N (N ≤ 64; removes any beyond N), then sets the links:
#               namespace <prefix>-hI with eth0 = 10.77.<id>.I/24, its veth peer
#               on bridge <prefix>-br (10.77.<id>.254, where mpirun runs), and
#               /etc/hosts entries for the host names. The subnet exists only
#               inside the bridge: namespaces have no default route, so no
#               traffic can leave it.
#   run N       as up (hosts beyond N are kept), then one vgg-dp job with K
#               ranks per host (default 1): prints the mpirun command (on stderr, "+ ...")
#               and exits with its status. VGG-DP-ARGS are vgg-dp's, e.g.
#               `-- --model vgg11 --steps 5` or `-- allreduce-bench`.
#               --down takes the cluster down afterwards, whatever happened.
#               --ranks-per-host K: K ranks on every host (N·K in all), host
#               by host: ranks 0..K-1 on host 1, K..2K-1 on host 2, ...
#               --bytes: after the job, prints one line "cluster: bytes sent
#               by each host during the job: ..." from the kernel's counter
#               of every host's link (eth0 tx_bytes, all traffic included).
#               --allreduce ring (default) makes OpenMPI use the ring algorithm
#               in MPI_Allreduce and MPI_Iallreduce (the cost model's ring; the
#               non-blocking default for in-place sums is a binomial tree that
#               moves up to 2·log2(N) buffers per link); --allreduce default
#               leaves OpenMPI's own choice.
#   down        removes every namespace, veth, bridge, qdisc and /etc/hosts
#               line this script made (for this cluster id); safe to repeat.
#   --rate R    each host's link rate, both directions (tc tbf), read as
#               `vgg-dp model --link` reads it: a number and bit, kbit, mbit,
#               gbit or tbit (powers of 1000, any case, "/s" allowed): 1gbit,
#               10gbit, 25gbit, 500mbit... (default 10gbit; "none": unlimited
#               veth speed). Byte rates (tc's mbps) are refused. up and run
#               with a rate need the vgg-dp binary (it reads the rate).
#   --delay D   one-way latency added between two hosts (tc netem, D/2 at each
#               end), e.g. 50us, 1ms (default: none). Needs the kernel's netem
#               qdisc; up fails with the reason if it is missing.
#
# Hosts get distinct host names (UTS namespaces), so vgg-dp's report shows
# one host per rank; BLAS threads default to the machine's cores on every
# simulated host, so pass --threads on a small machine.
#
# Environment:
#   VGGDP_BIN         binary (default <repo>/.build/release/vgg-dp)
#   VGGDP_CLUSTER_ID  0..253 (default 0): a separate cluster with its own
#                     names (vggdp-hI for 0, vggdp<id>-hI otherwise) and
#                     subnet 10.77.<id>.0/24, so two can coexist (the tests use one)
#   MPIRUN_ARGS       extra mpirun options, split on whitespace
# Needs root (ip netns, tc, /etc/hosts), iproute2, util-linux (unshare,
# flock) and OpenMPI.
set -euo pipefail

script=cluster.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
self="$script_path"

id="${VGGDP_CLUSTER_ID:-0}"
case "$id" in ''|*[!0-9]*) die "VGGDP_CLUSTER_ID must be a number 0..253, got '$id'" ;; esac
[ "$id" -le 253 ] || die "VGGDP_CLUSTER_ID must be a number 0..253, got '$id'"
if [ "$id" -eq 0 ]; then prefix=vggdp; else prefix="vggdp$id"; fi
subnet="10.77.$id"
bridge="$prefix-br"
marker="# vgg-dp cluster.sh $id"
state="/run/vggdp-cluster-$id"
max_hosts=64

host_name() { echo "$prefix-h$1"; }
veth_name() { echo "$prefix-v$1"; }

# Hosts of this cluster that exist now, as numbers, ascending.
existing_hosts() {
    ip netns list 2>/dev/null | awk -v p="$prefix-h" '
        index($1, p) == 1 { n = substr($1, length(p) + 1); if (n ~ /^[0-9]+$/) print n }' | sort -n
}

need_root() {
    [ "$(id -u)" -eq 0 ] || fail "$1 needs root (network namespaces, tc and /etc/hosts)"
    command -v ip >/dev/null 2>&1 || fail "ip not found: install iproute2 (scripts/setup.sh does)"
}

# A rate in bits/s, or fail: vgg-dp reads it (`vgg-dp describe --rate`, the
# rules of Units.bitsPerSecond that `vgg-dp model --link` uses: a number and
# bit, kbit, mbit, gbit or tbit, powers of 1000, any case, "/s" allowed).
# tc is then given "<bits>bit", which it reads with the same powers of 1000.
# Needs bin (require_bin).
rate_bits() {
    "$bin" describe --rate "$1" 2>/dev/null
}

# Microseconds of a tc time (us, ms, s; a bare number is µs), or fail.
delay_us() {
    awk -v d="$1" 'BEGIN {
        if (match(d, /^[0-9]+(\.[0-9]+)?/) == 0) exit 1
        v = substr(d, 1, RLENGTH) + 0; u = tolower(substr(d, RLENGTH + 1))
        m[""] = 1; m["us"] = 1; m["usec"] = 1; m["ms"] = 1e3; m["msec"] = 1e3; m["s"] = 1e6; m["sec"] = 1e6
        if (!(u in m) || v < 0) exit 1
        printf "%.0f\n", v * m[u] }'
}

check_count() {
    positive "$1" || die "N must be a positive integer, got '$1'"
    [ "$1" -le "$max_hosts" ] || die "N must be at most $max_hosts, got $1"
}

# Sets rate (and delay) on one veth end: tbf alone, or netem with its own rate
# when a delay is asked for.
shape() {
    local netns="$1" dev="$2" rate="$3" half_delay_us="$4" tc=(tc)
    [ -n "$netns" ] && tc=(tc -n "$netns")
    "${tc[@]}" qdisc del dev "$dev" root 2>/dev/null || true
    if [ "$half_delay_us" -gt 0 ]; then
        local args=(netem delay "${half_delay_us}us" limit 100000)
        [ "$rate" != none ] && args+=(rate "$(rate_bits "$rate")bit")
        "${tc[@]}" qdisc add dev "$dev" root "${args[@]}"
    elif [ "$rate" != none ]; then
        # Burst: 2 ms at the rate, at least 128 KiB (HZ-independent and
        # larger than a GSO packet); queue: 20 ms at the rate, at least 4 MiB.
        local bits burst limit
        bits="$(rate_bits "$rate")"
        burst=$(( bits / 8 / 500 )); [ "$burst" -ge 131072 ] || burst=131072
        limit=$(( bits / 8 / 50 )); [ "$limit" -ge 4194304 ] || limit=4194304
        "${tc[@]}" qdisc add dev "$dev" root tbf rate "${bits}bit" burst "$burst" limit "$limit"
    fi
}

# Fails with the reason when netem is missing, before any host is touched.
check_netem() {
    local probe="$prefix-np" err
    ip link add "$probe" type veth peer name "$probe-p" 2>/dev/null || fail "cannot create a veth pair to probe tc netem"
    if ! err="$(tc qdisc add dev "$probe" root netem delay 10us 2>&1)"; then
        ip link del "$probe" 2>/dev/null || true
        local why="tc says: ${err%.}" config=""
        [ -r /proc/config.gz ] && config="$(zcat /proc/config.gz 2>/dev/null || true)"
        if grep -q '^# CONFIG_NET_SCH_NETEM is not set' <<<"$config"; then
            why="this kernel is built without netem (CONFIG_NET_SCH_NETEM is not set in /proc/config.gz)"
            grep -q '^# CONFIG_MODULES is not set' <<<"$config" && why="$why and cannot load modules (CONFIG_MODULES is not set)"
        fi
        die "--delay needs the netem qdisc: $why. Run without --delay: links then have the veth/bridge latency only (tens of µs)."
    fi
    ip link del "$probe" 2>/dev/null || true
}

add_hosts_entry() {
    local name="$1" addr="$2"
    grep -qE "^${addr}[[:space:]]+${name}[[:space:]]" /etc/hosts 2>/dev/null && return 0
    # Append in place: /etc/hosts may be a bind mount that rename cannot replace.
    printf '%s %s  %s\n' "$addr" "$name" "$marker" >>/etc/hosts
}

remove_hosts_entries() {
    # $1: a host name, or empty for every line of this cluster.
    local pattern
    if [ -n "${1:-}" ]; then pattern="[[:space:]]$1[[:space:]]+$marker\$"; else pattern="[[:space:]]$marker\$"; fi
    grep -qE "$pattern" /etc/hosts 2>/dev/null || return 0
    local tmp
    tmp="$(mktemp)"
    grep -vE "$pattern" /etc/hosts >"$tmp" || true
    cat "$tmp" >/etc/hosts
    rm -f "$tmp"
}

add_host() {
    local i="$1" name veth addr
    name="$(host_name "$i")" veth="$(veth_name "$i")" addr="$subnet.$i"
    ip netns add "$name"
    ip link add "$veth" type veth peer name eth0 netns "$name"
    ip link set "$veth" master "$bridge" up
    ip -n "$name" link set lo up
    ip -n "$name" addr add "$addr/24" dev eth0
    ip -n "$name" link set eth0 up
    add_hosts_entry "$name" "$addr"
}

remove_host() {
    local i="$1" name
    name="$(host_name "$i")"
    # Processes still inside would keep the namespace alive: end them first.
    local pids
    pids="$(ip netns pids "$name" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        sleep 0.5
        pids="$(ip netns pids "$name" 2>/dev/null || true)"
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    fi
    ip link del "$(veth_name "$i")" 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
    remove_hosts_entries "$name"
}

# Refuses a bad N, rate or delay before anything is touched.
validate_links() {
    check_count "$1"
    if [ "$2" != none ]; then
        local bits
        require_bin
        bits="$(rate_bits "$2")" && [ "$bits" -ge 1 ] \
            || die "--rate: '$2' is not a rate: write a number and bit, kbit, mbit, gbit or tbit (e.g. 1gbit, 10gbit, 500mbit), or none"
    fi
    delay_us "$3" >/dev/null || die "--delay: '$3' is not a time tc understands (e.g. 50us, 1ms)"
}

# up: hosts 1..N exist (extras removed when $3 is "exact"), links shaped.
bring_up() {
    local n="$1" rate="$2" delay="$3" mode="$4" half=0
    need_root up
    validate_links "$n" "$rate" "$delay"
    local us
    us="$(delay_us "$delay")"
    if [ "$us" -gt 0 ]; then check_netem; half=$(( (us + 1) / 2 )); fi
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip addr add "$subnet.254/24" dev "$bridge"
        ip link set "$bridge" up
    fi
    mkdir -p "$state"
    local i have
    have=" $(existing_hosts | tr '\n' ' ') "
    for i in $(seq 1 "$n"); do
        case "$have" in *" $i "*) ;; *) add_host "$i" ;; esac
    done
    if [ "$mode" = exact ]; then
        for i in $have; do [ "$i" -le "$n" ] || remove_host "$i"; done
    fi
    for i in $(existing_hosts); do
        shape "" "$(veth_name "$i")" "$rate" "$half"
        shape "$(host_name "$i")" eth0 "$rate" "$half"
    done
    printf 'rate=%s\ndelay=%s\n' "$rate" "$delay" >"$state/links"
    # A hostfile of the hosts that are up, for mpirun by hand (mpirun starts
    # a daemon on every host a hostfile lists, so it must list no more).
    for i in $(existing_hosts); do echo "$(host_name "$i") slots=1"; done >"$state/hostfile"
    # mpirun's rsh agent is this script; a wrapper without spaces in its path,
    # because mpirun splits plm_rsh_agent on whitespace.
    printf '#!/bin/sh\nexec bash %q agent "$@"\n' "$self" >"$state/agent"
    chmod +x "$state/agent"
    local count
    count="$(existing_hosts | wc -l)"
    echo "cluster.sh: $count host(s) up ($(host_name 1)..$(host_name "$count"), $subnet.1-$count on $bridge $subnet.254/24), rate $rate, delay $delay; hostfile $state/hostfile, rsh agent $state/agent" >&2
}

tear_down() {
    need_root down
    local i
    for i in $(existing_hosts); do remove_host "$i"; done
    # A veth whose namespace is gone disappears with it; remove any left over.
    for i in $(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E "^$prefix-v[0-9]+\$" || true); do
        ip link del "$i" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    ip link del "$prefix-np" 2>/dev/null || true
    remove_hosts_entries ""
    rm -rf "$state"
    rm -f "/run/vggdp-cluster-$id.lock"
    echo "cluster.sh: down (no $prefix-* namespaces, links or /etc/hosts lines left)" >&2
}

show_status() {
    local hosts
    hosts="$(existing_hosts | tr '\n' ' ')"
    if [ -z "$hosts" ] && ! ip link show "$bridge" >/dev/null 2>&1; then
        echo "cluster $id: down"
        return 0
    fi
    echo "cluster $id: hosts ${hosts:-none}; bridge $bridge"
    [ -f "$state/links" ] && sed 's/^/  /' "$state/links"
    local i
    for i in $hosts; do
        printf '  %s %s  %s\n' "$(host_name "$i")" "$subnet.$i" \
            "$(tc -n "$(host_name "$i")" qdisc show dev eth0 2>/dev/null | head -n 1)"
    done
}

# mpirun's rsh agent: HOST COMMAND... Runs the command in HOST's network
# namespace, in a UTS namespace whose host name is HOST.
agent() {
    [ "$#" -ge 2 ] || die "agent: usage: agent HOST COMMAND..."
    local host="$1"
    shift
    # The agent serves every cluster id: the host name says which.
    ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qxF "$host" \
        || fail "agent: $host is not a namespace host of a cluster that is up (scripts/cluster.sh up N)"
    # shellcheck disable=SC2016
    exec ip netns exec "$host" unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' sh "$host" "$*"
}

parse_links() {
    # Sets rate, delay, down_after, rest (after --).
    rate=10gbit delay=0 down_after=0 allreduce=ring per_host=1 count_bytes=0
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --ranks-per-host|--ranks-per-host=*) take_value "$@"; per_host="$value"; shift "$taken" ;;
            --bytes) count_bytes=1; shift ;;
            --rate|--rate=*) take_value "$@"; rate="$value"; shift "$taken" ;;
            --delay|--delay=*) take_value "$@"; delay="$value"; shift "$taken" ;;
            --down) down_after=1; shift ;;
            --allreduce|--allreduce=*) take_value "$@"; allreduce="$value"; shift "$taken" ;;
            --) shift; break ;;
            -h|--help) usage; exit 0 ;;
            *) unknown_option "$1" "vgg-dp options go after --; see --help" ;;
        esac
    done
    rest=("$@")
}

run_job() {
    local n="$1"
    shift
    parse_links "$@"
    validate_links "$n" "$rate" "$delay"
    case "$allreduce" in ring|default) ;; *) die "--allreduce must be ring or default, got '$allreduce'" ;; esac
    positive "$per_host" || die "--ranks-per-host must be a positive integer, got '$per_host'"
    need_root run
    require_bin
    command -v mpirun >/dev/null 2>&1 || fail "mpirun not found: run scripts/setup.sh (installs openmpi-bin)"
    command -v unshare >/dev/null 2>&1 || fail "unshare not found: install util-linux"
    # One job at a time per cluster; down waits for a running job.
    exec 9>"/run/vggdp-cluster-$id.lock"
    flock 9
    if [ "$down_after" -eq 1 ]; then trap 'tear_down' EXIT; fi
    bring_up "$n" "$rate" "$delay" atleast

    # btl_tcp_links 2: two TCP connections per pair of ranks. With one, the
    # protocol messages of one direction queue behind the bulk data of the
    # other, and an allreduce on 2 hosts reaches about half the link rate
    # (measured: 0.066 vs 0.119 GB/s on 1gbit); see docs/CLUSTER.md.
    local agent_path="$state/agent"
    local hosts=() i
    for i in $(seq 1 "$n"); do hosts+=("$(host_name "$i"):$per_host"); done
    local host_list
    host_list="$(IFS=,; echo "${hosts[*]}")"

    if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    local ranks=$((n * per_host))
    local cmd=(mpirun -n "$ranks" --host "$host_list" --map-by slot --bind-to none
        --mca plm_rsh_agent "$agent_path" --mca plm_rsh_no_tree_spawn 1
        --mca pml ob1 --mca btl "tcp,self" --mca btl_tcp_links 2
        --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24")
    case "$allreduce" in
        ring)
            # The ring the cost model assumes, in MPI_Allreduce (coll tuned)
            # and in MPI_Iallreduce (coll libnbc, used by --comm-wait polling),
            # whose default for in-place sums is a binomial tree: reduce to
            # rank 0, then broadcast, 2·log2(N) full buffers per link instead
            # of 2(N−1)/N (measured: 233 vs 120 ms per step on 2 hosts at 1gbit).
            cmd+=(--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4
                --mca coll_libnbc_iallreduce_algorithm 1) ;;
        default) ;;
    esac
    local cores
    cores="$(nproc 2>/dev/null || echo 1)"
    [ "$ranks" -le "$cores" ] || cmd+=(--mca mpi_yield_when_idle 1)
    if [ -n "${MPIRUN_ARGS:-}" ]; then
        local extra
        read -r -a extra <<<"$MPIRUN_ARGS"
        cmd+=("${extra[@]}")
    fi
    cmd+=("$bin" "${rest[@]}")
    printf '+' >&2
    printf ' %q' "${cmd[@]}" >&2
    printf '\n' >&2
    local status=0 before=()
    if [ "$count_bytes" -eq 1 ]; then for i in $(seq 1 "$n"); do before+=("$(host_tx_bytes "$i")"); done; fi
    "${cmd[@]}" 9>&- || status=$?
    if [ "$count_bytes" -eq 1 ]; then
        local line="cluster: bytes sent by each host during the job:"
        for i in $(seq 1 "$n"); do line+=" $(host_name "$i") $(( $(host_tx_bytes "$i") - before[i - 1] ))"; done
        echo "$line"
    fi
    return "$status"
}

# Bytes host I has sent on its link so far (the kernel's counter of eth0).
host_tx_bytes() {
    ip netns exec "$(host_name "$1")" cat /sys/class/net/eth0/statistics/tx_bytes
}

# Whether namespaces, veths and a bridge can be made here: exit 0, or 1 with why.
check() {
    [ "$(id -u)" -eq 0 ] || { echo "cluster.sh: not root: ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN" >&2; return 1; }
    command -v ip >/dev/null 2>&1 || { echo "cluster.sh: ip not found (install iproute2)" >&2; return 1; }
    command -v unshare >/dev/null 2>&1 || { echo "cluster.sh: unshare not found (install util-linux)" >&2; return 1; }
    # Names of this process alone (interface names have at most 15 characters).
    local probe="$prefix-probe-$$" pv="vgpv$$" pb="vgpb$$" err ok=0
    if ! err="$(ip netns add "$probe" 2>&1)"; then
        echo "cluster.sh: ip netns add fails: $err" >&2
        return 1
    fi
    if ! err="$(ip link add "$pv" type veth peer name eth0 netns "$probe" 2>&1)"; then
        echo "cluster.sh: cannot create a veth pair: $err" >&2
        ok=1
    elif ! err="$(ip link add "$pb" type bridge 2>&1)"; then
        echo "cluster.sh: cannot create a bridge: $err" >&2
        ok=1
    elif ! err="$(ip netns exec "$probe" unshare --uts true 2>&1)"; then
        echo "cluster.sh: cannot enter the namespace with a UTS namespace: $err" >&2
        ok=1
    fi
    ip link del "$pb" 2>/dev/null || true
    ip link del "$pv" 2>/dev/null || true
    ip netns del "$probe" 2>/dev/null || true
    [ "$ok" -eq 0 ] && echo "cluster.sh: network namespaces, veth pairs and bridges work here" >&2
    return "$ok"
}

[ "$#" -ge 1 ] || { usage >&2; exit 2; }
command="$1"
shift
case "$command" in
    up)
        [ "$#" -ge 1 ] || die "up needs N"
        n="$1"; shift
        parse_links "$@"
        [ "${#rest[@]}" -eq 0 ] || die "up takes no arguments after --"
        [ "$down_after" -eq 0 ] || die "--down is for run"
        [ "$allreduce" = ring ] || die "--allreduce is for run"
        validate_links "$n" "$rate" "$delay"
        need_root up
        exec 9>"/run/vggdp-cluster-$id.lock"; flock 9
        bring_up "$n" "$rate" "$delay" exact ;;
    down)
        [ "$#" -eq 0 ] || die "down takes no arguments"
        need_root down
        exec 9>"/run/vggdp-cluster-$id.lock"; flock 9
        tear_down ;;
    run)
        [ "$#" -ge 1 ] || die "run needs N"
        n="$1"; shift
        run_job "$n" "$@" ;;
    status) show_status ;;
    check) check ;;
    agent) agent "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown command '$command' (up, run, down, status, check; see --help)" ;;
esac
