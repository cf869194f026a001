#!/usr/bin/env bash
# A SYN flood from random sources against `ringline echo` and against Linux,
# while a bulk transfer runs (issue 11's target: a valid client connects
# during and after the flood; established connections keep at least 80% of
# their rate). Needs root, /dev/net/tun, iproute2, libdpdk-dev (the binary is
# built with --features dpdk unless RINGLINE names one) and hping3
# (`apt-get install hping3`).
#
# Topology (scripts/impaired-topology.sh, three namespaces deleted on exit),
# with Linux bridges in the mid namespace instead of the relay (no impairment;
# the relay's per-frame system calls would cap the flood):
#
#   client ns                 mid ns                        server ns
#   c1 10.88.1.1 ==veth== m1 -br0- rl0 (net_tap)  ringline echo 10.88.1.2:7
#   c2 10.88.2.1 ==veth== m2 -br1- m3 ==veth==  s3 10.88.2.2 kernel-echo :7
#
# Per run and stack: (1) `ringline bulk` of BYTES alone (the baseline rate);
# (2) the same transfer again, and once it is connected, `hping3 -S
# --rand-source --flood` at the same port from the client namespace, for at
# most FLOOD_SECS (stopped when the transfer ends); while the flood runs, a
# fresh 1 KiB echo connection (`bulk --bytes 1K --timeout PROBE_TIMEOUT`)
# every second; (3) one more after the flood. Random sources are off-subnet,
# so each server answers through its gateway (the client namespace, which
# drops the SYN-ACKs: nobody completes a flooded handshake). SYNs sent: as
# hping3 counts them.
#
#   sudo bash scripts/synflood.sh
#   sudo RUNS=1 BYTES=64M STACKS=ringline bash scripts/synflood.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BYTES:-256M}
FLOOD_SECS=${FLOOD_SECS:-30}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-3}
RUNS=${RUNS:-2}
STACKS=${STACKS:-"ringline linux"}
LCORE=${LCORE:-0}
LOGDIR=${LOGDIR:-}
RINGLINE=${RINGLINE:-}

SCRIPT=synflood.sh
# Checks, the binary, cleanup on exit, helpers and topology_up.
source scripts/impaired-topology.sh
command -v hping3 >/dev/null || die "needs hping3 (apt-get install hping3)"

topology_up
ip -n "$NS_M" link add br0 type bridge
ip -n "$NS_M" link add br1 type bridge
ip -n "$NS_M" link set m1 master br0
ip -n "$NS_M" link set m2 master br1
ip -n "$NS_M" link set m3 master br1
ip -n "$NS_M" link set br0 up
ip -n "$NS_M" link set br1 up
# Answers to random sources go back to the client namespace, which drops them.
ip -n "$NS_S" route add default via 10.88.2.1
SYNCOOKIES=$(ip netns exec "$NS_S" sysctl -n net.ipv4.tcp_syncookies)
ip netns exec "$NS_S" "$RINGLINE" kernel-echo --listen 0.0.0.0:7 >"$LOGDIR/kernel-echo.log" 2>&1 &
PIDS+=("$!")
wait_for "$LOGDIR/kernel-echo.log" "listening on" 10

tx_packets() { ip netns exec "$NS_C" awk -v d="$1:" '$1 == d {print $11}' /proc/net/dev; }

