#!/usr/bin/env bash
# Fault tests, ringline against Linux, through the same user-space impairment
# relay (`ringline relay`; this kernel has no sch_netem). Prints a side-by-side
# table. Needs root, /dev/net/tun, iproute2 and libdpdk-dev (the binary is
# built with --features dpdk unless RINGLINE names one).
#
# Topology (three network namespaces, deleted on exit):
#
#   client ns                 mid ns                          server ns
#   c1 10.88.1.1 ==veth== m1 <-relay-> rl0 (net_tap) ringline echo 10.88.1.2:7
#   c2 10.88.2.1 ==veth== m2 <-relay-> m3 ==veth==  s3 10.88.2.2 kernel-echo :7
#
# `ringline bulk` runs in the client namespace: each connection sends a
# pattern, half-closes and checks every byte echoed back. One relay runs per
# transfer (same settings and seed for both stacks); ringline echo is started
# afresh for each transfer (its counters are read when it stops).
#
# Scenarios (SCENARIOS, any subset, in this order by default):
#   clean       no impairment                                  BYTES per connection
#   loss2       2% loss + 5 ms delay, each direction           BYTES per connection
#   loss10      10% loss + 25% reorder + 1 ms delay + 1% dup   BYTES per connection
#   half-clean  no impairment                                  HALF_BYTES in all
#   half-lossy  2% loss + 5 ms delay                           HALF_BYTES in all
# each over every connection count in CONNS. Every transfer is bounded by
# RUN_TIMEOUT seconds (a transfer that does not finish is reported with the
# bytes it got back).
#
# A long run (the defaults) and a short one use the same script:
#   sudo bash scripts/impaired.sh
#   sudo BYTES=1M HALF_BYTES=4M RUN_TIMEOUT=30 bash scripts/impaired.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BYTES:-16M}
HALF_BYTES=${HALF_BYTES:-256M}
CONNS=${CONNS:-"1 8"}
RUN_TIMEOUT=${RUN_TIMEOUT:-60}
SEED=${SEED:-1}
SCENARIOS=${SCENARIOS:-"clean loss2 loss10 half-clean half-lossy"}
STACKS=${STACKS:-"ringline linux"}
# EAL lcore of ringline's (busy-polling) engine.
LCORE=${LCORE:-0}
# Where to keep every run's output (kept after the run); a temp dir by default.
LOGDIR=${LOGDIR:-}
# The Linux echo server's congestion control (e.g. reno); the host's default
# when empty (this host's is bbr). A namespace may only choose from the host's
# net.ipv4.tcp_allowed_congestion_control.
SERVER_CC=${SERVER_CC:-}
RINGLINE=${RINGLINE:-}
# More relay arguments, e.g. RELAY_EXTRA="--impair-ba loss=0" to impair only
# the server's direction (the scenario's spec stays the base of both).
RELAY_EXTRA=${RELAY_EXTRA:-}
# More arguments for `ringline echo`, e.g. ECHO_EXTRA="--config big.toml".
ECHO_EXTRA=${ECHO_EXTRA:-}
# CAPTURE=1: tcpdump (headers only) on both relay interfaces, into
# <log>.a.pcap (the server's side) and <log>.b.pcap (the client's), for
# scripts/resends.py.
CAPTURE=${CAPTURE:-}

SCRIPT=impaired.sh
# Checks, the binary, cleanup on exit, helpers and topology_up.
source scripts/impaired-topology.sh

to_bytes() {
    local v=$1 n m=1
    case "$v" in
        *G | *GiB) m=$((1 << 30)) ;; *M | *MiB) m=$((1 << 20)) ;; *K | *KiB) m=$((1 << 10)) ;;
    esac
    n=${v%%[KMG]*}
    echo $((n * m))
}

topology_up

# The Linux echo server, for the whole script.
# The Linux server's congestion control (SERVER_CC; the host's default
# otherwise, which namespaces inherit). The client's stays the host's: it is
# the same sender for both stacks.
if [ -n "$SERVER_CC" ]; then
    ip netns exec "$NS_S" sysctl -qw net.ipv4.tcp_congestion_control="$SERVER_CC" \
        || die "the kernel has no congestion control $SERVER_CC"
