#!/usr/bin/env bash
# wrk against `ringline http` and against nginx, through the same user-space
# impairment relay (`ringline relay`), side by side (issue 11's target: p99 at
# most 1.5x nginx's at 2% loss + 5 ms). Needs root, /dev/net/tun, iproute2,
# libdpdk-dev (the binary is built with --features dpdk unless RINGLINE names
# one), nginx and wrk (`apt-get install nginx-light wrk`).
#
# Topology (scripts/impaired-topology.sh, three namespaces deleted on exit):
#
#   client ns                 mid ns                          server ns
#   c1 10.88.1.1 ==veth== m1 <-relay-> rl0 (net_tap) ringline http 10.88.1.2:80
#   c2 10.88.2.1 ==veth== m2 <-relay-> m3 ==veth==  s3 10.88.2.2 nginx :80
#
# wrk runs in the client namespace: `wrk -c CONNS -t THREADS -d DURATION
# --latency --timeout WRK_TIMEOUT http://SERVER/`. Both servers answer
# `GET /` with the same 20-byte body ("hello from ringline\n"; nginx serves it
# from a static file) on keep-alive connections. One relay runs per wrk run
# (SPEC both ways, same SEED for both stacks); ringline http is started afresh
# for each run (its counters are read when it stops); nginx runs in the
# foreground (one process, no daemon) for the whole script. Each stack is
# measured RUNS times, alternating.
#
#   sudo bash scripts/impaired-http.sh
#   sudo SPEC=none RUNS=1 DURATION=5s bash scripts/impaired-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=${SPEC:-loss=2,delay=5}
CONNS=${CONNS:-10}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
# wrk's own default is 2 s, and a request slower than that is counted as a
# timeout and left out of the latency figures; 10 s keeps slow ones in.
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
RUNS=${RUNS:-2}
SEED=${SEED:-1}
STACKS=${STACKS:-"ringline nginx"}
# EAL lcore of ringline's engine.
LCORE=${LCORE:-0}
# Where to keep every run's output (kept after the run); a temp dir by default.
LOGDIR=${LOGDIR:-}
# nginx's congestion control (e.g. cubic); the host's default when empty.
SERVER_CC=${SERVER_CC:-}
# More options for `ringline http`, e.g. "--busy-poll-us 18446744073709551615".
HTTP_ARGS=${HTTP_ARGS:-}
RINGLINE=${RINGLINE:-}

SCRIPT=impaired-http.sh
# Checks, the binary, cleanup on exit, helpers and topology_up.
source scripts/impaired-topology.sh
for s in $STACKS; do
    case "$s" in
        ringline) ;;
        nginx) command -v nginx >/dev/null || die "needs nginx (apt-get install nginx-light)" ;;
        *) die "unknown stack $s (ringline, nginx)" ;;
    esac
done
command -v wrk >/dev/null || die "needs wrk (apt-get install wrk)"

secs_of() { local d=$1; case "$d" in *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;; esac; }
RUN_SECS=$(secs_of "$DURATION")

topology_up

if [ -n "$SERVER_CC" ]; then
    ip netns exec "$NS_S" sysctl -qw net.ipv4.tcp_congestion_control="$SERVER_CC" \
        || die "the kernel has no congestion control $SERVER_CC"
fi
SERVER_CC=$(ip netns exec "$NS_S" sysctl -n net.ipv4.tcp_congestion_control)
CLIENT_CC=$(ip netns exec "$NS_C" sysctl -n net.ipv4.tcp_congestion_control)

BODY="hello from ringline"
if [[ " $STACKS " == *" nginx "* ]]; then
    NG="$LOGDIR/nginx"
    mkdir -p "$NG/www" "$NG/tmp"
    printf '%s\n' "$BODY" >"$NG/www/index.html"
    cat >"$NG/nginx.conf" <<CONF
# One process in the foreground (no daemon, no master): it ends with the script.
daemon off;
master_process off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    # ringline http keeps a connection for any number of requests.
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 10.88.2.2:80;
        root $NG/www;
        index index.html;
    }
}
CONF
    ip netns exec "$NS_S" nginx -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" >"$NG/stdout.log" 2>&1 &
    NGINX=$!
    PIDS+=("$NGINX")
    for ((i = 0; i < 100; i++)); do
        ip netns exec "$NS_S" ss -ltn 2>/dev/null | grep -q '10.88.2.2:80 ' && break
        kill -0 "$NGINX" 2>/dev/null || { cat "$NG/stdout.log" "$NG/error.log" >&2; die "nginx exited"; }
        sleep 0.1
    done
    ip netns exec "$NS_S" ss -ltn | grep -q '10.88.2.2:80 ' || die "nginx is not listening after 10 s"
fi

# wrk's latency ("1.23ms", "800.00us", "1.01s", "2.00m") in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

