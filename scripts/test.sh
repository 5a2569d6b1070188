#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs the whole test
# suite: engine unit tests, and the data-parallel tests that launch vgg-dp
# under mpirun with 2-4 ranks, and the Slurm test (a one-node Slurm from
# scripts/slurm/local-cluster.sh; setup --slurm installs slurm-wlm and munge).
# The same command CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh --no-build --slurm
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

echo "==> swift build --build-tests"
swift build --build-tests
echo "==> swift test"
# XCTest only: the suite has no Swift Testing tests, and its closing line
# would otherwise report zero tests after XCTest's.
swift test --skip-build --disable-swift-testing
