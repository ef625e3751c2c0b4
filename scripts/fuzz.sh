#!/usr/bin/env bash
# Runs every Fuzz target of the repository for a short time each and
# reports the ones that failed. Targets are found with `go test -list`, so
# new ones are picked up without changing this script.
#
#   scripts/fuzz.sh                  every target, 30s each
#   FUZZTIME=2m scripts/fuzz.sh      longer
#   scripts/fuzz.sh ./internal/swarm only the targets of these packages
#
# A failing input is kept where `go test -fuzz` writes it,
# PACKAGE/testdata/fuzz/FuzzNAME/HASH: commit it with the fix, and every
# later `go test` of the package runs it as a regression case.
#
# FUZZMINIMIZE bounds the minimisation of each new interesting or failing
# input (default 5s; go's default of 60s has a worker spend most of a short
# run minimising instead of fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-30s}
minimize=${FUZZMINIMIZE:-5s}
pkgs=("$@")
[ "${#pkgs[@]}" -gt 0 ] || pkgs=(./...)

# go test -list prints a package's matching names, then "ok  PKG  TIME".
targets=()
names=()
while IFS= read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    ok*)
      pkg=$(awk '{print $2}' <<<"$line")
      for n in "${names[@]}"; do targets+=("$pkg $n"); done
      names=()
      ;;
    *) names=() ;;
  esac
done < <(go test -list '^Fuzz' "${pkgs[@]}")

if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz: no Fuzz targets in ${pkgs[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $fuzztime each" >&2

failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "fuzz: $name ($pkg)" >&2
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" >"$log" 2>&1; then
    continue
  fi
  grep -v '^fuzz: elapsed' "$log" >&2 || true
  failed+=("$name ($pkg)")
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "fuzz: failing inputs are under each package's testdata/fuzz/ (git status shows them)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed" >&2
