#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds vgg-dp in release
# mode and runs the main job: the real 224×224 VGG-16, trained data-parallel
# on 4 MPI ranks (batch 4 per rank, global batch 16), 2 warm-up and 10 timed
# steps. About 3-6 minutes on a 2-core machine. Extra arguments go to vgg-dp
# and override these defaults, e.g. `scripts/run.sh --steps 100`.
#
#   RANKS=2 scripts/run.sh          other rank counts
#   The report is written to runs/main-<time>.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
mkdir -p runs
report="runs/main-$(date +%Y%m%d-%H%M%S).json"
exec bash scripts/launch.sh -n "${RANKS:-4}" -- train --model vgg16 --image-size 224 \
    --batch-size 4 --warmup 2 --steps 10 --report "$report" "$@"