# bulk's JSON in file $1 as "PASS|MB/s" or "FAIL (error)|MB/s".
bulk_result() {
    local j
    j=$(grep '^{' "$1" | tail -1 || true)
    if [ -z "$j" ]; then echo "NO RESULT|-"; return; fi
    if [ "$(field "$j" pass)" = true ]; then
        printf 'PASS|%.1f' "$(field "$j" mb_per_s)"
    else
        printf 'FAIL (%s)|%.1f' "$(grep -o '"error":"[^"]*"' <<<"$j" | head -1 | cut -d: -f2- | tr -d '"')" "$(field "$j" mb_per_s)"
    fi
}

# One fresh 1 KiB echo connection to $1; "ok" or why not.
probe() {
    local out
    out=$(timeout $((PROBE_TIMEOUT + 5)) ip netns exec "$NS_C" "$RINGLINE" bulk --connect "$1" --bytes 1K \
        --timeout "$PROBE_TIMEOUT" --json 2>&1 || true)
    if grep -q '"pass":true' <<<"$out"; then echo ok; else
        echo "failed: $(grep -o '"error":"[^"]*"' <<<"$out" | head -1 | cut -d: -f2- | tr -d '"')"
    fi
}

# One run: stack $1, run $2. Sets RESULT to
# "base verdict|base MB/s|flood verdict|flood MB/s|ratio|probes ok/n during|after|SYNs sent|detail".
run_one() {
    local stack=$1 run=$2 log="$LOGDIR/$1-$2" srv_pid="" server dev
    if [ "$stack" = ringline ]; then
        ip netns exec "$NS_M" "$RINGLINE" echo \
            --dpdk "-l $LCORE --no-huge -m 256 --no-pci --no-telemetry --file-prefix=$EAL_PREFIX --vdev=net_tap0,iface=rl0" \
            --ip 10.88.1.2/24 --mac 02:00:00:88:01:02 --gateway 10.88.1.1 --listen 7 >"$log.echo" 2>&1 &
        srv_pid=$!
        PIDS+=("$srv_pid")
        wait_for "$log.echo" "listening on" 60
        # The kernel side of the TAP starts with the port's MAC; a bridge
        # would take frames to that MAC for itself and never pass them on.
        ip -n "$NS_M" link set rl0 address 02:00:00:88:01:fe
        ip -n "$NS_M" link set rl0 master br0
        ip -n "$NS_M" link set rl0 up
        server=10.88.1.2:7 dev=c1
    else
        server=10.88.2.2:7 dev=c2
    fi
    # (1) alone
    timeout 120 ip netns exec "$NS_C" "$RINGLINE" bulk --connect "$server" --bytes "$BYTES" --timeout 90 --json \
        >"$log.base" 2>&1 || true
    local base flood
    base=$(bulk_result "$log.base")
    # (2) the same, flooded once it is connected
    timeout 120 ip netns exec "$NS_C" "$RINGLINE" bulk --connect "$server" --bytes "$BYTES" --timeout 90 --json \
        >"$log.flooded" 2>&1 &
    local bulk_pid=$!
    PIDS+=("$bulk_pid")
    sleep 0.5
    local tx0 t0=$SECONDS
    tx0=$(tx_packets "$dev")
    timeout "$FLOOD_SECS" ip netns exec "$NS_C" hping3 -q -S -p 7 --rand-source --flood "${server%:*}" \
        >"$log.hping" 2>&1 &
    local flood_pid=$!
    PIDS+=("$flood_pid")
    local ok=0 n=0 p fails=""
    while kill -0 "$bulk_pid" 2>/dev/null && kill -0 "$flood_pid" 2>/dev/null; do
        sleep 1
        kill -0 "$flood_pid" 2>/dev/null || break
        p=$(probe "$server")
        n=$((n + 1))
        if [ "$p" = ok ]; then ok=$((ok + 1)); else fails="$fails; probe $n $p"; fi
    done
    wait "$bulk_pid" 2>/dev/null || true
    local flood_s=$((SECONDS - t0))
    kill -0 "$flood_pid" 2>/dev/null || flood_s="$FLOOD_SECS (ended before the transfer)"
    stop "$flood_pid" 5
    # hping3's own count (it prints it when stopped); the interface's
    # (which includes the transfer's frames) if it printed none.
    local sent
    sent=$(awk '/packets transmitted/ {print $1}' "$log.hping" | tail -1)
    [ -n "$sent" ] || sent="$(($(tx_packets "$dev") - tx0)) (frames on $dev)"
    flood=$(bulk_result "$log.flooded")
    sleep 1
    local after
    after=$(probe "$server")
    local detail="flood ran ${flood_s} s${fails}"
    if [ -n "$srv_pid" ]; then
        stop "$srv_pid" 30
        local c
        c=$(awk '$1 ~ /^(syn_dropped|syn_cookies_sent|syn_cookies_ok|nic\.rx_dropped|nic\.rx_packets)$/ {printf "%s%s %s", sep, $1, $2; sep = ", "}' "$log.echo")
        detail="$detail; server: $(sed -n 's/^ringline echo: stopped; //p' "$log.echo" | tail -1); $c"
    fi
    local ratio
    ratio=$(awk -v a="${base#*|}" -v b="${flood#*|}" 'BEGIN { if (a + 0 > 0 && b != "-") printf "%.2f", b / a; else print "-" }')
    RESULT="$base|$flood|$ratio|$ok/$n|$after|$sent|$detail"
}

printf '== %s, %s per transfer, flood up to %s s, logs in %s\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$BYTES" "$FLOOD_SECS" "$LOGDIR"
printf '== Linux: net.ipv4.tcp_syncookies=%s, kernel-echo listen backlog 128 (std::net)\n' "$SYNCOOKIES"
ROWS=()
for ((run = 1; run <= RUNS; run++)); do
    for stack in $STACKS; do
        run_one "$stack" "$run"
        printf 'run %s %-8s %s\n' "$run" "$stack" "$RESULT"
        ROWS+=("$run|$stack|$RESULT")
    done
done
echo
echo "== side by side (MB/s echoed back, 10^6; ratio = flooded / alone; probes = fresh connections that echoed 1 KiB)"
printf '%-4s %-9s %-12s %7s %-12s %7s %6s %-14s %-8s %10s\n' run stack alone MB/s flooded MB/s ratio "probes during" after "SYNs sent"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf '%-4s %-9s %-12s %7s %-12s %7s %6s %-14s %-8s %10s\n' "${f[@]:0:10}"
done
echo
echo "== details"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf 'run %s %-8s %s\n' "${f[0]}" "${f[1]}" "${f[10]}"
done
