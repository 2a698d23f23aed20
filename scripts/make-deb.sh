#!/usr/bin/env bash
# Builds nvemu_<version>_amd64.deb with Debian's tooling in a copy of the
# source tree under OUT (dpkg-buildpackage writes next to the tree it
# builds, so nothing lands in the checkout's parent), then runs lintian.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-deb}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
rm -rf "$OUT/src" "$OUT"/nvemu_*
mkdir -p "$OUT/src"
# Tracked and new (not ignored) files: what a commit of this tree would hold.
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$OUT/src"
# Reuse the caller's compiler cache: debhelper points HOME elsewhere.
if command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.cache/ccache")}
  export CCACHE_BASEDIR="$OUT/src"
fi
(cd "$OUT/src" && dpkg-buildpackage -b -uc -us -j"$(nproc)" >"$OUT/build.log" 2>&1) || {
  tail -40 "$OUT/build.log" >&2
  echo "make-deb: dpkg-buildpackage failed; the whole log is $OUT/build.log" >&2
  exit 1
}
deb="$OUT/nvemu_${version}_amd64.deb"
test -f "$deb" || { echo "make-deb: $deb was not produced" >&2; exit 1; }
# Overrides, if any, live in debian/nvemu.lintian-overrides with their reasons.
lintian --fail-on error,warning "$OUT/nvemu_${version}_amd64.changes"
echo "make-deb: $deb"
