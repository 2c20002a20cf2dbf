#!/usr/bin/env bash
# `make test-debian [ARCH=arm64]`: the .deb on the real userland it is for, Debian 11 (RobustOS Pro).
#
#  1. builds dist/gatewayd_<version>_<arch>.deb (packaging/deb/build.sh) and a copy with a higher version
#     for the upgrade, and runs lintian on it when lintian is installed;
#  2. makes a Debian 11 root with debootstrap, cached as a tarball outside the clone (CI runs in a fresh
#     clone on the same machine): $GATEWAYD_DEBIAN_CACHE, default /var/cache/gatewayd-debian;
#  3. in a fresh copy of that root (chroot, /proc /sys /dev mounted, all unmounted on exit): installs the
#     package with dpkg -i + apt-get -f install from Debian 11's archive only, then runs `gatewayd check`,
#     `gatewayd demo --duration 20` (must end "lost 0"), the upgrade test (tests/debian/upgrade.py:
#     points pending before the upgrade are delivered after it), the test suite on the box's own
#     Python 3.9 (SUITE=all | unit | none), and removal then purge.
#
# ARCH=arm64 runs the same in an arm64 root under qemu-user-static through binfmt_misc (slow: on demand).
# Needs root, debootstrap, and for arm64 qemu-user-static + binfmt-support. Prints PASS/FAIL per step.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
arch=${ARCH:-amd64}
suite=${SUITE:-all}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}  # "none": without bullseye-security
cache=${GATEWAYD_DEBIAN_CACHE:-/var/cache/gatewayd-debian}
# Bump the suffix when the way the root is made changes, so a stale cached root is not reused.
base="bullseye-$arch-minbase-systemd-v2"
tarball="$cache/$base.tar.gz"

declare -a results=()
failed=0
started_all=$(date +%s)

say() { printf '\n=== %s\n' "$*"; }
die() { echo "test-debian: $*" >&2; exit 2; }

# step NAME COMMAND...: run, time and record one step; a failed step fails the run, later steps still run
# unless they depend on it (see `require`).
step() {
    local name=$1
    shift
    say "$name"
    local t0=$SECONDS
    if "$@"; then
        results+=("PASS  $(printf '%5ss' $((SECONDS - t0)))  $name")
        return 0
    fi
    results+=("FAIL  $(printf '%5ss' $((SECONDS - t0)))  $name")
    failed=1
    return 1
}

summary() {
    echo
    echo "=== test-debian ($arch, Debian 11 bullseye) summary"
    printf '%s\n' "${results[@]}"
    local total=$(($(date +%s) - started_all))
    if [ "$failed" = 0 ]; then echo "PASS  ($total s in all)"; else echo "FAIL  ($total s in all)"; fi
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts): sudo make test-debian"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
case "$arch" in
amd64) qemu_arch="" ;;
arm64) qemu_arch=aarch64 ;;
*) die "ARCH must be amd64 or arm64" ;;
esac

