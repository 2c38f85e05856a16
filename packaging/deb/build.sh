#!/bin/sh
# Builds pgveil_<version>_<arch>.deb from the checkout: make deb runs this,
# and so does packaging's test. Needs Go, gcc, dpkg-deb and dpkg-shlibdeps
# (Debian's dpkg-dev); no network beyond the Go module proxy.
#
# Environment: GO (default go), OUT (the directory for the .deb, default
# bin), DEB_VERSION (default: version.sh from git describe), DEB_MAINTAINER.
# Prints the path of the package it wrote.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
GO=${GO:-go}
OUT=${OUT:-bin}
MAINTAINER=${DEB_MAINTAINER:-pgveil developers <pgveil@users.noreply.github.com>}
for tool in dpkg-deb dpkg-shlibdeps dpkg-buildflags; do
  command -v $tool >/dev/null || { echo "build.sh: $tool is missing (apt-get install dpkg-dev)" >&2; exit 1; }
done

version=$("$here/version.sh")
commit=$(git rev-parse HEAD 2>/dev/null || true)
case $($GO env GOARCH) in
  386) arch=i386 ;;
  arm) arch=armhf ;;
  *) arch=$($GO env GOARCH) ;; # amd64, arm64, ppc64le, riscv64, s390x: the same names
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
doc=$stage/usr/share/doc/pgveil

# -trimpath: no build directory in the binary; -s -w: no symbol table or
# DWARF (as Debian strips), Go's own tables still give panics their lines.
# PIE, and Debian's hardening flags for the C parser (fortify, stack
# protector, read-only relocations bound at start).
mkdir -p "$stage/usr/bin"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CGO_CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS) CGO_CFLAGS=$(dpkg-buildflags --get CFLAGS) \
  CGO_LDFLAGS=$(dpkg-buildflags --get LDFLAGS) \
  $GO build -trimpath -buildmode=pie \
  -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
  -o "$stage/usr/bin/pgveil" ./cmd/pgveil

install -d -m 0755 "$stage/etc/pgveil" "$stage/lib/systemd/system" "$doc/examples" \
  "$stage/usr/share/man/man1" "$stage/DEBIAN"
install -m 0644 "$here/pgveil.yaml" "$stage/etc/pgveil/pgveil.yaml"
install -m 0644 "$here/pgveil.service" "$stage/lib/systemd/system/pgveil.service"
install -m 0644 "$here/copyright" "$doc/copyright"
install -m 0644 docs/grafana-dashboard.json docs/prometheus-alerts.yaml "$doc/examples/"
gzip -9n <README.md >"$doc/README.md.gz"
gzip -9n <"$here/pgveil.1" >"$stage/usr/share/man/man1/pgveil.1.gz"
date=$(TZ=UTC git show -s --format=%cd --date=format-local:'%a, %d %b %Y %H:%M:%S +0000' HEAD 2>/dev/null ||
  TZ=UTC date -R)
printf 'pgveil (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
  "$version" "${commit:-unknown}" "$MAINTAINER" "$date" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/README.md.gz" "$doc/changelog.gz" "$stage/usr/share/man/man1/pgveil.1.gz"

# The shared libraries the cgo binary links (libc), as Depends.
mkdir -p "$work/src/debian"
printf 'Source: pgveil\n\nPackage: pgveil\nArchitecture: any\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$stage/usr/bin/pgveil" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }

for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f -exec md5sum {} + | sort -k2) >"$stage/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$MAINTAINER|" \
  -e "s|@INSTALLED_SIZE@|$size|" -e "s|@SHLIBS@|$shlibs|" "$here/control.in" >"$stage/DEBIAN/control"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

mkdir -p "$OUT"
deb=$OUT/pgveil_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
