#!/usr/bin/env bash
# Minimal Debian systems, to try linreg as a new user of today's Pythons would.
#
#   bash scripts/rootfs.sh make SUITE         make SUITE's root filesystem once (cached)
#   bash scripts/rootfs.sh run SUITE [CMD]    CMD (default: a shell) in a fresh clone of this
#                                             checkout's HEAD, at /root/linreg inside SUITE
#   bash scripts/rootfs.sh clean [SUITE]      remove the cached root filesystems
#
# SUITE is bookworm (Debian 12, python3 3.11.2), trixie (Debian 13, python3
# 3.13), forky (python3 3.14) or sid (python3.15 only). Each is `debootstrap
# --variant=minbase` plus git, the Python venv package and the system
# libraries the README names, and nothing else. Root only (debootstrap, chroot, namespaces).
#
# `run` never changes the cached tree: it works on an overlay whose writable
# half is a tmpfs, in a private mount and PID namespace. When CMD ends, every
# process it started ends with the namespace, and every mount, the overlay's
# tmpfs included, goes with it: nothing is left mounted, running or written,
# whatever way CMD ends (SIGKILL included). Only downloads are kept, in
# $LINREG_ROOTFS/cache (pip's and uv's caches), so that each run does not fetch
# mxnet again; what they install is the same.
#
# LINREG_ROOTFS chooses where the root filesystems live (default
# /var/cache/linreg-rootfs). LINREG_ROOTFS_OUT=DIR mounts the host folder DIR
# at /out inside, for what CMD hands back (CI's records of the numbers).
#
# The environment inside is a new login's: HOME, PATH, LANG, and the host's
# CA-bundle variables (this machine reaches the package index through a proxy
# whose CA the host trusts; the host's local CA certificates are installed in
# each root filesystem too). Not CI: tests that need what a minimal system
# lacks (ip, for the test hosts) skip there, and CI runs them on the host.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
store="${LINREG_ROOTFS:-/var/cache/linreg-rootfs}"
mirror="http://deb.debian.org/debian"

fail() {
    echo "rootfs.sh: $*" >&2
    exit 2
}

# SUITE -> "debootstrap-script packages": bookworm's debootstrap has no script
# named forky; sid's is the one for every suite after trixie.
suite_recipe() {
    local common="ca-certificates,git,libgomp1,libquadmath0"
    case "$1" in
        bookworm) echo "bookworm $common,python3-venv" ;;
        trixie) echo "trixie $common,python3-venv" ;;
        forky) echo "sid $common,python3-venv" ;;
        sid) echo "sid $common,python3.15-venv" ;;
        *) fail "unknown suite '$1': bookworm, trixie, forky or sid" ;;
    esac
}

make_rootfs() {
    local suite="$1" script packages target tmp
    read -r script packages <<<"$(suite_recipe "$suite")"
    target="$store/$suite"
    [ -e "$target/.linreg-rootfs" ] && return 0
    command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt install debootstrap)"
    mkdir -p "$store"
    tmp="$(mktemp -d "$store/.$suite.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "rootfs.sh: making $suite in $target (debootstrap --variant=minbase; a few minutes)" >&2
    debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" \
        "/usr/share/debootstrap/scripts/$script" >"$tmp.log" 2>&1 \
        || { tail -5 "$tmp.log" >&2; rm -f "$tmp.log"; fail "debootstrap $suite failed (above); rerun to retry"; }
    rm -f "$tmp.log"
    # A suite in development may be served past its Release file's Valid-Until.
    echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99linreg-valid-until"
    # The host's local CAs (a proxy's, here), so that pip and uv can verify the index.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$tmp/usr/local/share/ca-certificates/"
        chroot "$tmp" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed in $suite"
    fi
    chroot "$tmp" apt-get clean
    chroot "$tmp" sh -c 'ls /usr/bin/python3*' | tr '\n' ' ' >"$tmp/.linreg-rootfs"
    mv -T "$tmp" "$target"
    trap - EXIT
    echo "rootfs.sh: $suite ready: $(cat "$target/.linreg-rootfs")" >&2
}

# Inside the private namespaces (run re-executes itself here).
inside() {
    local suite="$1"
    shift
    local lower="$store/$suite" merged
    # One folder serves every run as its mount point, each run's tmpfs
    # mounted there in its own namespace only: it and all above it vanish with
    # the namespace, and the empty folder stays for the next run.
    top="$store/.mnt"
    mkdir -p "$top"
    mount -t tmpfs -o size=16g linreg-rootfs "$top"
    mkdir "$top/upper" "$top/work" "$top/merged"
    merged="$top/merged"
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$top/upper,workdir=$top/work" "$merged"
    mount -t proc proc "$merged/proc"
    mount --rbind /dev "$merged/dev"
    mount -t tmpfs -o size=4g,mode=1777 shm "$merged/dev/shm"
    mount --rbind /sys "$merged/sys"
    mount -t tmpfs -o mode=1777 tmp "$merged/tmp"
    mkdir -p "$merged/src" "$store/cache" "$merged/root/.cache"
    mount --bind -o ro "$repo" "$merged/src"
    mount --bind "$store/cache" "$merged/root/.cache"
    if [ -n "${LINREG_ROOTFS_OUT:-}" ]; then
        mkdir -p "$merged/out"
        mount --bind "$LINREG_ROOTFS_OUT" "$merged/out"
    fi
    cp -L /etc/resolv.conf "$merged/etc/resolv.conf"
    local env=(HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}"
               PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
    for name in SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE PIP_CERT CURL_CA_BUNDLE GIT_SSL_CAINFO; do
        [ -n "${!name:-}" ] && env+=("$name=${!name}")
    done
    [ "$#" -gt 0 ] || set -- bash
    chroot "$merged" /usr/bin/env -i "${env[@]}" bash -c \
        'git clone -q /src /root/linreg && cd /root/linreg && exec "$@"' clone "$@"
}

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot and namespaces)"
case "${1:-}" in
    make)
        [ "$#" = 2 ] || fail "usage: rootfs.sh make SUITE"
        make_rootfs "$2"
        ;;
    run)
        [ "$#" -ge 2 ] || fail "usage: rootfs.sh run SUITE [CMD...]"
        make_rootfs "$2"
        # --kill-child: if this script is killed, the namespace's first process
        # gets SIGKILL, and every process inside with it.
        exec unshare --mount --propagation private --pid --fork --kill-child \
            bash "${BASH_SOURCE[0]}" _inside "${@:2}"
        ;;
    _inside)
        inside "${@:2}"
        ;;
    clean)
        for suite in ${2:-bookworm trixie forky sid}; do
            suite_recipe "$suite" >/dev/null
            rm -rf "${store:?}/$suite" "$store/.$suite".*
        done
        ;;
    *)
        fail "usage: rootfs.sh make SUITE | run SUITE [CMD...] | clean [SUITE]  (SUITE: bookworm, trixie, forky, sid)"
        ;;
esac