# ---------------------------------------------------------------------------------------------- foreign CPU
# An arm64 root runs through qemu-user-static, registered with binfmt_misc with the F flag (the kernel
# opens the interpreter at registration, so it works inside the chroot without a copy there).
binfmt_ready() {
    [ -z "$qemu_arch" ] && return 0
    local entry=/proc/sys/fs/binfmt_misc/qemu-$qemu_arch
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || {
            echo "cannot mount binfmt_misc (is the kernel module available? modprobe binfmt_misc)" >&2
            return 1
        }
    fi
    if [ ! -e "$entry" ] || ! grep -q '^enabled' "$entry"; then
        command -v update-binfmts >/dev/null || {
            echo "qemu-user-static and binfmt-support are missing: apt-get install qemu-user-static binfmt-support" >&2
            return 1
        }
        update-binfmts --enable "qemu-$qemu_arch" || {
            echo "update-binfmts --enable qemu-$qemu_arch failed: cat $entry" >&2
            return 1
        }
    fi
    grep -q '^enabled' "$entry" || { echo "$entry is not enabled" >&2; return 1; }
    echo "binfmt: $(grep -E '^(interpreter|flags)' "$entry" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------- packages
dist="$repo/build/debian-test/$arch"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/gatewayd/__init__.py")
deb="$dist/gatewayd_${version}_${arch}.deb"
newer="$dist/gatewayd_${version}+upgrade1_${arch}.deb"

build_packages() {
    rm -rf "$dist" && mkdir -p "$dist" || return 1
    DIST="$dist" ARCH="$arch" "$repo/packaging/deb/build.sh" || return 1
    DIST="$dist" ARCH="$arch" DEB_VERSION="$version+upgrade1" "$repo/packaging/deb/build.sh" || return 1
    ls -l "$dist"
}

run_lintian() {
    if ! command -v lintian >/dev/null; then
        echo "lintian is not installed: skipped (apt-get install lintian)"
        return 0
    fi
    # Every tag, down to pedantic, fails the step; justified exceptions are in packaging/deb/lintian-overrides.
    lintian --pedantic --fail-on error,warning,info,pedantic "$deb"
}

# ---------------------------------------------------------------------------------------------- the root
make_base() {
    if [ -s "$tarball" ]; then
        echo "cached: $tarball ($(du -h "$tarball" | cut -f1))"
        return 0
    fi
    mkdir -p "$cache" || return 1
    local tmp
    tmp=$(mktemp -d /var/tmp/gatewayd-debootstrap.XXXXXX) || return 1
    # minbase plus systemd, like the box (apt, dpkg, systemd); python3 and the rest come from the package's
    # Depends at install time, which is the point of the test.
    if ! debootstrap --variant=minbase --include=systemd,systemd-sysv --arch="$arch" bullseye "$tmp" "$mirror"; then
        tail -n 30 "$tmp/debootstrap/debootstrap.log" 2>/dev/null
        rm -rf "$tmp"
        return 1
    fi
    # With the point release and security updates, as a maintained box has them. A mirror that lacks the
    # security pool for this architecture (a 404 for every file) leaves the root on the point release,
    # loudly: apt would otherwise try to fetch the security versions of the package's dependencies.
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"
    mount -t proc proc "$tmp/proc" || return 1
    local rc=1 with_security
    for with_security in yes no; do
        [ "$with_security" = yes ] && [ "$security" = none ] && continue
        {
            echo "deb $mirror bullseye main"
            echo "deb $mirror bullseye-updates main"
            [ "$with_security" = yes ] && echo "deb $security bullseye-security main"
        } > "$tmp/etc/apt/sources.list"
        if chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -c 'apt-get -q update && apt-get -q -y dist-upgrade && apt-get clean'; then
            rc=0
            break
        fi
        [ "$with_security" = yes ] &&
            echo "WARNING: bullseye-security for $arch cannot be fetched from $security: the root goes without it" >&2
    done
    umount "$tmp/proc"
    [ "$rc" = 0 ] && tar -C "$tmp" --numeric-owner -czf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rc=$?
    rm -rf "$tmp"
    return $rc
}

root=""
mounted=()
cleanup() {
    if [ -n "$root" ] && [ -d "$root" ]; then
        # whatever still runs in the root (a daemon left by a failed step) goes first
        local p
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
        done
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
            umount -R "${mounted[i]}" 2>/dev/null || umount -lR "${mounted[i]}" 2>/dev/null
        done
        if grep -q " $root" /proc/mounts; then
            echo "test-debian: mounts left under $root, not deleting it" >&2
        else
            rm -rf "$root"
        fi
    fi
}
trap 'cleanup; summary' EXIT
trap 'exit 130' INT TERM

mount_in() {  # mount_in TARGET ARGS...: a mount under the root, undone by cleanup
    local target=$1
    shift
    mkdir -p "$target" && mount "$@" "$target" && mounted+=("$target")
}

enter_root() {
    root=$(mktemp -d /var/tmp/gatewayd-debian-root.XXXXXX) || return 1
    tar -C "$root" --numeric-owner -xzpf "$tarball" || return 1
    chmod 0755 "$root"  # it is / in there: mktemp's 0700 would shut the gatewayd user out of everything
    mkdir -p "$cache/apt-$arch" "$cache/pip-$arch"
    mount_in "$root/proc" -t proc proc &&
        mount_in "$root/sys" --rbind /sys && mount --make-rslave "$root/sys" &&
        mount_in "$root/dev" --rbind /dev && mount --make-rslave "$root/dev" &&
        mount_in "$root/run" -t tmpfs -o mode=0755 tmpfs &&
        mkdir -p "$root/run/lock" &&
        mount_in "$root/var/cache/apt/archives" --bind "$cache/apt-$arch" &&
        mount_in "$root/root/.cache/pip" --bind "$cache/pip-$arch" || return 1
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # apt's download sandbox user cannot write to the bind-mounted cache owned by this machine's root
    echo 'APT::Sandbox::User "root";' > "$root/etc/apt/apt.conf.d/99gatewayd-test"
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
    # This machine's CA bundle, for pip in the root only (a TLS-inspecting proxy's CA may be in it).
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/host-ca-certificates.crt" 2>/dev/null || true
    grep -q bullseye-security "$root/etc/apt/sources.list" ||
        echo "NOTE: this root has no bullseye-security (unreachable when the root was made)"
    in_root apt-get -q update
}

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# ---------------------------------------------------------------------------------------------- the checks
install_package() {
    cp "$deb" "$newer" "$root/tmp/" || return 1
    # dpkg -i stops at the missing dependencies (python3, python3-venv, ...); apt-get -f install fetches
    # them from Debian 11's archive and then configures gatewayd (postinst: venv, user, state directory).
    in_root dpkg -i "/tmp/$(basename "$deb")"
    in_root apt-get -q -y -f install || return 1
    # (not `tee /dev/stderr`: when stderr is a log file, tee truncates it)
    local status
    status=$(in_root dpkg-query -W -f '${Package} ${Version} ${Status}' gatewayd) || return 1
    echo "$status"
    [ "${status% install ok installed}" != "$status" ]
}

installed_layout() {
    in_root sh -euxc '
        python3 --version
        gatewayd --version
        test "$(readlink -f /opt/gatewayd/bin/python)" = "$(readlink -f /usr/bin/python3)"
        getent passwd gatewayd | grep -q ":/var/lib/gatewayd:/usr/sbin/nologin$"
        test "$(stat -c "%U:%G %a" /var/lib/gatewayd)" = "gatewayd:gatewayd 700"
        test "$(stat -c "%U %a" /etc/gatewayd/credentials)" = "root 700"
        test -L /etc/systemd/system/multi-user.target.wants/gatewayd.service
        dpkg-query -W -f "\${Conffiles}\n" gatewayd | grep -q "/etc/gatewayd/gatewayd.yaml"
        ls /usr/lib/gatewayd/wheels | wc -l
        du -sh /usr/lib/gatewayd/wheels /opt/gatewayd
        /opt/gatewayd/bin/python -m pip check
    '
}

check_inventory() {
    # the shipped inventory, with a file per credential the unit loads
    in_root sh -euc '
        for name in thingplus_client_secret thingplus_password rcms_client_secret loctube_secure_key; do
            (umask 077; printf "test-%s" "$name" > /etc/gatewayd/credentials/$name)
        done
        CREDENTIALS_DIRECTORY=/etc/gatewayd/credentials gatewayd check --config /etc/gatewayd/gatewayd.yaml
    '
}

demo() {
    local out="$root/tmp/demo.out"
    in_root gatewayd demo --duration 20 > "$out" 2>&1
    local rc=$?
    tail -n 5 "$out"
    [ "$rc" = 0 ] && tail -n 3 "$out" | grep -Eq 'sampled [0-9]+, delivered [0-9]+, lost 0'
}

copy_sources() {
    mkdir -p "$root/src" &&
        (cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) |
        tar -C "$root/src" -xf -
}

test_venv() {
    # The box's own python3 (3.9.2) with the development and test dependencies from PyPI, beside
    # /opt/gatewayd (which stays exactly what the package made).
    copy_sources || return 1
    local cert=()
    [ -s "$root/etc/host-ca-certificates.crt" ] && cert=(--cert /etc/host-ca-certificates.crt)
    # libfaketime for the clock tests, as on the machine running CI (a test tool, not a dependency)
    in_root apt-get -q -y install faketime &&
        in_root python3 -m venv /root/testenv &&
        in_root /root/testenv/bin/python -m pip install -q "${cert[@]}" --upgrade pip &&
        in_root /root/testenv/bin/python -m pip install -q "${cert[@]}" -e '/src[dev]'
}

upgrade() {
    # The maintainer scripts call systemctl only when /run/systemd/system exists (systemd is running):
    # make it so for this step, with the stand-in first on PATH.
    install -m 0755 "$here/fake-systemctl" "$root/usr/local/sbin/systemctl" || return 1
    mkdir -p "$root/run/systemd/system"
    local rc=0
    in_root sh -c "cd /src && /root/testenv/bin/python -m tests.debian.upgrade /tmp/$(basename "$newer")" || rc=$?
    rm -rf "$root/usr/local/sbin/systemctl" "$root/run/systemd/system"
    return $rc
}

test_suite() {
    local paths=""
    case "$suite" in
    all) paths="" ;;
    unit) paths="tests/unit" ;;
    *) echo "SUITE=$suite: skipped"; return 0 ;;
    esac
    in_root sh -c "cd /src && /root/testenv/bin/python -m pytest -q -p no:cacheprovider $paths"
}