fi
SERVER_CC=$(ip netns exec "$NS_S" sysctl -n net.ipv4.tcp_congestion_control)
CLIENT_CC=$(ip netns exec "$NS_C" sysctl -n net.ipv4.tcp_congestion_control)
ip netns exec "$NS_S" "$RINGLINE" kernel-echo --listen 0.0.0.0:7 >"$LOGDIR/kernel-echo.log" 2>&1 &
KECHO=$!
PIDS+=("$KECHO")
wait_for "$LOGDIR/kernel-echo.log" "listening on" 10

spec_of() {
    case "$1" in
        clean | half-clean) echo "none" ;;
        loss2 | half-lossy) echo "loss=2,delay=5" ;;
        loss10) echo "loss=10,reorder=25,delay=1,dup=1" ;;
        *) die "unknown scenario $1" ;;
    esac
}

# One transfer: stack $1, scenario $2, $3 connections, $4 bytes each, relay spec $5.
# Sets RESULT to "verdict|MB/s|stall s|seconds|detail".
run_one() {
    local stack=$1 scen=$2 conns=$3 bytes=$4 spec=$5
    local tag="$scen-$conns-$stack"
    local log="$LOGDIR/$tag"
    local echo_pid="" relay_pid a b server
    if [ "$stack" = ringline ]; then
        # shellcheck disable=SC2086 # ECHO_EXTRA is a list of arguments
        ip netns exec "$NS_M" "$RINGLINE" echo \
            --dpdk "-l $LCORE --no-huge -m 256 --no-pci --no-telemetry --file-prefix=$EAL_PREFIX --vdev=net_tap0,iface=rl0" \
            --ip 10.88.1.2/24 --mac 02:00:00:88:01:02 --listen 7 $ECHO_EXTRA >"$log.echo" 2>&1 &
        echo_pid=$!
        PIDS+=("$echo_pid")
        wait_for "$log.echo" "listening on" 60
        ip -n "$NS_M" link set rl0 up
        a=rl0 b=m1 server=10.88.1.2:7
    else
        a=m3 b=m2 server=10.88.2.2:7
    fi
    local caps=()
    if [ -n "$CAPTURE" ]; then
        local side
        for side in a b; do
            local ifc=$a
            [ $side = b ] && ifc=$b
            ip netns exec "$NS_M" tcpdump -q -n -s 96 -B 16384 -i "$ifc" -w "$log.$side.pcap" tcp \
                >"$log.$side.tcpdump" 2>&1 &
            caps+=($!)
            PIDS+=($!)
        done
        sleep 1
    fi
    # shellcheck disable=SC2086 # RELAY_EXTRA is a list of arguments
    ip netns exec "$NS_M" "$RINGLINE" relay --a "$a" --b "$b" --impair "$spec" --seed "$SEED" \
        --duration $((RUN_TIMEOUT + 30)) --json $RELAY_EXTRA >"$log.relay" 2>&1 &
    relay_pid=$!
    PIDS+=("$relay_pid")
    wait_for "$log.relay" "relay: ready" 10
    local t0=$SECONDS
    timeout $((RUN_TIMEOUT + 15)) ip netns exec "$NS_C" "$RINGLINE" bulk --connect "$server" \
        --bytes "$bytes" --connections "$conns" --timeout "$RUN_TIMEOUT" --seed "$SEED" --json \
        >"$log.bulk" 2>&1 || true
    local took=$((SECONDS - t0))
    stop "$relay_pid" 10
    local cap
    for cap in "${caps[@]}"; do stop "$cap" 10; done
    local detail=""
    if [ -n "$echo_pid" ]; then
        stop "$echo_pid" 30
        local errs drops
        errs=$(sed -n 's/.* \([0-9]*\) errors$/\1/p' "$log.echo" | tail -1)
        # The counters table ringline echo prints on exit.
        drops=$(awk '$1 == "nic.rx_dropped" {print $2}' "$log.echo" | tail -1)
        detail="server errors ${errs:-?}, nic drops ${drops:-?}"
    fi
    local j r
    j=$(grep '^{' "$log.bulk" | tail -1 || true)
    r=$(grep '^{' "$log.relay" | tail -1 || true)
    local lost_ab lost_ba
    lost_ab=$(field_n "$r" dropped 1)
    lost_ba=$(field_n "$r" dropped 2)
    # Frames lost that the settings did not ask for (relay queue or socket,
    # interface backlogs): should be 0, or the loss figures are not the
    # settings'.
    local unasked
    unasked=$(sum_keys "$r" queue_full truncated send_errors socket_drops ingress_dropped egress_dropped)
    detail="relay dropped ${lost_ab:-?}/${lost_ba:-?}, unasked drops $unasked${detail:+, $detail}"
    if [ -z "$j" ]; then
        RESULT="NO RESULT|-|-|${took}|$(tail -1 "$log.bulk" 2>/dev/null) ($detail)"
        return
    fi
    local pass mbps stall secs recv verdict
    pass=$(field "$j" pass)
    mbps=$(field "$j" mb_per_s)
    stall=$(field "$j" longest_stall_s)
    secs=$(field "$j" seconds)
    recv=$(field "$j" received)
    if [ "$pass" = true ]; then
        verdict=PASS
    else
        local err
        err=$(grep -o '"error":"[^"]*"' <<<"$j" | head -1 | cut -d: -f2- | tr -d '"')
        verdict=FAIL
        case "$err" in "timed out"*) verdict=TIMEOUT ;; esac
        detail="$err; in all $(awk -v r="$recv" -v t="$(($(to_bytes "$bytes") * conns))" \
            'BEGIN {printf "%.1f of %.1f MiB", r / 1048576, t / 1048576}') back; $detail"
    fi
    RESULT=$(printf '%s|%.1f|%.3f|%.1f|%s' "$verdict" "$mbps" "$stall" "$secs" "$detail")
}

