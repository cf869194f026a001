#!/usr/bin/env bash
# A SYN flood from random sources against `ringline echo` and against Linux,
# while a bulk transfer runs (issue 11's target: a valid client connects
# during and after the flood; established connections keep at least 80% of
# their rate). Needs root, /dev/net/tun, iproute2, libdpdk-dev (the binary is
# built with --features dpdk unless RINGLINE names one) and hping3
# (`apt-get install hping3`); PORT=af_packet and PORT=memif also ethtool.
#
# Topology (scripts/impaired-topology.sh, three namespaces deleted on exit),
# with Linux bridges in the mid namespace instead of the relay (no impairment;
# the relay's per-frame system calls would cap the flood):
#
#   client ns                 mid ns                        server ns
#   c1 10.88.1.1 ==veth== m1 -br0- PORT    ringline echo 10.88.1.2:7
#   c2 10.88.2.1 ==veth== m2 -br1- m3 ==veth==  s3 10.88.2.2 kernel-echo :7
#
# PORT (ringline's DPDK port, both in the mid namespace):
#   tap        (default) net_tap on TAP rl0, which is in br0: one read() or
#              write() system call per frame, on the engine's core.
#   af_packet  net_af_packet on rl0, one end of a veth pair whose other end
#              (af0) is in br0; rl0 has no address. The PMD's PACKET_MMAP
#              rings (AFP_FRAMES frames each way, default 4096;
#              qdisc_bypass=1) cost no system call per received frame and one
#              sendto() per transmit burst. c1's transmit checksum offload is
#              turned off (ethtool), as a packet socket would hand ringline
#              partial checksums.
#   memif      net_memif (shared memory, no system call at all on the
#              engine's core) to dpdk-testpmd (`apt-get install dpdk-dev`),
#              which forwards (io mode) between it and net_af_packet on rl0
#              as above, on the first of FLOOD_CPUS: the wire's kernel work
#              moves to the flooder's core. memif's MAC is a vdev argument.
#
# Per run and stack: (1) `ringline bulk` of BYTES alone (the baseline rate);
# (2) the same transfer again, and once it is connected, `hping3 -S
# --rand-source --flood` at the same port from the client namespace, for at
# most FLOOD_SECS (stopped when the transfer ends); while the flood runs, a
# fresh 1 KiB echo connection (`bulk --bytes 1K --timeout PROBE_TIMEOUT`)
# every second; (3) one more after the flood. Random sources are off-subnet,
# so each server answers through its gateway (the client namespace, which
# drops the SYN-ACKs: nobody completes a flooded handshake). SYNs sent: as
# hping3 counts them. hping3 is pinned to FLOOD_CPUS (default: every CPU but
# LCORE, the engine's); FLOOD_RATE=N paces it at N SYNs/s (hping3 -i u),
# as fast as it can otherwise. Per ringline run also its counters at exit and the
# kernel's count of frames offered to the port (the detail lines), and the
# highest 1-min load average seen during the flood.
#
#   sudo bash scripts/synflood.sh
#   sudo RUNS=2 BYTES=128M PORT=af_packet bash scripts/synflood.sh
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
PORT=${PORT:-tap}
# hping3 runs on every CPU but the engine's (a busy engine core that the
# scheduler also gives the flooder measures the two fighting for it).
FLOOD_CPUS=${FLOOD_CPUS:-$(seq 0 $(($(nproc) - 1)) | grep -vx "$LCORE" | paste -sd, -)}
AFP_FRAMES=${AFP_FRAMES:-4096}
# SYNs per second (hping3 -i u<1e6/rate); empty: as fast as hping3 can.
FLOOD_RATE=${FLOOD_RATE:-}

SCRIPT=synflood.sh
# Checks, the binary, cleanup on exit, helpers and topology_up.
source scripts/impaired-topology.sh
command -v hping3 >/dev/null || die "needs hping3 (apt-get install hping3)"
case $PORT in
tap) ;;
af_packet) command -v ethtool >/dev/null || die "PORT=af_packet needs ethtool (apt-get install ethtool)" ;;
memif)
    command -v ethtool >/dev/null || die "PORT=memif needs ethtool (apt-get install ethtool)"
    command -v dpdk-testpmd >/dev/null || die "PORT=memif needs dpdk-testpmd (apt-get install dpdk-dev)"
    [ -n "$FLOOD_CPUS" ] || die "PORT=memif needs a CPU besides LCORE for testpmd"
    ;;
*) die "PORT must be tap, af_packet or memif, not $PORT" ;;
esac