remove_and_purge() {
    in_root sh -euxc '
        apt-get -q -y remove gatewayd
        test ! -e /opt/gatewayd && test ! -e /usr/bin/gatewayd
        test -f /var/lib/gatewayd/outbox.db && test -f /etc/gatewayd/gatewayd.yaml
        getent passwd gatewayd >/dev/null
        apt-get -q -y purge gatewayd
        test ! -e /var/lib/gatewayd && test ! -e /etc/gatewayd
        test ! -e /etc/systemd/system/multi-user.target.wants/gatewayd.service
    '
}

# ---------------------------------------------------------------------------------------------- run
step "binfmt_misc for $arch" binfmt_ready || exit 1
step "build the packages (make deb ARCH=$arch, and $version+upgrade1)" build_packages || exit 1
step "lintian" run_lintian
# Runs on one machine share the cache (apt's archive lock would make a second apt-get fail): one at a time.
mkdir -p "$cache" || exit 1
exec 9> "$cache/.lock-$arch"
flock -n 9 || { echo "waiting for another test-debian ($arch) that uses $cache"; flock 9; }
step "Debian 11 root ($tarball)" make_base || exit 1
step "enter a fresh copy of the root" enter_root || exit 1
step "dpkg -i + apt-get -f install" install_package || exit 1
step "installed layout" installed_layout
step "gatewayd check (the shipped /etc/gatewayd/gatewayd.yaml)" check_inventory
step "gatewayd demo --duration 20 ends with lost 0" demo
if step "test venv on the box's python3 (dependencies from PyPI)" test_venv; then
    step "upgrade to $version+upgrade1 keeps and delivers pending points" upgrade
    step "test suite on Python 3.9 (SUITE=$suite)" test_suite
fi
step "remove keeps the state, purge deletes it" remove_and_purge
exit $failed
