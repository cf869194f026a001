#!/usr/bin/env bash
# Binds a PCI NIC to vfio-pci for DPDK (with dpdk-devbind), and gives it back.
#
#   sudo deploy/bind-nic.sh 0000:01:00.0             # bind to vfio-pci
#   sudo deploy/bind-nic.sh --restore 0000:01:00.0   # back to the kernel driver it had
#   deploy/bind-nic.sh --status                      # network devices and their drivers
#   options: --dry-run (say what would be done), --force (bind although the
#            kernel interface is up with an address or a route)
#
# The NIC disappears from the kernel while bound (its interface goes away): never
# bind the interface you reach this host through. The original driver is saved in
# /var/lib/ringline/ so --restore knows where to return it. Bindings do not survive
# a reboot. dpdk-devbind comes with Debian's `dpdk` package (apt-get install dpdk).
set -euo pipefail

STATE_DIR=${STATE_DIR:-/var/lib/ringline}
DRY=0
FORCE=0
RESTORE=0
STATUS=0
PCI=""

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "bind-nic.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage 0 ;;
        --dry-run) DRY=1 ;;
        --force) FORCE=1 ;;
        --restore) RESTORE=1 ;;
        --status) STATUS=1 ;;
        -*) echo "bind-nic.sh: unknown option $1" >&2; usage 2 ;;
        *) PCI=$1 ;;
    esac
    shift
done

devbind() {
    local d
    for d in dpdk-devbind.py dpdk-devbind /usr/share/dpdk/usertools/dpdk-devbind.py \
             /usr/local/bin/dpdk-devbind.py; do
        if command -v "$d" >/dev/null 2>&1; then command -v "$d"; return 0; fi
    done
    return 1
}

driver_of() {
    local link=/sys/bus/pci/devices/$1/driver
    if [ -L "$link" ]; then basename "$(readlink -f "$link")"; else echo none; fi
}

