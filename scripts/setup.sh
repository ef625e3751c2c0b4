#!/usr/bin/env bash
# Installs what murder's tests and benchmarks need (Debian packages listed in
# scripts/debian-packages.txt, staticcheck) and builds bin/murder.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t pkgs < <(grep -v '^#' scripts/debian-packages.txt | grep -v '^$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

GOBIN="$PWD/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o bin/murder ./cmd/murder
echo "setup: built bin/murder ($version)" >&2
