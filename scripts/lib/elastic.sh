# Elastic restart for launch.sh --max-restarts and the Slurm example (sourced,
# not run; source scripts/lib/common.sh first): run a vgg-dp training job and,
# when it ends because a rank died or a host was lost, relaunch it from the
# newest checkpoint in its --checkpoint-dir, up to MAX times.
#
#   elastic_command() { cmd=(mpirun -n "$1" ... "${@:3}"); }   # the caller's
#   elastic_run MAX RANKS HOSTFILE PROBE -- VGG-DP-ARGS...     # never returns
#
# elastic_command RANKS HOSTFILE ARGS... must set the array cmd to the command
# that runs vgg-dp ARGS on RANKS ranks (HOSTFILE: the hostfile to use, or "").
# PROBE=1: before a relaunch, probe every host of HOSTFILE (elastic_probe) and
# leave out those that do not answer.
#
# What it decides:
#   exit 0 (finished)            never restarted; exits 0
#   exit 2 (bad input)           never restarted; exits 2
#   the launcher is signalled    (TERM, INT, HUP) the signal goes to the job,
#                                which is not restarted; exits 128 + signal
#   any other end                a rank died, a host was lost, the watchdog
#                                stopped a stalled rank, a rank failed: a
#                                restart, while fewer than MAX have been made;
#                                then it gives up, saying why, with the job's status
# A relaunch resumes (--resume) from the checkpoint in --checkpoint-dir when
# this job wrote one (a checkpoint already there when the job started counts
# only when the job itself resumed from that folder); with no checkpoint yet
# it runs the same command again: from the job's own --resume, or from the
# beginning. With PROBE, hosts that do not answer are left out, and the job
# goes on with the ranks of the hosts left (placed by slot, as mpirun does)
# when the global batch divides by their count: per-rank --batch-size B becomes
# --global-batch of the job's global batch, so every step sees the same
# samples. Otherwise it stops and says why.
#
# Each restart appends one JSON line to CHECKPOINT-DIR/restarts.jsonl (started
# afresh by each job), whose path vgg-dp gets with --restart-log: the report
# lists the restarts. Fields: restart, at (UTC), lost (from mpirun's messages:
# the rank, its node and signal or status, or the host whose daemon was lost),
# exit_status, resumed_from_step (null: from the beginning), last_step_seen,
# steps_recomputed_min/max (completed steps done again: at least those past
# the checkpoint that rank 0's progress lines showed, at most the checkpoint
# interval), ranks (of the relaunch), hosts_left_out.
#
# The checkpoint folder must be readable here: rank 0 must run on this host,
# or the folder be on a shared filesystem.
#
# Environment:
#   VGGDP_PROBE_TIMEOUT  seconds a host gets to answer the probe (default 20)
#   MPIRUN_ARGS          also given to the probe's mpirun

# The last value of vgg-dp option NAME (--NAME V or --NAME=V) in ARGS; status 1 when absent.
elastic_option() {
    local name="$1" found=1 value=""
    shift
    while [ "$#" -gt 0 ]; do
        case "$1" in
            "$name") [ "$#" -ge 2 ] && { value="$2"; found=0; shift; } ;;
            "$name"=*) value="${1#*=}"; found=0 ;;
        esac
        shift
    done
    [ "$found" -eq 0 ] && printf '%s\n' "$value"
    return "$found"
}

# Sets elastic_kept to ARGS without option NAME and its value.
elastic_without() {
    local name="$1"
    shift
    elastic_kept=()
    while [ "$#" -gt 0 ]; do
        case "$1" in
            "$name") shift ;;
            "$name"=*) ;;
            *) elastic_kept+=("$1") ;;
        esac
        [ "$#" -gt 0 ] && shift
    done
    return 0
}

