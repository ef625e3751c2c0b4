#!/usr/bin/env bash
# CPU time per byte of `murder deploy --local N` as N grows: every process
# (tracker, seeder, N peers) on this machine, a 19 MiB artifact of random
# bytes (1216 pieces of 16 KiB), for N = 10, 30 and 100 by default. Prints
# the CPU time (user + sys, of all processes) per GiB delivered (N times
# the artifact) for each build given, alternating the builds.
#
#   bench/local/run.sh                          # this tree
#   bench/local/run.sh /tmp/murder-old          # this tree and another build
#   NS="10 30" REPS=2 bench/local/run.sh
#
# A host's CPU per byte should not grow with the swarm; see README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=${NS:-"10 30 100"}
REPS=${REPS:-1}
work=$(mktemp -d /tmp/murder-bench-local.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/murder" ./cmd/murder
builds=("$work/murder" "$@")
head -c $((19 << 20)) /dev/urandom >"$work/artifact.bin"
size=$(stat -c %s "$work/artifact.bin")
printf '%-8s %-28s %6s %10s %10s %12s\n' N build rep wall_s cpu_s cpu_s_per_GiB
for n in $NS; do
  for rep in $(seq "$REPS"); do
    for b in "${builds[@]}"; do
      rm -rf "$work/out"
      sync
      sleep 2
      /usr/bin/time -f '%e %U %S' -o "$work/time" "$b" deploy --local "$n" --files-path "$work/artifact.bin" \
        --destination-path "$work/out" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
      read -r wall user sys <"$work/time"
      awk -v n="$n" -v b="$b" -v r="$rep" -v w="$wall" -v u="$user" -v s="$sys" -v f="$size" \
        'BEGIN { c = u + s; printf "%-8d %-28s %6d %10.2f %10.2f %12.2f\n", n, b, r, w, c, c / (n * f / 2^30) }'
    done
  done
done