# One wrk run: stack $1, run number $2. Sets RESULT to
# "req/s|p50 ms|p90 ms|p99 ms|max ms|requests|errors|detail".
run_one() {
    local stack=$1 run=$2
    local log="$LOGDIR/$stack-$run"
    local srv_pid="" relay_pid a b url
    if [ "$stack" = ringline ]; then
        ip netns exec "$NS_M" "$RINGLINE" http \
            --dpdk "-l $LCORE --no-huge -m 256 --no-pci --no-telemetry --file-prefix=$EAL_PREFIX --vdev=net_tap0,iface=rl0" \
            --ip 10.88.1.2/24 --mac 02:00:00:88:01:02 --listen 80 --body "$BODY
" $HTTP_ARGS >"$log.server" 2>&1 &
        srv_pid=$!
        PIDS+=("$srv_pid")
        wait_for "$log.server" "listening on" 60
        ip -n "$NS_M" link set rl0 up
        a=rl0 b=m1 url=http://10.88.1.2/
    else
        a=m3 b=m2 url=http://10.88.2.2/
    fi
    ip netns exec "$NS_M" "$RINGLINE" relay --a "$a" --b "$b" --impair "$SPEC" --seed "$SEED" \
        --duration $((RUN_SECS + 60)) --json >"$log.relay" 2>&1 &
    relay_pid=$!
    PIDS+=("$relay_pid")
    wait_for "$log.relay" "relay: ready" 10
    timeout $((RUN_SECS + 40)) ip netns exec "$NS_C" wrk -c "$CONNS" -t "$THREADS" -d "$DURATION" \
        --latency --timeout "$WRK_TIMEOUT" "$url" >"$log.wrk" 2>&1 || true
    stop "$relay_pid" 10
    local detail=""
    if [ -n "$srv_pid" ]; then
        stop "$srv_pid" 30
        local line retx rto
        line=$(grep '^ringline http: stopped' "$log.server" | tail -1 || true)
        detail="server: ${line#ringline http: stopped; }"
    fi
    local r unasked
    r=$(grep '^{' "$log.relay" | tail -1 || true)
    unasked=$(sum_keys "$r" queue_full truncated send_errors socket_drops ingress_dropped egress_dropped)
    detail="relay dropped $(field_n "$r" dropped 1)/$(field_n "$r" dropped 2), unasked drops $unasked${detail:+; $detail}"
    local w=$log.wrk rps p50 p90 p99 max reqs errs non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$w")
    if [ -z "$rps" ]; then
        RESULT="-|-|-|-|-|-|-|wrk gave no result: $(tail -1 "$w") ($detail)"
        return
    fi
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$w")")
    p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$w")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$w")")
    max=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 {print $4; exit}' "$w")")
    reqs=$(awk '/requests in/ {print $1}' "$w")
    # Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    errs=$(awk '/Socket errors:/ {gsub(",", ""); s += $4 + $6 + $8 + $10} END {print s + 0}' "$w")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$w")
    errs=$((errs + ${non2xx:-0}))
    local sock
    sock=$(grep 'Socket errors:' "$w" | sed 's/^ *Socket errors: //' || true)
    [ -n "$sock" ] && detail="wrk socket errors: $sock; $detail"
    RESULT="$rps|$p50|$p90|$p99|$max|$reqs|$errs|$detail"
}

printf '== %s, impairment %s each way, seed %s, wrk -c%s -t%s -d%s --latency --timeout %s, logs in %s\n' \
    "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$SPEC" "$SEED" "$CONNS" "$THREADS" "$DURATION" "$WRK_TIMEOUT" "$LOGDIR"
[ -n "$HTTP_ARGS" ] && printf '== ringline http %s\n' "$HTTP_ARGS"
printf '== Linux congestion control: nginx (server ns) %s, wrk (client ns) %s\n' "$SERVER_CC" "$CLIENT_CC"
ROWS=()
for ((run = 1; run <= RUNS; run++)); do
    for stack in $STACKS; do
        run_one "$stack" "$run"
        printf 'run %s %-8s %s\n' "$run" "$stack" "$RESULT"
        ROWS+=("$run|$stack|$RESULT")
    done
done

echo
echo "== side by side (latency in ms; errors = wrk socket errors + non-2xx answers)"
printf '%-4s %-9s %10s %9s %9s %9s %9s %9s %6s\n' run stack req/s p50 p90 p99 max requests errors
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf '%-4s %-9s %10s %9s %9s %9s %9s %9s %6s\n' "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "${f[6]}" "${f[7]}" "${f[8]}"
done
if [[ " $STACKS " == *" ringline "* && " $STACKS " == *" nginx "* ]]; then
    echo
    echo "== p99 ringline / nginx, per run (target: at most 1.5)"
    # The p99 of run $1, stack $2 ("-" if none).
    p99_of() {
        local row f
        for row in "${ROWS[@]}"; do
            IFS='|' read -r -a f <<<"$row"
            if [ "${f[0]}|${f[1]}" = "$1|$2" ]; then echo "${f[5]}"; return; fi
        done
        echo -
    }
    for ((run = 1; run <= RUNS; run++)); do
        rp=$(p99_of "$run" ringline)
        np=$(p99_of "$run" nginx)
        awk -v r="$rp" -v n="$np" -v k="$run" 'BEGIN {
            if (r == "-" || n == "-" || n + 0 == 0) printf "run %s: -\n", k
            else printf "run %s: %.2f (%s ms / %s ms)\n", k, r / n, r, n }'
    done
fi
echo
echo "== details"
for row in "${ROWS[@]}"; do
    IFS='|' read -r -a f <<<"$row"
    printf 'run %s %-8s %s\n' "${f[0]}" "${f[1]}" "${f[9]}"
done