printf '== %s, seed %s, run timeout %s s, logs in %s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$SEED" "$RUN_TIMEOUT" "$LOGDIR"
printf '== Linux congestion control: server %s, client %s\n' "$SERVER_CC" "$CLIENT_CC"
ROWS=()
for scen in $SCENARIOS; do
    spec=$(spec_of "$scen")
    for conns in $CONNS; do
        case "$scen" in
            half-*) per=$(($(to_bytes "$HALF_BYTES") / conns)) ;;
            *) per=$(to_bytes "$BYTES") ;;
        esac
        row="$scen|$conns|$per"
        for stack in $STACKS; do
            run_one "$stack" "$scen" "$conns" "$per" "$spec"
            printf '%-10s %-2s x %9s B  %-8s %s\n' "$scen" "$conns" "$per" "$stack" "$RESULT"
            row="$row|$stack|$RESULT"
        done
        ROWS+=("$row")
    done
done

echo
echo "== side by side (MB/s = bytes echoed back per second, 10^6; stall = longest time without data; relay dropped = a->b/b->a)"
printf '%-10s %5s %11s' scenario conns bytes/conn
for stack in $STACKS; do printf ' | %-8s %7s %8s %7s' "$stack" "MB/s" "stall s" "time s"; done
echo
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf '%-10s %5s %11s' "${f[0]}" "${f[1]}" "${f[2]}"
    i=3
    while [ $i -lt ${#f[@]} ]; do
        printf ' | %-8s %7s %8s %7s' "${f[$((i + 1))]}" "${f[$((i + 2))]}" "${f[$((i + 3))]}" "${f[$((i + 4))]}"
        i=$((i + 6))
    done
    echo
done
echo
echo "== details"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    i=3
    while [ $i -lt ${#f[@]} ]; do
        printf '%-10s %2s conns %-8s %s\n' "${f[0]}" "${f[1]}" "${f[$i]}" "${f[$((i + 5))]}"
        i=$((i + 6))
    done
done