# The checkpoint's header (JSON) in folder $1; status 1 when there is none to read.
elastic_checkpoint_header() {
    local file="$1/checkpoint.vggdp" length
    [ -f "$file" ] && [ "$(head -c 8 "$file" 2>/dev/null)" = VGGDPCK1 ] || return 1
    length="$(od -An -t u8 -j 8 -N 8 "$file" | tr -d ' \n')"
    whole "$length" && [ "$length" -gt 0 ] && [ "$length" -lt 1048576 ] || return 1
    head -c "$((16 + length))" "$file" | tail -c "$length"
}

# The integer field KEY of the JSON object on stdin; status 1 when absent.
elastic_json_int() {
    grep -oE "\"$1\" *: *[0-9]+" | head -n 1 | grep -oE '[0-9]+$'
}

# Identifies the checkpoint file now (inode, size, modification time), "" when none.
elastic_checkpoint_signature() {
    stat -c '%i %s %y' "$1/checkpoint.vggdp" 2>/dev/null || true
}

# $1 as a JSON string.
elastic_json_string() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# What the job lost, from mpirun's (or srun's) messages in file $1 and its
# status $2: the host whose daemon was lost and the rank that died, as far as
# they are named (when a host goes, mpirun may name either or both).
elastic_lost() {
    local err="$1" status="$2" m host="" rank=""
    if grep -q 'lost communication with a remote daemon' "$err"; then
        m="$(grep -m 1 -oE 'Remote daemon: *\[\[[0-9]+,[0-9]+\],[0-9]+\] on node [^ ]+' "$err" | sed -E 's/.* on node //' || true)"
        host="lost contact with the Open MPI daemon on node ${m:-?} (host lost)"
    elif grep -qE 'unable to reliably start one or more daemons|daemon has unexpectedly failed' "$err"; then
        host="an Open MPI daemon could not be started or failed (a host did not answer)"
    fi
    m="$(grep -m 1 -oE 'process rank [0-9]+ with PID [0-9]+ on node [^ ]+ exited on signal [0-9]+( \([^)]*\))?' "$err" || true)"
    if [ -n "$m" ]; then
        rank="$(sed -E 's/^process rank ([0-9]+) with PID [0-9]+ on node ([^ ]+) /rank \1 on node \2 /' <<<"$m")"
    fi
    m="$(grep -m 1 -oE 'srun: error: [^:]+: task [0-9]+: .*' "$err" || true)"
    if [ -z "$rank" ] && [ -n "$m" ]; then
        rank="$(sed -E 's/^srun: error: ([^:]+): task ([0-9]+): /rank \2 on node \1: /' <<<"$m")"
    fi
    if [ -n "$host" ] || [ -n "$rank" ]; then
        echo "${host}${host:+${rank:+; }}${rank}"
        return
    fi
    m="$(grep -m 1 -oE 'watchdog: .*' "$err" || true)"
    if [ -n "$m" ]; then
        echo "the watchdog stopped the job: ${m#watchdog: }"
        return
    fi
    m="$(grep -m 1 -oE 'Process name: *\[\[[0-9]+,[0-9]+\],[0-9]+\]' "$err" | grep -oE '[0-9]+\]$' | tr -d ']' || true)"
    if [ -n "$m" ]; then
        local code
        code="$(grep -m 1 -oE 'Exit code: *[0-9]+' "$err" | grep -oE '[0-9]+$' || true)"
        echo "rank $m exited with status ${code:-?}"
        return
    fi
    echo "the job ended with status $status (mpirun named no rank or host)"
}

# Can host $1 start a process? A one-rank `true` through mpirun, under timeout.
elastic_probe() {
    local extra=()
    [ -n "${MPIRUN_ARGS:-}" ] && read -r -a extra <<<"$MPIRUN_ARGS"
    timeout -k 5 "${VGGDP_PROBE_TIMEOUT:-20}" mpirun -H "$1" -n 1 "${extra[@]}" true >/dev/null 2>&1 </dev/null
}

