#!/usr/bin/env bash
# Installs what murder's tests and benchmarks need (Debian packages listed in
# scripts/debian-packages.txt, staticcheck, promtool) and builds bin/murder.
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

# promtool checks docs/monitoring's alert rules. Debian ships it in the
# prometheus package, whose installation would also start a Prometheus
# server: take the one binary out of the package instead.
if ! command -v promtool >/dev/null && [ ! -x bin/promtool ]; then
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download prometheus >/dev/null)
  fi
  mkdir -p bin
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  mv "$tmp/usr/bin/promtool" bin/promtool
  rm -rf "$tmp"
  echo "setup: bin/promtool from Debian's prometheus package" >&2
fi

GOBIN="$PWD/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o bin/murder ./cmd/murder
echo "setup: built bin/murder ($version)" >&2
