#!/usr/bin/env bash
# Builds murder's release artifacts into dist/ (or $DIST):
#   murder_X.Y.Z_linux_ARCH.tar.gz  static binary, LICENSE, README.md, docs/
#   murder_X.Y.Z_ARCH.deb           /usr/bin/murder, systemd units, docs
#   SHA256SUMS                      of all of the above
# for ARCH in amd64 and arm64 ($RELEASE_ARCHES overrides the list).
#
# Usage: scripts/release.sh VERSION   (v0.3.0 or 0.3.0)
#
# It builds from a clean export of the git tag vVERSION when that tag
# exists, else of HEAD; uncommitted changes are never part of a release.
# The version and the commit are stamped into the binary. The .deb is made
# by nfpm (github.com/goreleaser/nfpm), run through the Go module proxy at a
# pinned version; nothing else is downloaded.
set -euo pipefail

nfpm_version=v2.48.0

if [ $# -ne 1 ]; then
  echo "usage: $0 VERSION (e.g. v0.3.0)" >&2
  exit 2
fi
num=${1#v}
if ! [[ $num =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]]; then
  echo "release: version $1: want vMAJOR.MINOR.PATCH, e.g. v0.3.0 or v0.3.0-rc.1" >&2
  exit 2
fi
tag=v$num
repo=$(cd "$(dirname "$0")/.." && pwd)
dist=${DIST:-$repo/dist}
arches=${RELEASE_ARCHES:-amd64 arm64}

ref=HEAD
if git -C "$repo" rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
  ref=$tag
elif [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "release: no tag $tag; building HEAD without your uncommitted changes" >&2
fi
commit=$(git -C "$repo" rev-parse "$ref^{commit}")
epoch=$(git -C "$repo" log -1 --format=%ct "$commit")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$dist"
git -C "$repo" archive "$commit" | tar -x -C "$work/src"
cd "$work/src"

# Build nfpm once (the module proxy serves it; the Go build cache keeps it).
GOBIN="$work/tools" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version"

for arch in $arches; do
  echo "release: building murder $tag linux/$arch" >&2
  out=$work/murder_${num}_linux_$arch
  mkdir -p "$out"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$tag -X main.commit=$commit" -o "$out/murder" ./cmd/murder
  cp LICENSE README.md "$out/"
  cp -r docs "$out/docs"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$work" -cf - "murder_${num}_linux_$arch" | gzip -n -9 >"$dist/murder_${num}_linux_$arch.tar.gz"

  mkdir -p build && cp "$out/murder" build/murder
  VERSION=$num ARCH=$arch SOURCE_DATE_EPOCH=$epoch \
    "$work/tools/nfpm" package --config packaging/nfpm.yaml --packager deb \
    --target "$dist/murder_${num}_$arch.deb" >&2
done

cd "$dist"
rm -f SHA256SUMS
sha256sum murder_"${num}"_*.tar.gz murder_"${num}"_*.deb >SHA256SUMS
echo "release: murder $tag ($commit) in $dist:" >&2
ls -l "$dist" >&2
