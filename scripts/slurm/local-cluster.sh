#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, to run scripts/slurm/vgg-dp.sbatch
# for real: Debian's slurm-wlm (slurmctld and slurmd, both as root) with a
# munged of its own, everything in one folder of its own.
#
#   scripts/slurm/local-cluster.sh up        install the packages if missing, write
#                                            slurm.conf and a munge key, start munged,
#                                            slurmctld and slurmd, wait until the node
#                                            is idle; prints the SLURM_CONF to use
#   scripts/slurm/local-cluster.sh down      cancel its jobs, stop every process it
#                                            started, remove its folder; safe to repeat
#   scripts/slurm/local-cluster.sh status    what runs (exit 0 up, 3 down, 1 partly up)
#   scripts/slurm/local-cluster.sh env       prints `export SLURM_CONF=...`, for eval
#   scripts/slurm/local-cluster.sh install   apt-get update, then apt-get install
#                                            slurm-wlm munge (nothing if installed)
#
# Then, e.g.:
#   eval "$(scripts/slurm/local-cluster.sh env)"
#   sbatch --wait --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 scripts/slurm/vgg-dp.sbatch \
#       --model vgg11 --image-size 32 --width-divisor 16 --classes 10 --steps 3
#
# It leaves a machine's own Slurm and munge alone: its slurm.conf is only
# reached through SLURM_CONF (and the daemons' -f), munged gets its own
# --socket, --key-file, --pid-file, --log-file and --seed-file, and the
# state, spool, TmpFS, log and pid files all lie in the folder; the daemons
# listen on their own ports (not Slurm's 6817/6818). Installing the packages
# starts no system service: when /usr/sbin/policy-rc.d is absent, install
# puts one there that denies every start (exit 101) for the time of
# apt-get and removes it after; it then checks that no system munged,
# slurmctld or slurmd was started, and stops any that was.
#
# Environment:
#   VGGDP_SLURM_DIR   the folder (default <repo>/.slurm-local); an absolute
#                     path short enough for munged's socket (< 100 bytes)
#   VGGDP_SLURM_PORT  slurmctld's port (default 16817); slurmd gets the next one
#
# Exit status: 0 done; 1 failed (a daemon did not start: its log's tail is
# printed and whatever started is stopped again); 2 bad usage; 3 status:
# down; 4 the packages are not installed and cannot be (not root, no
# apt-get, or apt-get failed).
set -euo pipefail

script=local-cluster.sh
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

dir="${VGGDP_SLURM_DIR:-$repo_root/.slurm-local}"
case "$dir" in /*) ;; *) die "VGGDP_SLURM_DIR must be an absolute path, got '$dir'" ;; esac
dir="${dir%/}"
port="${VGGDP_SLURM_PORT:-16817}"
positive "$port" && [ "$port" -lt 65535 ] || die "VGGDP_SLURM_PORT must be a port number below 65535, got '$port'"
slurmd_port=$((port + 1))

conf="$dir/slurm.conf"
marker="$dir/.vgg-dp-local-slurm"
munge_dir="$dir/munge"
socket="$munge_dir/munge.socket"
[ "${#socket}" -lt 100 ] || die "VGGDP_SLURM_DIR is too long for munged's socket ($socket): choose a shorter folder"
packages=(slurm-wlm munge)
daemons=(munged slurmctld slurmd)

export SLURM_CONF="$conf"
PATH="$PATH:/usr/sbin:/sbin"

pid_file() {
    case "$1" in
        munged) echo "$munge_dir/munged.pid" ;;
        *) echo "$dir/run/$1.pid" ;;
    esac
}

# The pid of daemon $1 when it runs (from its pid file, checked against /proc).
daemon_pid() {
    local f pid
    f="$(pid_file "$1")"
    [ -f "$f" ] || return 1
    pid="$(tr -dc 0-9 <"$f")"
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

# Slurm and munge processes that hold a file of this folder open (the
# daemons, and slurmstepd, which keeps slurmd's log open), then all their
# descendants (a job's processes); one pid a line.
our_processes() {
    [ -d "$dir" ] || return 0
    local p pid comm fd target roots=()
    for p in /proc/[0-9]*; do
        pid="${p#/proc/}"
        comm="$(cat "$p/comm" 2>/dev/null)" || continue
        case "$comm" in munged|slurmctld|slurmd|slurmstepd) ;; *) continue ;; esac
        for fd in "$p"/fd/*; do
            target="$(readlink "$fd" 2>/dev/null)" || continue
            case "$target" in "$dir"/*) roots+=("$pid"); break ;; esac
        done
    done
    [ "${#roots[@]}" -gt 0 ] || return 0
    # Descendants, from every process's parent in /proc/PID/stat.
    local table
    table="$(for p in /proc/[0-9]*; do
        [ -r "$p/stat" ] && sed -E 's/^([0-9]+) \(.*\) [A-Za-z] ([0-9]+) .*/\1 \2/' "$p/stat" 2>/dev/null
    done)"
    awk -v roots="${roots[*]}" '
        { parent[$1] = $2 }
        END {
            n = split(roots, r, " ")
            for (i = 1; i <= n; i++) keep[r[i]] = 1
            changed = 1
            while (changed) {
                changed = 0
                for (c in parent) if (!(c in keep) && (parent[c] in keep)) { keep[c] = 1; changed = 1 }
            }
            for (k in keep) print k
        }' <<<"$table" | sort -n
}

