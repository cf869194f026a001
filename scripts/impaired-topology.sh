# Shared part of the impaired-wire scripts (impaired.sh, impaired-http.sh):
# sourced, not run. Checks, the ringline binary, the three namespaces and
# their veths, cleanup on exit, and small helpers.
#
#   client ns                 mid ns                          server ns
#   c1 10.88.1.1 ==veth== m1 <-relay-> rl0 (net_tap)  ringline   10.88.1.2
#   c2 10.88.2.1 ==veth== m2 <-relay-> m3 ==veth==  s3 Linux     10.88.2.2
#
# The sourcing script sets SCRIPT (its name, for messages) and may set
# RINGLINE (a binary; built with --features dpdk otherwise) and LOGDIR; it
# adds the pids of what it starts to PIDS (killed on exit) and calls
# topology_up. Afterwards: NS_C, NS_M, NS_S, EAL_PREFIX, LOGDIR, RINGLINE.

die() { echo "$SCRIPT: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (namespaces, TAP, raw sockets)"
[ -e /dev/net/tun ] || die "needs /dev/net/tun"
command -v ip >/dev/null || die "needs iproute2 (ip)"

RINGLINE=${RINGLINE:-}
if [ -z "$RINGLINE" ]; then
    echo "== building ringline with --features dpdk"
    cargo build --release -q -p ringline-apps --features dpdk
    RINGLINE="${CARGO_TARGET_DIR:-target}/release/ringline"
fi
[ -x "$RINGLINE" ] || die "no binary at $RINGLINE"
RINGLINE=$(realpath "$RINGLINE")

P="rli$$"
NS_C="${P}c" NS_M="${P}m" NS_S="${P}s"
EAL_PREFIX="$P"
LOGDIR=${LOGDIR:-}
if [ -z "$LOGDIR" ]; then LOGDIR=$(mktemp -d "/tmp/${SCRIPT%.sh}.XXXXXX"); fi
mkdir -p "$LOGDIR"
PIDS=()

cleanup() {
    # Only the script itself cleans up: a background job signalled between
    # its fork and its exec runs this trap too, and must not tear down the
    # namespaces under the run.
    [ "$BASHPID" = "$$" ] || return 0
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for ns in "$NS_C" "$NS_M" "$NS_S"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "/var/run/dpdk/$EAL_PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $3 s for a line matching $2 in file $1.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$SCRIPT: no \"$2\" in $1 after $3 s:" >&2
    cat "$1" >&2
    return 1
}

# Sends SIGTERM to $1 and waits up to $2 s for it to exit (then SIGKILL).
stop() {
    local i
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "$SCRIPT: pid $1 ignored SIGTERM for $2 s; killed" >&2
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The first value of JSON key $2 in text $1 (flat values only).
field() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -1 | cut -d: -f2- | tr -d '"'; }
# The N-th ($3) value of key $2.
field_n() { grep -o "\"$2\":[^,}]*" <<<"$1" | sed -n "${3}p" | cut -d: -f2- | tr -d '"'; }
# The sum of every value of the numeric keys $2... in text $1.
sum_keys() {
    local text=$1 k
    shift
    for k in "$@"; do grep -o "\"$k\":[0-9]*" <<<"$text" | cut -d: -f2; done | awk '{s += $1} END {print s + 0}'
}

# The three namespaces and their veths (IPv6 off, GSO off toward the relay).
topology_up() {
    echo "== topology ($P)"
    local ns l
    for ns in "$NS_C" "$NS_M" "$NS_S"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # No IPv6 chatter on the relayed links.
        ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6;
                                   echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'
    done
    ip -n "$NS_M" link add m1 type veth peer name c1 netns "$NS_C"
    ip -n "$NS_M" link add m2 type veth peer name c2 netns "$NS_C"
    ip -n "$NS_M" link add m3 type veth peer name s3 netns "$NS_S"
    # The relay does not split GSO super-frames: Linux must send wire-sized ones.
    ip -n "$NS_C" link set c1 gso_max_segs 1
    ip -n "$NS_C" link set c2 gso_max_segs 1
    ip -n "$NS_S" link set s3 gso_max_segs 1
    ip -n "$NS_C" addr add 10.88.1.1/24 dev c1
    ip -n "$NS_C" addr add 10.88.2.1/24 dev c2
    ip -n "$NS_S" addr add 10.88.2.2/24 dev s3
    for l in "$NS_C c1" "$NS_C c2" "$NS_S s3" "$NS_M m1" "$NS_M m2" "$NS_M m3"; do
        set -- $l
        ip -n "$1" link set "$2" up
    done
}
