#!/usr/bin/env bash
# Build dist/gatewayd_<version>_<arch>.deb for Debian 11 / RobustOS Pro, on this machine, for either
# architecture: `make deb ARCH=amd64|arm64` runs it.
#
# Why this shape: an operator installs with `apt install ./gatewayd_<version>_arm64.deb` on a box that is
# often offline, so every wheel gatewayd needs (for the box's CPython 3.9 and architecture) is downloaded
# here and shipped inside; postinst makes /opt/gatewayd from them with the box's own python3, fetching
# nothing. dpkg-deb on a hand-laid tree is all it takes: no debhelper, no source package.
#
# Environment: ARCH (amd64 | arm64, default amd64), PYTHON39 (a CPython 3.9 to download with: pip
# evaluates the dependencies' markers, e.g. `python_version < "3.11"`, against the interpreter it runs on,
# whatever --python-version says), DEB_VERSION (default: gatewayd's own version), DIST (default dist).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
arch=${ARCH:-amd64}
python=${PYTHON39:-python3.9}
dist=${DIST:-$root/dist}
maintainer=${DEB_MAINTAINER:-"gatewayd maintainers <maintainers@users.noreply.h-seed-dd447556.example>"}

case "$arch" in
amd64) machine=x86_64 ;;
arm64) machine=aarch64 ;;
*) echo "build.sh: ARCH must be amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || {
    echo "build.sh: cannot run '$python'; set PYTHON39 to a CPython 3.9 (the box's version)" >&2
    exit 2
}
if [ "$pyver" != 3.9 ]; then
    echo "build.sh: $python is Python $pyver; the package is for Debian 11's Python 3.9" >&2
    exit 2
fi
upstream=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/gatewayd/__init__.py")
version=${DEB_VERSION:-$upstream}

work="$root/build/deb/$arch"
tree="$work/tree"
wheels="$tree/usr/lib/gatewayd/wheels"
rm -rf "$work"
mkdir -p "$wheels" "$dist"

# ---- the wheels: gatewayd's own (pure Python) and its dependencies' for cp39 on the target architecture
# manylinux up to glibc 2.31, Debian 11's: pip takes the newest release with a wheel that fits.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/own" "$root"
own=$(ls "$work/own"/gatewayd-*.whl)
platforms=(--platform "manylinux2014_$machine")
for minor in $(seq 17 31); do platforms+=(--platform "manylinux_2_${minor}_$machine"); done
if [ "$arch" = amd64 ]; then platforms+=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64); fi
"$python" -m pip download --quiet --disable-pip-version-check --dest "$wheels" \
    --only-binary=:all: --implementation cp --python-version 3.9 --abi cp39 "${platforms[@]}" "$own"
cp "$own" "$wheels/"
if ls "$wheels" | grep -v -e '-none-any\.whl$' -e "-cp39-" -e '-abi3-' | grep .; then
    echo "build.sh: a wheel above is not for CPython 3.9" >&2
    exit 1
fi

# ---- the files
install -D -m 0644 "$root/systemd/gatewayd.service" "$tree/lib/systemd/system/gatewayd.service"
install -D -m 0644 "$root/systemd/gatewayd.yaml" "$tree/etc/gatewayd/gatewayd.yaml"
mkdir -p "$tree/usr/bin"
ln -s /opt/gatewayd/bin/gatewayd "$tree/usr/bin/gatewayd"
install -D -m 0644 "$here/gatewayd.1" "$tree/usr/share/man/man1/gatewayd.1"
gzip -9n "$tree/usr/share/man/man1/gatewayd.1"
doc="$tree/usr/share/doc/gatewayd"
install -D -m 0644 "$here/copyright" "$doc/copyright"
sed "s/@VERSION@/$version/" "$here/changelog" | gzip -9n > "$doc/changelog.gz"
gzip -9n < "$root/README.md" > "$doc/README.md.gz"
install -D -m 0644 "$root/systemd/README.md" "$doc/systemd.md"
gzip -9n "$doc/systemd.md"
install -D -m 0644 "$here/lintian-overrides" "$tree/usr/share/lintian/overrides/gatewayd"
chmod 0644 "$wheels"/*.whl "$doc"/*.gz
find "$tree" -type d -exec chmod 0755 {} +

# ---- control area
mkdir -p "$tree/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$tree/DEBIAN/$script"
done
echo /etc/gatewayd/gatewayd.yaml > "$tree/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_kb/" \
    -e "s/@MAINTAINER@/$maintainer/" "$here/control" > "$tree/DEBIAN/control"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$tree/DEBIAN/md5sums"

deb="$dist/gatewayd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
echo "$deb"