topology_up
ip -n "$NS_M" link add br0 type bridge
ip -n "$NS_M" link add br1 type bridge
ip -n "$NS_M" link set m1 master br0
ip -n "$NS_M" link set m2 master br1
ip -n "$NS_M" link set m3 master br1
ip -n "$NS_M" link set br0 up
# No iptables on bridged frames (br_netfilter, where loaded, would run the
# mid namespace's empty rule set for each of them): wire cost, not a stack's.
for t in iptables ip6tables arptables; do
    ip netns exec "$NS_M" sysctl -qw "net.bridge.bridge-nf-call-$t=0" 2>/dev/null || true
done
ip -n "$NS_M" link set br1 up
FWD_PID=""
if [ "$PORT" != tap ]; then
    # A packet socket gets a frame as the kernel holds it: one from the
    # client's TCP stack carries only the pseudo-header sum (its checksum is
    # left to the "hardware", which a veth never computes), and ringline
    # would drop it as corrupt. The TAP computes it on the way out; here the
    # client's stack must.
    ip netns exec "$NS_C" ethtool -K c1 tx off >/dev/null
fi
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

# The kernel's count of frames on the port's interface (rl0, mid namespace):
# statistic $1 (rx_packets, tx_dropped, ...), "-" if it is gone.
port_stat() { ip netns exec "$NS_M" cat "/sys/class/net/rl0/statistics/$1" 2>/dev/null || echo -; }

# Starts `ringline echo` on port $PORT, attached to br0 in the mid namespace,
# logging to $1; sets SRV_PID.
start_ringline() {
    local vdev mac=(--mac 02:00:00:88:01:02) afp="net_af_packet0,iface=rl0,framecnt=$AFP_FRAMES,qdisc_bypass=1"
    if [ "$PORT" != tap ]; then
        # A veth pair in the mid namespace: af0 in br0, rl0 the packet
        # socket's (no address, so the kernel's own stack ignores what
        # arrives).
        ip -n "$NS_M" link add rl0 type veth peer name af0
        ip -n "$NS_M" link set af0 master br0
        ip -n "$NS_M" link set af0 up
        ip -n "$NS_M" link set rl0 up
    fi
    case $PORT in
    tap) vdev="net_tap0,iface=rl0" ;;
    # rl0's MAC becomes the port's through --mac.
    af_packet) vdev=$afp ;;
    memif)
        # testpmd forwards between rl0 and a memif on the flood's CPUs; the
        # engine sees only shared memory. memif takes its MAC as an argument.
        local sock="/run/ringline-$EAL_PREFIX.sock"
        ip netns exec "$NS_M" dpdk-testpmd --lcores "0@${FLOOD_CPUS%%,*},1@${FLOOD_CPUS%%,*}" --no-huge -m 256 \
            --no-pci --no-telemetry --file-prefix="${EAL_PREFIX}f" \
            --vdev="net_memif0,role=server,socket=$sock" --vdev="$afp" \
            -- --forward-mode=io --auto-start --stats-period=5 --nb-cores=1 --total-num-mbufs=16384 >"$1.testpmd" 2>&1 &
        FWD_PID=$!
        PIDS+=("$FWD_PID")
        wait_for "$1.testpmd" "start packet forwarding" 60
        vdev="net_memif0,role=client,socket=$sock,mac=02:00:00:88:01:02"
        mac=()
        ;;
    esac
    ip netns exec "$NS_M" "$RINGLINE" echo \
        --dpdk "-l $LCORE --no-huge -m 256 --no-pci --no-telemetry --file-prefix=$EAL_PREFIX --vdev=$vdev" \
        --ip 10.88.1.2/24 "${mac[@]}" --gateway 10.88.1.1 --listen 7 >"$1" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_for "$1" "listening on" 60
    if [ "$PORT" = tap ]; then
        # The kernel side of the TAP starts with the port's MAC; a bridge
        # would take frames to that MAC for itself and never pass them on.
        ip -n "$NS_M" link set rl0 address 02:00:00:88:01:fe
        ip -n "$NS_M" link set rl0 master br0
        ip -n "$NS_M" link set rl0 up
    fi
}

# The kernel's view of the port's interface before the echo stops: frames
# handed toward the port and (TAP) dropped in its queue.
port_offered() {
    if [ "$PORT" = tap ]; then
        echo "kernel sent $(port_stat tx_packets) frames into the TAP, dropped $(port_stat tx_dropped)"
    else
        echo "$(port_stat rx_packets) frames arrived at rl0 for the packet socket"
    fi
}