# Probes the hosts of hostfile $1 that job of $2 ranks ran on. Sets
# elastic_left_out (the hosts that did not answer), elastic_ranks (the ranks
# the others held: slots filled in order, or in proportion to the slots when
# the job had more ranks than slots) and elastic_hostfile (a hostfile of the
# hosts that answered; $1 itself when all did). Status 1, with elastic_why,
# when no rank is left or the ranks cannot be told apart.
elastic_probe_hosts() {
    local hostfile="$1" ranks="$2" total=0 left=0 line host slots n kept
    local hosts=() slot_counts=() lines=()
    while IFS= read -r line; do
        line="${line%%#*}"
        read -r host _ <<<"$line" || true
        [ -n "${host:-}" ] || continue
        slots=1
        if [[ "$line" =~ slots[[:space:]]*=[[:space:]]*([0-9]+) ]]; then slots="${BASH_REMATCH[1]}"; fi
        hosts+=("$host"); slot_counts+=("$slots"); lines+=("$line")
        total=$((total + slots))
    done <"$hostfile"
    elastic_left_out=()
    kept="$(mktemp "${TMPDIR:-/tmp}/vggdp-elastic-hostfile.XXXXXX")"
    elastic_temporaries+=("$kept")
    local i placed=0
    for i in "${!hosts[@]}"; do
        if [ "$ranks" -le "$total" ]; then
            n=$((ranks - placed)); [ "$n" -gt "${slot_counts[$i]}" ] && n="${slot_counts[$i]}"; [ "$n" -lt 0 ] && n=0
        elif [ $((ranks * slot_counts[i] % total)) -eq 0 ]; then
            n=$((ranks * slot_counts[i] / total))
        else
            elastic_why="the job's $ranks ranks exceed the hostfile's $total slots and do not split over its hosts in proportion to their slots: which ranks ran on which host cannot be told"
            return 1
        fi
        placed=$((placed + n))
        if elastic_probe "${hosts[$i]}"; then
            printf '%s\n' "${lines[$i]}" >>"$kept"
            left=$((left + n))
        else
            elastic_left_out+=("${hosts[$i]}")
            warn "host ${hosts[$i]} does not answer (mpirun -H ${hosts[$i]} -n 1 true, ${VGGDP_PROBE_TIMEOUT:-20} s): left out"
        fi
    done
    elastic_ranks="$left"
    if [ "${#elastic_left_out[@]}" -eq 0 ]; then elastic_hostfile="$hostfile"; else elastic_hostfile="$kept"; fi
    if [ "$left" -eq 0 ]; then
        elastic_why="no rank is left: ${elastic_left_out[*]:-every host} did not answer"
        return 1
    fi
}

# Runs "${cmd[@]}", its output passed through and kept in elastic_out and
# elastic_err; sets elastic_status. A TERM, INT or HUP to the launcher goes to
# the job (elastic_stopped is set to it).
elastic_launch() {
    : >"$elastic_out"
    : >"$elastic_err"
    local eo ee tee_out tee_err
    exec {eo}> >(tee -a "$elastic_out")
    tee_out=$!
    exec {ee}> >(tee -a "$elastic_err" >&2)
    tee_err=$!
    "${cmd[@]}" >&"$eo" 2>&"$ee" {eo}>&- {ee}>&- </dev/null &
    elastic_child=$!
    while :; do
        set +e
        wait "$elastic_child"
        elastic_status=$?
        set -e
        # wait returns early when a trapped signal arrives; the job may go on.
        kill -0 "$elastic_child" 2>/dev/null || break
    done
    elastic_child=""
    exec {eo}>&- {ee}>&-
    wait "$tee_out" "$tee_err" 2>/dev/null || true
}

elastic_forward() {
    elastic_stopped="$1"
    if [ -n "${elastic_child:-}" ]; then kill "-$1" "$elastic_child" 2>/dev/null || true; fi
}

