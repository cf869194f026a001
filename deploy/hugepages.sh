#!/usr/bin/env bash
# Reserves N 2 MiB hugepages and mounts hugetlbfs on /dev/hugepages (or $HUGE_DIR),
# then reports what it did. Idempotent: never lowers a larger reservation unless
# --exact is given.
#
#   sudo deploy/hugepages.sh 512            # at least 512 pages (1 GiB)
#   sudo deploy/hugepages.sh 512 --exact    # exactly 512 (frees pages above that if unused)
#   deploy/hugepages.sh --status            # report only
#
# To make it permanent: vm.nr_hugepages = N in /etc/sysctl.d/80-hugepages.conf, and
# "nodev /dev/hugepages hugetlbfs defaults 0 0" in /etc/fstab (systemd usually mounts it).
set -euo pipefail

HUGE_DIR=${HUGE_DIR:-/dev/hugepages}
NR=/proc/sys/vm/nr_hugepages

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

status() {
    local total free size
    total=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
    free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
    size=$(awk '/^Hugepagesize/ {print $2}' /proc/meminfo)
    echo "hugepages: ${total} x ${size} kB reserved, ${free} free"
    if grep -qs " ${HUGE_DIR} hugetlbfs " /proc/mounts; then
        echo "hugetlbfs: mounted on ${HUGE_DIR}"
    else
        echo "hugetlbfs: NOT mounted on ${HUGE_DIR}"
    fi
    local stale
    stale=$(find "${HUGE_DIR}" -maxdepth 1 -type f 2>/dev/null | wc -l || true)
    if [ "${stale:-0}" -gt 0 ]; then
        echo "files in ${HUGE_DIR}: ${stale} (pages in use, or left by DPDK processes that are gone)"
    fi
}

case "${1:-}" in
    -h|--help) usage 0 ;;
    --status) status; exit 0 ;;
    '') usage 2 ;;
esac

WANT=$1
EXACT=${2:-}
if ! [[ "$WANT" =~ ^[0-9]+$ ]]; then
    echo "hugepages.sh: N must be a number of 2 MiB pages, got '$WANT'" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "hugepages.sh: needs root (sudo $0 $*)" >&2
    exit 1
fi
if [ "$(awk '/^Hugepagesize/ {print $2}' /proc/meminfo)" != 2048 ]; then
    echo "hugepages.sh: the default hugepage size here is not 2048 kB; reserving in the default size" >&2
fi

before=$(cat "$NR")
if [ "$EXACT" = "--exact" ] || [ "$before" -lt "$WANT" ]; then
    echo "$WANT" > "$NR"
fi
after=$(cat "$NR")
if [ "$after" -lt "$WANT" ]; then
    echo "hugepages.sh: asked for $WANT pages, the kernel gave $after (memory too fragmented?" \
         "try right after boot, or hugepages=$WANT on the kernel command line)" >&2
fi
echo "reserved: $before -> $after pages"

if ! grep -qs " ${HUGE_DIR} hugetlbfs " /proc/mounts; then
    mkdir -p "$HUGE_DIR"
    mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_DIR"
    echo "mounted hugetlbfs on $HUGE_DIR"
fi
status
[ "$after" -ge "$WANT" ]