# hping3's pace: --flood, or one SYN every 1e6/FLOOD_RATE µs.
flood_pace() { if [ -n "$FLOOD_RATE" ]; then echo "-i u$((1000000 / FLOOD_RATE))"; else echo --flood; fi; }

# One run: stack $1, run $2. Sets RESULT to
# "base verdict|base MB/s|flood verdict|flood MB/s|ratio|probes ok/n during|after|SYNs sent|k SYNs/s|detail".
run_one() {
    local stack=$1 run=$2 log="$LOGDIR/$1-$2" srv_pid="" server dev
    if [ "$stack" = ringline ]; then
        start_ringline "$log.echo"
        srv_pid=$SRV_PID
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
    timeout "$FLOOD_SECS" ip netns exec "$NS_C" ${FLOOD_CPUS:+taskset -c "$FLOOD_CPUS"} hping3 -q -S -p 7 --rand-source $(flood_pace) "${server%:*}" \
        >"$log.hping" 2>&1 &
    local flood_pid=$!
    PIDS+=("$flood_pid")
    local ok=0 n=0 p fails="" load=0
    while kill -0 "$bulk_pid" 2>/dev/null && kill -0 "$flood_pid" 2>/dev/null; do
        sleep 1
        kill -0 "$flood_pid" 2>/dev/null || break
        load=$(awk -v m="$load" '{print ($1 > m ? $1 : m)}' /proc/loadavg)
        p=$(probe "$server")
        n=$((n + 1))
        if [ "$p" = ok ]; then ok=$((ok + 1)); else fails="$fails; probe $n $p"; fi
    done
    wait "$bulk_pid" 2>/dev/null || true
    local flood_s=$((SECONDS - t0)) flood_n
    kill -0 "$flood_pid" 2>/dev/null || flood_s="$FLOOD_SECS (ended before the transfer)"
    flood_n=${flood_s%% *}
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
    local detail="flood ran ${flood_s} s, load average up to ${load}${fails}"
    if [ -n "$srv_pid" ]; then
        local offered c
        offered=$(port_offered)
        stop "$srv_pid" 30
        if [ -n "$FWD_PID" ]; then
            stop "$FWD_PID" 10
            rm -rf "/var/run/dpdk/${EAL_PREFIX}f"
            FWD_PID=""
        fi
        [ "$PORT" = tap ] || ip -n "$NS_M" link del rl0 2>/dev/null || true
        c=$(awk '$1 ~ /^(rx_frames|syn_dropped|syn_cookies_sent|syn_cookies_ok|no_socket|bad_checksum|retransmits|rto_fired|nic\.(rx|tx)_(frames|dropped))$/ {printf "%s%s %s", sep, $1, $2; sep = ", "}' "$log.echo")
        detail="$detail; server: $(sed -n 's/^ringline echo: stopped; //p' "$log.echo" | tail -1); $c; $offered"
    fi
    local ratio
    ratio=$(awk -v a="${base#*|}" -v b="${flood#*|}" 'BEGIN { if (a + 0 > 0 && b != "-") printf "%.2f", b / a; else print "-" }')
    local rate
    rate=$(awk -v n="${sent%% *}" -v t="$flood_n" 'BEGIN { if (t > 0) printf "%.0f", n / t / 1000; else print "-" }')
    RESULT="$base|$flood|$ratio|$ok/$n|$after|$sent|$rate|$detail"
}

printf '== %s, ringline on %s, %s per transfer, flood up to %s s, logs in %s, load average %s\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$PORT" "$BYTES" "$FLOOD_SECS" "$LOGDIR" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '== hping3 %s on CPUs %s, ringline'"'"'s engine on %s\n' "$(flood_pace)" "${FLOOD_CPUS:-any}" "$LCORE"
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
echo "== side by side (MB/s echoed back, 10^6; ratio = flooded / alone; probes = fresh connections that echoed 1 KiB; k SYN/s = SYNs sent / flood seconds)"
printf '%-4s %-9s %-12s %7s %-12s %7s %6s %-14s %-8s %10s %8s\n' run stack alone MB/s flooded MB/s ratio "probes during" after "SYNs sent" "k SYN/s"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf '%-4s %-9s %-12s %7s %-12s %7s %6s %-14s %-8s %10s %8s\n' "${f[@]:0:11}"
done
echo
echo "== details"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf 'run %s %-8s %s\n' "${f[0]}" "${f[1]}" "${f[11]}"
done