elastic_cleanup() {
    rm -f "$elastic_out" "$elastic_err" "${elastic_temporaries[@]}"
}

elastic_run() {
    local max="$1" ranks="$2" hostfile="$3" probe="$4"
    shift 4
    [ "${1:-}" = -- ] && shift
    local args=("$@")
    case "${args[0]:-}" in
        ''|-*|train) ;;
        *) die "--max-restarts restarts training runs: 'vgg-dp ${args[0]}' is not one" ;;
    esac
    local ckdir every warmup steps user_resume per_rank global
    ckdir="$(elastic_option --checkpoint-dir "${args[@]}")" && [ -n "$ckdir" ] \
        || die "--max-restarts relaunches from the checkpoints in --checkpoint-dir: give vgg-dp --checkpoint-dir D --checkpoint-every K"
    every="$(elastic_option --checkpoint-every "${args[@]}")" || every=""
    elastic_option --restart-log "${args[@]}" >/dev/null && die "--restart-log is set by launch.sh --max-restarts; leave it out"
    warmup="$(elastic_option --warmup "${args[@]}")" || warmup=10
    steps="$(elastic_option --steps "${args[@]}")" || steps=100
    user_resume="$(elastic_option --resume "${args[@]}")" || user_resume=""
    per_rank="$(elastic_option --batch-size "${args[@]}")" || per_rank=""
    global="$(elastic_option --global-batch "${args[@]}")" || global=""
    whole "$warmup" || warmup=0
    whole "$steps" || steps=0
    whole "$every" || every=""
    whole "$per_rank" || per_rank=""
    whole "$global" || global=""

    local log="$ckdir/restarts.jsonl"
    if [ -d "$ckdir" ]; then rm -f "$log"; fi
    local initial
    initial="$(elastic_checkpoint_signature "$ckdir")"
    local resumed_own=0
    [ -n "$user_resume" ] && [ "$(realpath -m "$user_resume")" = "$(realpath -m "$ckdir")" ] && resumed_own=1

    elastic_out="$(mktemp "${TMPDIR:-/tmp}/vggdp-elastic-out.XXXXXX")"
    elastic_err="$(mktemp "${TMPDIR:-/tmp}/vggdp-elastic-err.XXXXXX")"
    elastic_temporaries=()
    elastic_stopped=""
    elastic_child=""
    trap elastic_cleanup EXIT
    trap 'elastic_forward TERM' TERM
    trap 'elastic_forward INT' INT
    trap 'elastic_forward HUP' HUP

    local restarts=0 first_ranks="$ranks" run_args=("${args[@]}" --restart-log "$log")
    while :; do
        elastic_command "$ranks" "$hostfile" "${run_args[@]}"
        printf '+' >&2
        printf ' %q' "${cmd[@]}" >&2
        printf '\n' >&2
        elastic_launch
        local status="$elastic_status"
        if [ -n "$elastic_stopped" ]; then
            warn "stopped by SIG$elastic_stopped: the job is not restarted"
            exit "$((128 + $(kill -l "$elastic_stopped")))"
        fi
        case "$status" in
            0) exit 0 ;;
            2) warn "not restarted: vgg-dp refused its input (exit 2)"; exit 2 ;;
        esac
        local at lost
        at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        lost="$(elastic_lost "$elastic_err" "$status")"
        if [ "$restarts" -ge "$max" ]; then
            warn "giving up after $max restart(s) (--max-restarts $max): $lost (exit $status); the newest checkpoint is in $ckdir"
            exit "$status"
        fi
        restarts=$((restarts + 1))

        # The hosts and ranks of the relaunch.
        local new_ranks="$ranks" new_hostfile="$hostfile" left_out=()
        if [ "$probe" = 1 ] && [ -n "$hostfile" ]; then
            if ! elastic_probe_hosts "$hostfile" "$ranks"; then
                warn "not restarting after $lost (exit $status): $elastic_why"
                exit "$status"
            fi
            new_ranks="$elastic_ranks"
            new_hostfile="$elastic_hostfile"
            left_out=("${elastic_left_out[@]}")
        fi

        # Where it resumes from: this job's checkpoint, else the job's own --resume, else the beginning.
        local source="" header="" next=""
        if [ -f "$ckdir/checkpoint.vggdp" ] && { [ "$resumed_own" = 1 ] || [ "$(elastic_checkpoint_signature "$ckdir")" != "$initial" ]; }; then
            source="$ckdir"
        elif [ -n "$user_resume" ]; then
            source="$user_resume"
        fi
        if [ -n "$source" ]; then
            header="$(elastic_checkpoint_header "$source")" || header=""
            next="$(elastic_json_int nextStep <<<"$header")" || next=""
        fi

        # The global batch must divide by the ranks left.
        local batch
        batch="$(elastic_json_int globalBatch <<<"$header")" || batch=""
        whole "$batch" || batch=""
        [ -n "$batch" ] || batch="${global:-$(( ${per_rank:-16} * first_ranks ))}"
        elastic_without --resume "${args[@]}"
        run_args=("${elastic_kept[@]}")
        if [ "$new_ranks" != "$first_ranks" ]; then
            if ! whole "$batch" || [ $((batch % new_ranks)) -ne 0 ]; then
                warn "not restarting after $lost (exit $status): host(s) ${left_out[*]} do not answer, and the global batch $batch does not divide by the $new_ranks rank(s) left on the others"
                exit "$status"
            fi
            elastic_without --batch-size "${run_args[@]}"
            elastic_without --global-batch "${elastic_kept[@]}"
            run_args=("${elastic_kept[@]}" --global-batch "$batch")
        fi
        [ -n "$source" ] && run_args+=(--resume "$source")
        run_args+=(--restart-log "$log")

        # What the launcher saw of the steps: rank 0's last progress line, the checkpoint.
        local from="${next:-0}" seen="" t last_max
        t="$(grep -oE ': step [0-9]+, duration' "$elastic_out" | tail -n 1 | grep -oE '[0-9]+' || true)"
        [ -n "$t" ] && seen=$((warmup + t))
        if [ -n "$next" ] && [ "$next" -gt 0 ] && { [ -z "$seen" ] || [ "$seen" -lt $((next - 1)) ]; }; then
            seen=$((next - 1))
        fi
        local least=0 most=$((warmup + steps - from))
        [ -n "$seen" ] && [ $((seen + 1 - from)) -gt 0 ] && least=$((seen + 1 - from))
        [ -n "$every" ] && [ "$every" -lt "$most" ] && most="$every"
        [ "$most" -lt "$least" ] && most="$least"
        [ "$most" -lt 0 ] && most=0

        mkdir -p "$ckdir"
        local left_json="" h
        for h in "${left_out[@]}"; do left_json+="${left_json:+,}$(elastic_json_string "$h")"; done
        printf '{"restart":%d,"at":"%s","lost":%s,"exit_status":%d,"resumed_from_step":%s,"last_step_seen":%s,"steps_recomputed_min":%d,"steps_recomputed_max":%d,"ranks":%d,"hosts_left_out":[%s]}\n' \
            "$restarts" "$at" "$(elastic_json_string "$lost")" "$status" "${next:-null}" "${seen:-null}" \
            "$least" "$most" "$new_ranks" "$left_json" >>"$log"

        if [ -n "$source" ]; then
            warn "restart $restarts of $max: $lost (exit $status); resuming from ${next:+step $next of }$source on $new_ranks rank(s)"
        else
            warn "restart $restarts of $max: $lost (exit $status); no checkpoint yet: starting again from the beginning on $new_ranks rank(s)"
        fi
        ranks="$new_ranks"
        hostfile="$new_hostfile"
    done
}
