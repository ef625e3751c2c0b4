#!/usr/bin/env bash
# Times `murder create` against the two-step baseline (GNU tar compressing,
# then mktorrent hashing) in one run, for tgz and tar.zst, on two trees:
# the Go toolchain's own tree, $(go env GOROOT), and a generated mixed tree
# of about 1 GiB (gentree.py; made under /tmp and removed afterwards).
#
#   bench/create/run.sh            # REPS=3 PAUSE=3 by default
#   REPS=5 PAUSE=5 bench/create/run.sh
#
# Baselines, as a user would type them:
#   tgz:     tar czf OUT.tgz --exclude='.git*' -C TREE .  && mktorrent OUT.tgz
#   tar.zst: tar --zstd -cf OUT.tar.zst --exclude='.git*' -C TREE . && mktorrent OUT.tar.zst
#
# Before every timed run: outputs removed, sync, pause. Contenders
# alternate (A B A B ...). Prints every run, then the median wall time and
# CPU time (user+sys) of each, and the baseline/murder ratio of medians.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPS=${REPS:-3}
PAUSE=${PAUSE:-3}
for tool in tar gzip zstd mktorrent /usr/bin/time /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/murder-bench-create.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/murder" ./cmd/murder
mkdir -p "$work/out"
/usr/bin/python3 bench/create/gentree.py "$work/mixed"

goroot=$(go env GOROOT)
announce=http://127.0.0.1:8998/announce
results="$work/results.txt"

# contender NAME TREE FORMAT: prints the shell command to time.
contender() {
  local name=$1 tree=$2 format=$3 out="$work/out"
  case "$name/$format" in
    murder/*) echo "'$work/murder' create --tag bench --files-path '$tree' --tracker 127.0.0.1:8998 --temp-path '$out' --format $format --force >/dev/null" ;;
    baseline/tgz) echo "tar czf '$out/base.tgz' --exclude='.git*' -C '$tree' . && mktorrent -a $announce -o '$out/base.tgz.torrent' '$out/base.tgz' >/dev/null" ;;
    baseline/tar.zst) echo "tar --zstd -cf '$out/base.tar.zst' --exclude='.git*' -C '$tree' . && mktorrent -a $announce -o '$out/base.tar.zst.torrent' '$out/base.tar.zst' >/dev/null" ;;
  esac
}

run() { # TREE_LABEL TREE FORMAT NAME REP
  local label=$1 tree=$2 format=$3 name=$4 rep=$5
  rm -rf "$work/out" && mkdir -p "$work/out"
  sync
  sleep "$PAUSE"
  /usr/bin/time -f "%e %U %S" -o "$work/time" bash -c "$(contender "$name" "$tree" "$format")"
  read -r wall user sys < "$work/time"
  size=$(stat -c %s "$work/out/"*."$format" 2>/dev/null | head -1)
  printf '%-7s %-8s %-9s rep %d: %7.2f s wall %7.2f s cpu  %s bytes\n' "$label" "$format" "$name" "$rep" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$size"
  echo "$label $format $name $wall $(awk "BEGIN{print $user + $sys}") $size" >> "$results"
}

echo "bench: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), REPS=$REPS PAUSE=$PAUSE"
for t in "goroot:$goroot" "mixed:$work/mixed"; do
  label=${t%%:*} tree=${t#*:}
  tar cf - -C "$tree" . > /dev/null # warm the page cache for both contenders alike
  echo "bench: tree $label = $tree ($(du -sh --exclude='.git*' "$tree" | cut -f1))"
  for format in tgz tar.zst; do
    for rep in $(seq 1 "$REPS"); do
      for name in murder baseline; do
        run "$label" "$tree" "$format" "$name" "$rep"
      done
    done
  done
done

/usr/bin/python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print()
print("%-7s %-8s %14s %14s %14s %14s %7s %7s" % ("tree", "format", "murder wall", "baseline wall", "murder cpu", "baseline cpu", "ratio", "cpu"))
for tree in dict.fromkeys(r[0] for r in rows):
    for fmt in dict.fromkeys(r[1] for r in rows):
        med = {}
        for name in ("murder", "baseline"):
            sel = [r for r in rows if r[0] == tree and r[1] == fmt and r[2] == name]
            if sel:
                med[name] = (statistics.median(float(r[3]) for r in sel), statistics.median(float(r[4]) for r in sel))
        if len(med) == 2:
            m, b = med["murder"], med["baseline"]
            print("%-7s %-8s %12.2f s %12.2f s %12.2f s %12.2f s %6.1fx %6.1fx" % (tree, fmt, m[0], b[0], m[1], b[1], b[0] / m[0], b[1] / m[1]))
print("\nratio = baseline median wall / murder median wall (higher is better for murder); cpu = the same for CPU seconds")
PY
