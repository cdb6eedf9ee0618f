#!/bin/bash
# make bench: what the gate costs over serving the same static file ungated.
#
#     t/bench/bench.sh MODULE_SO [SECONDS] [ROUNDS]
#
# A private redis-server seeded with 10,000 partners (1 in 5 lapsed), and
# Debian's nginx with 1 worker and the module loaded.  wrk (2 threads, 64
# connections, a Lua script rotating the X-Partner header over all 10,000
# ids) runs a warm-up and then ROUNDS rounds of SECONDS against:
#   1. baseline: the same nginx serving the same file in an ungated location
#   2. cache:    the gate with mpn_cache (every partner fits in the zone)
#   3. no cache: the gate without mpn_cache, one GET per request, pipelined
#                on the worker's one Redis connection
# taking turns round after round, and prints, per variant, the median over
# the rounds of req/s, p50 and p99, of the ratio to the baseline's req/s and
# p99 in the same round, and of the server CPU per request: the utime +
# stime of the nginx worker and redis-server (/proc/PID/stat) over the
# requests wrk completed, with its difference to the baseline's.
#
# MPN_PERF=cache (or baseline, nocache) records the nginx worker with perf
# during that variant's first round; MPN_KEEP=1 keeps the work directory.

set -e -o pipefail

module=$(realpath "${1:?usage: bench.sh MODULE_SO [SECONDS] [ROUNDS]}")
secs=${2:-10}
rounds=${3:-3}
conns=64
threads=2
partners=10000

dir=$(mktemp -d /tmp/mpn-bench-XXXXXX)
chmod 755 "$dir"
pids=()

