# Shared by the scripts in scripts/ (sourced, not run): messages, option
# parsing, number checks, the vgg-dp binary and the benchmark lock.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Sets, when sourced:
#   script       the caller's name for messages (e.g. scaling.sh), unless set
#   script_path  the caller's file (its leading comment is its --help)
#   repo_root    the repository's root folder
# Gives:
#   say MSG...            "SCRIPT: MSG" on stdout (say_prefix replaces "SCRIPT: ")
#   warn MSG...           "SCRIPT: MSG" on stderr
#   die MSG...            "SCRIPT: MSG" on stderr, exit 2 (bad usage)
#   fail MSG...           "SCRIPT: MSG" on stderr, exit 1 (anything else)
#   usage                 the caller's leading comment block, without the '# '
#   take_value "$@"       in a `case "$1"` over the arguments, for --opt VALUE
#                         and --opt=VALUE: sets value and taken (how many
#                         arguments to shift); "--opt needs a value" (exit
#                         needs_value_status, default 2) when none follows
#   unknown_option ARG [HINT]   "SCRIPT: unknown option 'ARG' (HINT)", exit 2
#                         (HINT defaults to "see --help")
#   positive TEXT         true for a positive integer written without a leading 0
#   whole TEXT            true for a whole number (digits only)
#   vggdp_bin             sets bin: $VGGDP_BIN, else <repo>/.build/release/vgg-dp
#   require_bin           vggdp_bin, then exit 1 unless it is an executable file
#   lock_command          sets locked, a command prefix that holds the benchmark
#                         lock (flock $VGGDP_LOCK, default /tmp/bench.lock;
#                         VGGDP_LOCK= for none): "${locked[@]}" COMMAND...
#   hold_lock             takes the same lock for the rest of the script (fd 8)
# Callers keep `set -euo pipefail`; nothing here turns it off.

script_path="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")"
script="${script:-$(basename "$script_path")}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { echo "${say_prefix-$script: }$*"; }
warn() { echo "$script: $*" >&2; }
die() { echo "$script: $*" >&2; exit 2; }
fail() { echo "$script: $*" >&2; exit 1; }

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$script_path"
}

take_value() {
    case "$1" in
        -*=*) value="${1#*=}"; taken=1 ;;
        *)
            if [ "$#" -lt 2 ]; then
                echo "$script: $1 needs a value" >&2
                exit "${needs_value_status:-2}"
            fi
            value="$2"; taken=2 ;;
    esac
}

unknown_option() {
    die "unknown option '$1' (${2:-see --help})"
}

positive() { case "$1" in ''|*[!0-9]*|0*) return 1 ;; esac; }
whole() { case "$1" in ''|*[!0-9]*) return 1 ;; esac; }

vggdp_bin() {
    bin="${VGGDP_BIN:-$repo_root/.build/release/vgg-dp}"
}

require_bin() {
    vggdp_bin
    if [ ! -x "$bin" ] || [ -d "$bin" ]; then
        [ -n "${VGGDP_BIN:-}" ] && warn "VGGDP_BIN=$VGGDP_BIN is not an executable file"
        echo "vgg-dp is not built: run scripts/setup.sh (or swift build -c release)" >&2
        exit 1
    fi
}

lock_command() {
    local lock="${VGGDP_LOCK-/tmp/bench.lock}"
    locked=()
    [ -n "$lock" ] || return 0
    command -v flock >/dev/null 2>&1 || fail "flock not found (util-linux); set VGGDP_LOCK= to run without $lock"
    locked=(flock "$lock")
}

hold_lock() {
    local lock="${VGGDP_LOCK-/tmp/bench.lock}"
    [ -n "$lock" ] || return 0
    command -v flock >/dev/null 2>&1 || fail "flock not found (util-linux); set VGGDP_LOCK= to run without $lock"
    exec 8>"$lock"
    flock 8
}
