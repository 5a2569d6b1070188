#!/usr/bin/env bash
# Creates or updates the baselines' virtual environment, .venv-baselines/ at
# the repository root, with the frameworks pinned in requirements.txt
# (tensorflow-cpu, torch; from PyPI, a few GB with torch's CUDA libraries).
# Idempotent: when the environment already holds those versions it only says
# so. Run on request (scripts/compare.sh runs it when the environment is
# missing); the tests never need it.
#
#   scripts/baselines/setup.sh [--python PYTHON] [--force]
#
#   --python PYTHON   interpreter to create the environment with (default python3)
#   --force           pip install again even when the versions match
#   BASELINES_VENV    environment folder (default <repo>/.venv-baselines)
set -euo pipefail

usage() {
    echo "usage: scripts/baselines/setup.sh [--python PYTHON] [--force]"
}

python=python3
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || { echo "setup.sh: --python needs a value" >&2; exit 2; }; python=$2; shift 2 ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
venv="${BASELINES_VENV:-$repo_root/.venv-baselines}"
requirements="$here/requirements.txt"

say() { echo "==> $*"; }
die() { echo "setup.sh: error: $*" >&2; exit 1; }

# Exit 0 when the environment's python has every pinned version.
installed() {
    [ -x "$venv/bin/python" ] || return 1
    "$venv/bin/python" - "$requirements" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want:
        sys.exit(1)
PY
}

if [ "$force" -eq 0 ] && installed; then
    say "$venv is up to date ($(grep -v '^#' "$requirements" | grep . | paste -sd' '))"
    exit 0
fi

command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3.10-3.13 (apt-get install python3 python3-venv) or pass --python"
if [ ! -x "$venv/bin/python" ]; then
    say "$python -m venv $venv"
    "$python" -m venv "$venv" || die "cannot create $venv; on Debian install python3-venv (apt-get install python3-venv)"
fi
say "pip install -r $requirements (into $venv)"
"$venv/bin/python" -m pip install --disable-pip-version-check -r "$requirements" \
    || die "pip install failed; PyPI must be reachable, and the Python in $venv must be one these wheels support"
installed || die "$venv still lacks the pinned versions after pip install"
"$venv/bin/python" -c "import tensorflow as tf, torch; print('tensorflow', tf.__version__, '/ torch', torch.__version__)" 2>/dev/null \
    | sed 's/^/==> /'
say "done: $venv"