cleanup() {
    local f
    # the nginx masters were started in a subshell: their pid files name them
    for f in "$dir"/*/nginx.pid; do
        [ -f "$f" ] && pids+=("$(cat "$f")")
    done
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
    done
    [ -n "$MPN_KEEP" ] || rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# --- redis, seeded -----------------------------------------------------------

rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$rport"

# p00000 ... p09999; every fifth one's Action Pack expired last year
awk -v n="$partners" 'BEGIN {
    for (i = 0; i < n; i++) {
        id = sprintf("p%05d", i)
        if (i % 5 == 4) { st = "expired"; s = "2025-01-15"; e = "2026-01-15" }
        else            { st = "active";  s = "2026-01-15"; e = "2099-01-15" }
        v = "{\"v\":1,\"partner_id\":\"" id "\",\"name\":\"Partner " id "\"," \
            "\"network\":true,\"status\":\"active\",\"rev\":1," \
            "\"updated_at\":\"2026-01-15T00:00:00Z\",\"subscriptions\":" \
            "{\"action_pack\":{\"status\":\"" st "\",\"start\":\"" s \
            "T00:00:00Z\",\"end\":\"" e "T00:00:00Z\",\"auto_renew\":true," \
            "\"benefits\":{\"developer_tools\":1,\"windows_enterprise\":10," \
            "\"visual_studio_pro\":3,\"vsts\":1,\"office365_e3\":10," \
            "\"ems\":5,\"dynamics_crm\":5,\"azure_credits\":100}}}," \
            "\"competencies\":{}}"
        k = "mpn:partner:" id
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", \
               length(k), k, length(v), v
    }
}' | redis-cli -p "$rport" --pipe >/dev/null
# the dataset marker: the gate reads no record from a Redis without it
redis-cli -p "$rport" SET mpn:meta '{"v":1,"created_at":"2026-01-15T00:00:00Z"}' \
    >/dev/null

# --- nginx -------------------------------------------------------------------

mkdir -p "$dir/html/plain" "$dir/html/gated"
head -c 612 /dev/zero | tr '\0' x > "$dir/html/plain/x"
cp "$dir/html/plain/x" "$dir/html/gated/x"
chmod -R a+rX "$dir/html"

# start_nginx NAME CACHE_DIRECTIVE: prints "port worker_pid"
start_nginx() {
    local name=$1 cache=$2 port
    port=$(free_port)
    mkdir -p "$dir/$name"
    cat > "$dir/$name/nginx.conf" <<EOF
load_module $module;
worker_processes 1;
daemon off;
pid $dir/$name/nginx.pid;
error_log $dir/$name/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/$name/tmp;
    proxy_temp_path $dir/$name/tmp;
    fastcgi_temp_path $dir/$name/tmp;
    uwsgi_temp_path $dir/$name/tmp;
    scgi_temp_path $dir/$name/tmp;
    default_type text/plain;
    keepalive_requests 1000000;

    mpn_redis 127.0.0.1:$rport timeout=1s;
    $cache

    server {
        listen 127.0.0.1:$port backlog=1024;
        root $dir/html;
        mpn_partner \$http_x_partner;

        location /plain/ { }
        location /gated/ { mpn on; mpn_require_tier action_pack; }
        location = /status { mpn_status; }
    }
}
EOF
    nginx -p "$dir/$name" -c "$dir/$name/nginx.conf" \
        2>>"$dir/$name/stderr" &
    pids+=("$!")
    wait_port "$port"
    local worker
    for _ in $(seq 50); do
        worker=$(cat "/proc/$!/task/$!/children" 2>/dev/null | awk '{print $1}')
        [ -n "$worker" ] && break
        sleep 0.05
    done
    echo "$port $worker"
}

cat > "$dir/rotate.lua" <<EOF
-- each thread walks all $partners partner ids, from its own offset
local n = $partners
local i = 0

function setup(thread)
    thread:set("offset", math.random(0, n - 1))
end

function init(args)
    i = offset or 0
end

function request()
    i = (i + 1) % n
    return wrk.format("GET", wrk.path,
                      { ["X-Partner"] = string.format("p%05d", i) })
end
EOF

cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$t"
}

# to microseconds: wrk prints e.g. 812.00us, 1.20ms, 2.01s
to_us() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
        else print v
    }'
}


hz=$(getconf CLK_TCK)

# round NAME R PORT PATH PIDS...: one wrk run; prints
# "rps p50_us p99_us cpu_us_per_req"
round() {
    local name=$1 r=$2 port=$3 path=$4; shift 4
    local url="http://127.0.0.1:$port$path" out c0 c1 n

    if [ "$MPN_PERF" = "$name" ] && [ "$r" = 1 ]; then
        perf record -q -F 2000 -g -p "$1" -o "$dir/perf-$name.data" \
            -- sleep "$secs" >/dev/null 2>&1 &
    fi
    c0=$(cpu_ticks "$@")
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
          -s "$dir/rotate.lua" "$url")
    c1=$(cpu_ticks "$@")
    if [ "$MPN_PERF" = "$name" ] && [ "$r" = 1 ]; then
        wait $!
        perf report -i "$dir/perf-$name.data" --stdio --no-children \
            --percent-limit 0.7 -g none 2>/dev/null \
            | grep -v '^#' | grep . > "$dir/perf-$name.txt" || true
        echo "perf profile of the $name worker: $dir/perf-$name.txt" >&2
    fi
    echo "$out" > "$dir/wrk-$name-$r.txt"
    # the lapsed fifth answer 403 by design; socket errors are not
    if echo "$out" | grep -q 'Socket errors'; then
        echo "$out" | grep 'Socket errors' | sed "s/^/    $name round $r: /" >&2
    fi
    n=$(echo "$out" | awk '/requests in/ { print $1 }')
    echo "$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')" \
         "$(to_us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")" \
         "$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")" \
         "$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" \
              'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
}

read -r cport cworker < <(start_nginx cache \
    "mpn_cache zone=partners:32m ttl=1h negative_ttl=1h;")
read -r nport nworker < <(start_nginx nocache "")

echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 worker; redis-server" \
     "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/');" \
     "wrk -t$threads -c$conns, $rounds x ${secs}s after a 3s warm-up," \
     "$partners partners (1 in 5 lapsed: 403)"
echo "$(nproc) CPUs, shared by wrk, nginx and redis-server"
echo

# the variants take turns, round after round, so that a slow spell of a
# shared machine weighs on all of them alike; ratios and deltas are taken
# within a round, then the median over rounds is shown
variants=("baseline $cport /plain/x $cworker $redis_pid"
          "cache $cport /gated/x $cworker $redis_pid"
          "nocache $nport /gated/x $nworker $redis_pid")

for v in "${variants[@]}"; do
    set -- $v
    wrk -t"$threads" -c"$conns" -d3s -s "$dir/rotate.lua" \
        "http://127.0.0.1:$2$3" >/dev/null
done

for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        set -- $v
        name=$1; shift
        echo "$r $(round "$name" "$r" "$@")" >> "$dir/rounds-$name"
    done
done

curl -s "http://127.0.0.1:$cport/status" > "$dir/status-cache.json"

printf '%-22s %10s %8s %9s %9s %12s %10s\n' variant 'req/s' 'p50' 'p99' \
    'x base' 'CPU us/req' '+us/req'
for v in "baseline:baseline" "gate, cache:cache" "gate, no cache:nocache"; do
    # columns: round rps p50 p99 cpu, joined with the baseline's round
    join "$dir/rounds-${v#*:}" "$dir/rounds-baseline" | awk -v name="${v%%:*}" '
        { rps[NR] = $2; p50[NR] = $3; p99[NR] = $4; cpu[NR] = $5
          ratio[NR] = $2 / $6; delta[NR] = $5 - $9; p99r[NR] = $4 / $8 }
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return a[int((n + 1) / 2)]
        }
        END {
            printf "%-22s %10.0f %6.0fus %7.0fus %8.2fx %12.2f %+10.2f" \
                   "   (p99 %.2fx base)\n", name, median(rps, NR),
                   median(p50, NR), median(p99, NR), median(ratio, NR),
                   median(cpu, NR), median(delta, NR), median(p99r, NR)
        }'
done
echo
echo "cache variant status: $(tr -d '\n' < "$dir/status-cache.json" \
    | sed 's/.*"cache":\({[^}]*}\).*/\1/')"