# TERM to the pids given, KILL to those still there after $1 seconds.
stop_pids() {
    local wait_s="$1"
    shift
    [ "$#" -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    local i alive
    for ((i = 0; i < wait_s * 10; i++)); do
        alive=()
        for p in "$@"; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive+=("$p"); done
        [ "${#alive[@]}" -gt 0 ] || return 0
        sleep 0.1
    done
    warn "killing pid(s) ${alive[*]}: still there ${wait_s} s after SIGTERM"
    kill -KILL "${alive[@]}" 2>/dev/null || true
    sleep 0.5
}

installed() {
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
    for p in munged slurmctld slurmd sbatch srun scontrol sinfo squeue scancel; do
        command -v "$p" >/dev/null 2>&1 || return 1
    done
}

# System daemons (not this script's): pids of munged, slurmctld, slurmd.
system_daemons() { pgrep -x 'munged|slurmctld|slurmd' 2>/dev/null | sort || true; }

versions() {
    say "Debian packages: slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null), munge $(dpkg-query -W -f='${Version}' munge 2>/dev/null); $(slurmctld -V 2>/dev/null | head -n 1) (slurmctld -V), $(munged --version 2>/dev/null | head -n 1) (munged --version)"
}

install_packages() {
    if installed; then
        say "slurm-wlm and munge are installed"
        versions
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        warn "slurm-wlm and munge are not installed, and installing them needs root"
        exit 4
    fi
    command -v apt-get >/dev/null 2>&1 || { warn "slurm-wlm and munge are not installed, and there is no apt-get"; exit 4; }
    local before policy=/usr/sbin/policy-rc.d ours=0
    before="$(system_daemons)"
    if [ ! -e "$policy" ]; then
        # invoke-rc.d and deb-systemd-invoke ask this before starting a service.
        printf '#!/bin/sh\n# vgg-dp scripts/slurm/local-cluster.sh: no service starts while it installs slurm-wlm\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        trap 'rm -f /usr/sbin/policy-rc.d; exit 4' INT TERM
        say "installing with a temporary $policy that denies service starts"
    else
        say "$policy is there already (it decides whether the packages' services start; checked below)"
    fi
    local status=0
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq -o Acquire::Retries=3 || status=$?
    if [ "$status" -eq 0 ]; then
        say "apt-get install ${packages[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${packages[@]}" >/dev/null || status=$?
    fi
    if [ "$ours" -eq 1 ]; then
        rm -f "$policy"
        trap - EXIT INT TERM
    fi
    if [ "$status" -ne 0 ] || ! installed; then
        warn "could not install ${packages[*]} (apt-get exit status $status)"
        exit 4
    fi
    # A service the packages started anyway (a machine whose policy allowed
    # it): stop it, so that installing leaves no system daemon running.
    local after new
    after="$(system_daemons)"
    new="$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)"
    if [ -n "$new" ]; then
        warn "the packages started system daemon(s): $(echo "$new" | xargs -r ps -o pid=,comm= -p | xargs); stopping them"
        local svc
        for svc in munge slurmctld slurmd; do
            if [ -d /run/systemd/system ]; then
                systemctl stop "$svc" 2>/dev/null || true
            elif [ -x "/etc/init.d/$svc" ]; then
                "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            fi
        done
        # shellcheck disable=SC2086
        stop_pids 10 $(comm -13 <(echo "$before") <(system_daemons) | grep . || true)
    else
        say "no system munged, slurmctld or slurmd was started by the install"
    fi
    # Debian's packages enable their services for the next boot (rc links,
    # systemd wants); say so, and what that means.
    local enabled=() svc
    for svc in munge slurmctld slurmd; do
        if compgen -G "/etc/rc[2-5].d/S[0-9][0-9]$svc" >/dev/null \
            || [ -e "/etc/systemd/system/multi-user.target.wants/$svc.service" ]; then
            enabled+=("$svc")
        fi
    done
    if [ "${#enabled[@]}" -gt 0 ]; then
        say "the packages enabled the system service(s) ${enabled[*]} for the next boot (Debian's default; slurmctld and slurmd start only with /etc/slurm/slurm.conf, which this script never writes)"
    fi
    versions
}

is_ours() { [ -f "$marker" ]; }

# Fails unless the folder is absent or this script's.
check_folder() {
    if [ -e "$dir" ] && ! is_ours; then
        fail "$dir exists and is not a local-cluster.sh folder (no $(basename "$marker")): set VGGDP_SLURM_DIR to another folder"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_line() {
    # The node as slurmd sees it (CPUs, sockets, cores, threads, memory).
    local line
    line="$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1)" || true
    [ -n "$line" ] || line="NodeName=$host CPUs=$(nproc)"
    # Our name and address; keep the hardware fields.
    line="$(sed -E "s/^NodeName=[^ ]+/NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host/; s/ UpTime=.*//" <<<"$line")"
    echo "$line State=UNKNOWN"
}

write_config() {
    host="$(hostname -s)"
    cat >"$conf" <<EOF
# Generated by vgg-dp scripts/slurm/local-cluster.sh; removed by its 'down'.
ClusterName=vggdp-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=60
$(node_line)
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

tail_logs() {
    local f
    for f in "$dir"/log/*.log "$munge_dir/munged.log"; do
        [ -s "$f" ] || continue
        echo "--- $f (last 15 lines)" >&2
        tail -n 15 "$f" >&2
    done
}

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local limit="$1" i
    shift
    for ((i = 0; i < limit * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    return 1
}

# Starts daemon "$@" with only stdin, stdout and stderr open: a daemon that
# kept a descriptor it inherited (the caller's pipe, or a socket a parent
# process watches for the end of its child) would keep the caller waiting.
spawn() {
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec "$@" </dev/null >>"$dir/log/daemons.out" 2>&1
    )
}

node_idle() { [ "$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)" = idle ]; }

start_failed() {
    warn "$1"
    tail_logs
    tear_down >&2 || true
    exit 1
}

bring_up() {
    install_packages
    check_folder
    if is_ours; then
        local running=0 d
        for d in "${daemons[@]}"; do daemon_pid "$d" >/dev/null && running=$((running + 1)); done
        if [ "$running" -eq "${#daemons[@]}" ] && node_idle_or_busy; then
            say "already up in $dir"
            say "SLURM_CONF=$conf"
            return 0
        fi
        say "a stale or partial local cluster is in $dir: taking it down first"
        tear_down
    fi
    local p
    for p in "$port" "$slurmd_port"; do
        port_in_use "$p" && fail "port $p is in use (another local cluster or a Slurm?): set VGGDP_SLURM_PORT to another port"
    done

    mkdir -p "$dir"
    chmod 755 "$dir"
    : >"$marker"
    mkdir -p "$munge_dir" "$dir/state" "$dir/spool" "$dir/tmp" "$dir/log" "$dir/run"
    chmod 755 "$munge_dir"  # munged: clients must reach its socket

    # munge: a key of its own, and munged on its own socket.
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$munge_dir/munge.key" --force >/dev/null
    else
        dd if=/dev/urandom of="$munge_dir/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$munge_dir/munge.key"
    spawn munged --socket="$socket" --key-file="$munge_dir/munge.key" --pid-file="$(pid_file munged)" \
        --log-file="$munge_dir/munged.log" --seed-file="$munge_dir/munged.seed" || start_failed "munged did not start"
    wait_for 10 sh -c "munge -n --socket='$socket' | unmunge --socket='$socket'" \
        || start_failed "munged does not answer on $socket"

    write_config
    spawn slurmctld -f "$conf" || start_failed "slurmctld did not start"
    wait_for 30 sh -c "scontrol ping | grep -q UP" || start_failed "slurmctld does not answer (scontrol ping)"
    spawn slurmd -f "$conf" || start_failed "slurmd did not start"
    wait_for 60 node_idle || start_failed "the node did not become idle: $(sinfo -h -N -o '%N %T %E' 2>&1 | head -n 1)"

    say "up: $(sinfo -h -N -o 'node %N, %c CPU(s), %m MB, partition %P, %T' | head -n 1)"
    say "MPI plugins: $(srun --mpi=list 2>&1 | tr -s ' \t\n' ' ' | sed 's/ $//')"
    say "SLURM_CONF=$conf"
}

node_idle_or_busy() {
    local state
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)"
    case "$state" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

tear_down() {
    if [ ! -e "$dir" ]; then
        say "down (no $dir)"
        return 0
    fi
    check_folder
    local stopped=0
    if daemon_pid slurmctld >/dev/null; then
        local jobs
        jobs="$(squeue -h -o '%A' 2>/dev/null | xargs)" || true
        if [ -n "$jobs" ]; then
            say "cancelling job(s) $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 20 sh -c '[ -z "$(squeue -h -o %A 2>/dev/null)" ]' || warn "job(s) still listed after 20 s; stopping anyway"
        fi
    fi
    local d pid
    for d in slurmd slurmctld; do
        if pid="$(daemon_pid "$d")"; then
            stop_pids 15 "$pid"
            stopped=$((stopped + 1))
        fi
    done
    # What is left of jobs (slurmstepd and its tasks), then munged.
    local rest=()
    mapfile -t rest < <(our_processes | grep -vx "$(daemon_pid munged || echo none)" || true)
    if [ "${#rest[@]}" -gt 0 ]; then
        say "stopping what is left of jobs: $(ps -o pid=,comm= -p "${rest[@]}" 2>/dev/null | xargs)"
        stop_pids 5 "${rest[@]}"
        stopped=$((stopped + ${#rest[@]}))
    fi
    if pid="$(daemon_pid munged)"; then
        stop_pids 10 "$pid"
        stopped=$((stopped + 1))
    fi
    mapfile -t rest < <(our_processes)
    if [ "${#rest[@]}" -gt 0 ]; then
        fail "process(es) still running, $dir kept: $(ps -o pid=,comm= -p "${rest[@]}" 2>/dev/null | xargs)"
    fi
    rm -rf "$dir"
    say "down: stopped $stopped process(es), removed $dir"
}

show_status() {
    if [ ! -e "$dir" ]; then
        echo "local Slurm: down (no $dir)"
        return 3
    fi
    check_folder
    local d pid running=0
    for d in "${daemons[@]}"; do
        if pid="$(daemon_pid "$d")"; then
            echo "$d: running, pid $pid"
            running=$((running + 1))
        else
            echo "$d: not running"
        fi
    done
    local others
    others="$(our_processes | while read -r p; do
        # slurmscriptd is slurmctld's own helper.
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in munged|slurmctld|slurmd|slurmscriptd) ;; *) echo "$p" ;; esac
    done | xargs)"
    [ -z "$others" ] || echo "job processes: $(ps -o pid=,comm= -p $others 2>/dev/null | xargs)"
    echo "SLURM_CONF=$conf"
    if [ "$running" -eq "${#daemons[@]}" ]; then
        sinfo -N -o '%N %c %m %P %T' 2>&1 || true
        squeue 2>&1 || true
        return 0
    fi
    [ "$running" -eq 0 ] && return 3
    return 1
}

[ "$#" -ge 1 ] || die "a command is needed: up, down, status, env or install (see --help)"
command="$1"
shift
case "$command" in
    -h|--help) usage; exit 0 ;;
esac
[ "$#" -eq 0 ] || die "$command takes no arguments"
case "$command" in
    up) bring_up ;;
    down) tear_down ;;
    status) status=0; show_status || status=$?; exit "$status" ;;
    env) echo "export SLURM_CONF=$(printf '%q' "$conf")" ;;
    install) install_packages ;;
    *) die "unknown command '$command' (up, down, status, env, install; see --help)" ;;
esac
