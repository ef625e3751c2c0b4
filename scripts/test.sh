#!/usr/bin/env bash
# Runs every check CI runs: installs what the tests need, then gofmt, go vet,
# staticcheck and the whole test suite with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

bad=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
go vet ./...
bin/staticcheck ./...
# -count=1: several packages test the murder binary they build, which the test cache cannot see.
# Test artifacts (the live page's screenshot) land in test-artifacts/_artifacts/.
mkdir -p test-artifacts
go test -race -count=1 -timeout 20m -artifacts -outputdir "$PWD/test-artifacts" "$@" ./...
