#!/bin/sh
# Prints the Debian version of the checkout, from git describe:
#
#   v1.2.3                  -> 1.2.3
#   v1.2.3-rc1              -> 1.2.3~rc1         (sorts before 1.2.3)
#   v1.2.3-4-gabc1234       -> 1.2.3+4.gabc1234  (4 commits after the tag)
#   abc1234 (no tag)        -> 0.0~git20261203.abc1234 (the commit's UTC date)
#   ...-dirty               -> ...~dirty          (sorts before the clean build)
#
# Usage: version.sh [DESCRIBE [DATE]]; without arguments it asks git.
# DEB_VERSION in the environment wins over both (a release script's choice).
set -eu

if [ -n "${DEB_VERSION:-}" ]; then
  v=$DEB_VERSION
else
  describe=${1:-$(git describe --tags --always --dirty)}
  date=${2:-$(TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d HEAD)}
  dirty=
  case $describe in *-dirty) dirty='~dirty'; describe=${describe%-dirty} ;; esac
  if printf '%s\n' "$describe" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
    # tag-N-gSHA: N commits after the tag
    sha=${describe##*-}
    rest=${describe%-*}
    n=${rest##*-}
    tag=${rest%-*}
    v=$(printf '%s' "${tag#v}" | tr - '~')+$n.$sha
  elif printf '%s\n' "$describe" | grep -Eq '^[0-9a-f]{4,40}$'; then
    v=0.0~git$date.$describe
  else
    v=$(printf '%s' "${describe#v}" | tr - '~')
  fi
  v=$v$dirty
fi

# Debian policy 5.6.12, for a version without epoch or revision.
if ! printf '%s\n' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
  echo "version.sh: \"$v\" is not a Debian version (it must start with a digit and hold only letters, digits and . + ~); tag the release like v1.2.3 or set DEB_VERSION" >&2
  exit 1
fi
printf '%s\n' "$v"
