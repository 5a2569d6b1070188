# Shared by scaling.sh and batch_sweep.sh (sourced, not run): the vgg-dp
# binary, and the lock that keeps two benchmarks from running at once.
#   needs: repo_root, script (the caller's name for messages)
#   sets:  bin, locked (a command prefix: flock LOCK, or empty)

bin="${VGGDP_BIN:-$repo_root/.build/release/vgg-dp}"
[ -x "$bin" ] && [ ! -d "$bin" ] || { echo "vgg-dp is not built: run scripts/setup.sh (or swift build -c release)" >&2; exit 1; }

# VGGDP_LOCK: the lock file (default /tmp/bench.lock); empty runs unlocked.
lock="${VGGDP_LOCK-/tmp/bench.lock}"
locked=()
if [ -n "$lock" ]; then
    if command -v flock >/dev/null 2>&1; then
        locked=(flock "$lock")
    else
        echo "$script: flock not found; running without $lock" >&2
    fi
fi