# Kernel interfaces of a PCI device (virtio NICs have theirs one level down).
ifaces_of() {
    local d
    for d in /sys/bus/pci/devices/"$1"/net/* /sys/bus/pci/devices/"$1"/virtio*/net/*; do
        [ -e "$d" ] && basename "$d"
    done
    return 0
}

status() {
    echo "PCI network devices:"
    local dev found=0
    for dev in /sys/bus/pci/devices/*; do
        [ "$(cut -c1-4 "$dev/class")" = 0x02 ] || continue
        found=1
        local a; a=$(basename "$dev")
        printf '  %s  driver=%-12s %s\n' "$a" "$(driver_of "$a")" "$(ifaces_of "$a" | tr '\n' ' ')"
    done
    [ $found = 1 ] || echo "  (none)"
    if [ -d /sys/kernel/iommu_groups ] && [ -n "$(ls -A /sys/kernel/iommu_groups)" ]; then
        echo "IOMMU: on"
    else
        echo "IOMMU: off (vfio-pci needs it, or vfio's no-IOMMU mode)"
    fi
    if [ -d "$STATE_DIR" ]; then
        local f
        for f in "$STATE_DIR"/bind-*.driver; do
            [ -e "$f" ] || continue
            echo "saved: $(basename "$f" .driver | sed 's/^bind-//') was on $(cat "$f")"
        done
    fi
}

if [ $STATUS = 1 ]; then status; exit 0; fi
[ -n "$PCI" ] || usage 2
# Accept 01:00.0 as 0000:01:00.0.
if [[ "$PCI" =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then PCI="0000:$PCI"; fi
[[ "$PCI" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] \
    || die "'$PCI' is not a PCI address like 0000:01:00.0 (see: $0 --status)"
[ -d "/sys/bus/pci/devices/$PCI" ] || die "no PCI device $PCI (see: $0 --status)"
[ "$(cut -c1-4 "/sys/bus/pci/devices/$PCI/class")" = 0x02 ] \
    || die "$PCI is not a network controller (class $(cat "/sys/bus/pci/devices/$PCI/class"))"
[ "$(id -u)" = 0 ] || [ $DRY = 1 ] || die "needs root (sudo $0 ...)"

current=$(driver_of "$PCI")
saved="$STATE_DIR/bind-$PCI.driver"

if [ $RESTORE = 1 ]; then
    [ -f "$saved" ] || die "no saved driver for $PCI in $STATE_DIR (bind it with this script first, or: dpdk-devbind.py -b <driver> $PCI)"
    orig=$(cat "$saved")
    if [ "$current" = "$orig" ]; then
        echo "$PCI is already on $orig"; rm -f "$saved"; exit 0
    fi
    DB=$(devbind) || die "dpdk-devbind not found: apt-get install dpdk"
    echo "restoring $PCI: $current -> $orig"
    if [ $DRY = 1 ]; then echo "(dry run) $DB -b $orig $PCI"; exit 0; fi
    "$DB" -b "$orig" "$PCI"
    rm -f "$saved"
    sleep 1
    echo "$PCI now on $(driver_of "$PCI"), interface(s): $(ifaces_of "$PCI" | tr '\n' ' ')"
    echo "(bring it up again with: ip link set <iface> up, and your network configuration)"
    exit 0
fi

if [ "$current" = vfio-pci ]; then
    echo "$PCI is already bound to vfio-pci"; exit 0
fi

# Safety: an interface that is up with an address or a route is in use.
for ifc in $(ifaces_of "$PCI"); do
    busy=""
    if ip -o addr show dev "$ifc" 2>/dev/null | grep -q inet; then busy="it has addresses"; fi
    if ip route show dev "$ifc" 2>/dev/null | grep -q .; then busy="${busy:+$busy, }routes go through it"; fi
    if ip route show default 2>/dev/null | grep -q "dev $ifc "; then busy="${busy:+$busy, }it carries the default route"; fi
    if [ -n "$busy" ] && [ $FORCE = 0 ]; then
        die "refusing to take $ifc ($PCI) from the kernel: $busy. If this is really the NIC for ringline, take it down first (ip link set $ifc down; ip addr flush dev $ifc) or pass --force."
    fi
done

iommu=0
if [ -d /sys/kernel/iommu_groups ] && [ -n "$(ls -A /sys/kernel/iommu_groups)" ]; then iommu=1; fi
noiommu=$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null || echo N)
if [ $iommu = 0 ] && [ "$noiommu" != Y ]; then
    die "the IOMMU is off, so vfio-pci cannot take the device. Enable it (intel_iommu=on iommu=pt, or amd_iommu=on, on the kernel command line, then reboot) or, in a VM without a virtual IOMMU, use vfio's no-IOMMU mode: modprobe vfio enable_unsafe_noiommu_mode=1"
fi

DB=$(devbind) || die "dpdk-devbind not found: apt-get install dpdk (it ships dpdk-devbind.py)"

echo "binding $PCI ($current, $(ifaces_of "$PCI" | tr '\n' ' ')) to vfio-pci"
if [ $DRY = 1 ]; then
    echo "(dry run) modprobe vfio-pci; save $current to $saved; ip link set <iface> down; $DB -b vfio-pci $PCI"
    exit 0
fi
modprobe vfio-pci
mkdir -p "$STATE_DIR"
echo "$current" > "$saved"
for ifc in $(ifaces_of "$PCI"); do ip link set "$ifc" down || true; done
if ! "$DB" -b vfio-pci "$PCI"; then
    rm -f "$saved"
    die "dpdk-devbind failed; $PCI stays on $(driver_of "$PCI")"
fi
echo "$PCI is now on $(driver_of "$PCI"); give it back with: $0 --restore $PCI"
echo "use it with: ringline http --dpdk \"-a $PCI\" ... (or port = \"$PCI\" in ringline.toml)"
