#!/bin/bash
# make bench: what the gate costs next to bare nginx serving the same file,
# under the judge's conditions (../shared/peers/bench.sh, see its README):
# one nginx per variant with 1 worker, access_log off, open_file_cache,
# absolute_redirect off, keepalive_requests 1000000; GET
# /benefits/azure-credits, a 3-byte static file; wrk -t1 -c64, a warm-up
# then DURATION seconds, the variants taking turns within each round; the
# same records (10,000 partners 5000000.., 1 in 5 lapsed) in one
# redis-server.
#
#     t/bench/bench.sh MODULE_SO SIGNER [OUT_DIR]
#
# SIGNER is t/bench/tokens.py (each token variant's key and one token per
# partner).  Knobs (environment, or make
# variables: make bench ROUNDS=5 PARTNERS=1000000 DIST=zipf):
#   ROUNDS=3 DURATION=10 WARMUP=3 CONNS=64 THREADS=1
#   VARIANTS="baseline mpn-cache mpn-nocache mpn-token-hs mpn-token-rs
#             mpn-token-es mpn-token-ed" (not by default: mpn-consume,
#             mpn-cache with mpn_consume azure_credits per=month;
#             mpn-nocache-tls, mpn-nocache over TLS to the same redis-server)
#   PARTNERS=10000   how many partners the records and requests cover
#   DIST=uniform     uniform: each partner in turn; zipf: Zipf(1.0) by rank
#   ZONE=            mpn_cache zone size; default: room for every partner
#                    (16m at least, the judge's size)
#   TTL=30s          mpn_cache ttl
#   FILL=            1: before the rounds, each cached variant gets one
#                    request per partner (default when PARTNERS > 10000);
#                    0: never
#   PERF="V1 V2.."   perf record those variants' workers in round 1
#   KEEP=1           keep the work directory
#
# Prints the table and the table paired with the baseline of the same
# round, as the judge's lib/summarize.py does; token variants are also
# paired with mpn-cache.  The judge itself is make bench-judge.

set -e -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=$(realpath "${1:?usage: bench.sh MODULE_SO SIGNER [OUT_DIR]}")
signer=$(realpath "${2:?usage: bench.sh MODULE_SO SIGNER [OUT_DIR]}")

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
VARIANTS=${VARIANTS:-baseline mpn-cache mpn-nocache mpn-token-hs mpn-token-rs mpn-token-es mpn-token-ed}
PARTNERS=${PARTNERS:-10000}
DIST=${DIST:-uniform}
TTL=${TTL:-30s}
ID_BASE=5000000
# bytes of zone per cached partner (docs/deployment.md): node, record and
# id in their slab slots, and the index
ENTRY_BYTES=${ENTRY_BYTES:-600}
if [ -z "$ZONE" ]; then
    ZONE=$(( (PARTNERS * ENTRY_BYTES * 11 / 10 + 1048575) / 1048576 ))
    [ "$ZONE" -ge 16 ] || ZONE=16
    ZONE=${ZONE}m
fi
if [ -z "$FILL" ] && [ "$PARTNERS" -gt 10000 ]; then
    FILL=1
fi

keep=${3:+1}${KEEP}
dir=${3:-$(mktemp -d /tmp/mpn-bench-XXXXXX)}
mkdir -p "$dir"
chmod 755 "$dir"
pids=()

cleanup() {
    local f p
    for f in "$dir"/*/nginx.pid; do
        [ -f "$f" ] && pids+=("$(cat "$f")")
    done
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
    done
    [ -n "$keep" ] || rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# --- redis, seeded ---------------------------------------------------------

# a TLS port too when a variant speaks TLS: a CA and a certificate for
# 127.0.0.1 made here, as t/lib/MpnTls.pm does for the tests
tls=()
case " $VARIANTS " in *-tls\ *)
    tport=$(free_port)
    (cd "$dir" &&
     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.crt \
         -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign &&
     openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -subj /CN=redis -keyout redis.key -out redis.csr &&
     printf 'subjectAltName=IP:127.0.0.1\n' > redis.ext &&
     openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key \
         -CAcreateserial -days 2 -extfile redis.ext -out redis.crt
    ) > "$dir/pki.log" 2>&1 || { cat "$dir/pki.log"; exit 1; }
    chmod 644 "$dir"/*.crt "$dir"/*.key
    tls=(--tls-port "$tport" --tls-cert-file "$dir/redis.crt"
         --tls-key-file "$dir/redis.key" --tls-ca-cert-file "$dir/ca.crt"
         --tls-auth-clients no) ;;
esac

rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" "${tls[@]}" &
redis_pid=$!
pids+=("$redis_pid")
wait_port "$rport"

python3 "$here/seed.py" "$PARTNERS" "$ID_BASE" \
    | redis-cli -p "$rport" --pipe > "$dir/seed.log"
grep -q 'errors: 0' "$dir/seed.log" || { cat "$dir/seed.log"; exit 1; }
# the Functions library, for mpn-consume's FCALL mpn_consume
redis-cli -p "$rport" -x FUNCTION LOAD REPLACE < "$here/../../redis/mpn.lua" \
    > /dev/null

# --- one nginx per variant ---------------------------------------------------

# start_nginx VARIANT: writes $dir/VARIANT/{port,worker}
start_nginx() {
    local v=$1 port gate='' http='' worker
    port=$(free_port)
    mkdir -p "$dir/$v/html/benefits" "$dir/$v/tmp"
    printf 'ok\n' > "$dir/$v/html/benefits/azure-credits"
    chmod -R a+rX "$dir/$v"

    case $v in
    baseline) ;;
    mpn-nocache)
        http="mpn_redis 127.0.0.1:$rport;"
        gate="mpn on; mpn_partner \$http_x_partner_id;" ;;
    mpn-nocache-tls)
        http="mpn_redis 127.0.0.1:$tport tls tls_ca=$dir/ca.crt;"
        gate="mpn on; mpn_partner \$http_x_partner_id;" ;;
    mpn-cache)
        http="mpn_redis 127.0.0.1:$rport; mpn_cache zone=mpn:$ZONE ttl=$TTL;"
        gate="mpn on; mpn_partner \$http_x_partner_id;" ;;
    mpn-consume)
        # mpn-cache, and each allowed request takes a unit of this month's
        # Azure credits in Redis (FCALL mpn_consume)
        http="mpn_redis 127.0.0.1:$rport; mpn_cache zone=mpn:$ZONE ttl=$TTL;"
        gate="mpn on; mpn_partner \$http_x_partner_id;
              mpn_consume azure_credits per=month;" ;;
    mpn-token-*)
        local alg
        case $v in
            *-hs) alg=HS256 ;; *-rs) alg=RS256 ;;
            *-es) alg=ES256 ;; *-ed) alg=EdDSA ;;
        esac
        "$signer" "$alg" "$PARTNERS" "$ID_BASE" "$dir/$v"
        http="mpn_redis 127.0.0.1:$rport; mpn_cache zone=mpn:$ZONE ttl=$TTL;"
        gate="mpn on; mpn_token \$http_authorization;
              mpn_token_keys $dir/$v/keys.jwks;" ;;
    *) echo "unknown variant $v" >&2; exit 1 ;;
    esac
    [ -z "$gate" ] || gate="$gate
            mpn_require_tier action_pack;
            mpn_require_benefit azure_credits;
            mpn_renew_url /renew?return=\$mpn_return_url;"

    cat > "$dir/$v/nginx.conf" <<EOF
$([ "$v" = baseline ] || echo "load_module $module;")
worker_processes 1;
daemon off;
pid $dir/$v/nginx.pid;
error_log $dir/$v/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    absolute_redirect off;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path $dir/$v/tmp;
    proxy_temp_path $dir/$v/tmp;
    fastcgi_temp_path $dir/$v/tmp;
    uwsgi_temp_path $dir/$v/tmp;
    scgi_temp_path $dir/$v/tmp;
    $http

    server {
        listen 127.0.0.1:$port;
        root $dir/$v/html;
        location = /benefits/azure-credits {
            $gate
        }
        location = /status { allow 127.0.0.1; deny all; $([ "$v" = baseline ] || echo "mpn_status;") }
    }
}
EOF
    nginx -p "$dir/$v" -c "$dir/$v/nginx.conf" 2>> "$dir/$v/stderr" &
    pids+=("$!")
    wait_port "$port"
    for _ in $(seq 100); do
        worker=$(cat "/proc/$!/task/$!/children" 2>/dev/null | awk '{print $1}')
        [ -n "$worker" ] && break
        sleep 0.05
    done
    echo "$port" > "$dir/$v/port"
    echo "$worker" > "$dir/$v/worker"
}

for v in $VARIANTS; do
    start_nginx "$v"
done

# --- wrk ---------------------------------------------------------------------

hz=$(getconf CLK_TCK)

cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$t"
}

# wrk_run VARIANT SECONDS [env...]: wrk's output; each run draws its own
# Zipf sequence (DIST=zipf), so no measurement replays its warm-up
runs=0
wrk_run() {
    local v=$1 secs=$2; shift 2
    local tokens=
    case $v in mpn-token-*) tokens=$dir/$v/tokens.txt ;; esac
    runs=$((runs + 1))
    env PEERS_N="$PARTNERS" PEERS_ID_BASE="$ID_BASE" PEERS_DIST="$DIST" \
        PEERS_TOKENS="$tokens" PEERS_SEED=$((12345 + runs)) "$@" \
        wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" -s "$here/rotate.lua" \
        "http://127.0.0.1:$(cat "$dir/$v/port")/benefits/azure-credits"
}

{
    echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; nginx $(nginx -v 2>&1 | sed 's/.*\///')," \
         "redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
    echo "# wrk -t$THREADS -c$CONNS -d${DURATION}s (warm-up ${WARMUP}s), $ROUNDS rounds," \
         "$PARTNERS partners ($DIST), 1 in 5 lapsed; mpn_cache zone=$ZONE ttl=$TTL"
} | tee "$dir/runs.tsv"

# fill: every partner once, in order, in runs of 5 s (wrk has no request
# count), each from where the last one stopped
if [ -n "$FILL" ] && [ "$FILL" != 0 ]; then
    for v in $VARIANTS; do
        case $v in baseline|mpn-nocache*) continue ;; esac
        off=0
        while [ "$off" -lt "$PARTNERS" ]; do
            got=$(wrk_run "$v" 5 PEERS_DIST=uniform PEERS_START="$off" \
                  | sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p')
            [ "${got:-0}" -gt 0 ] || { echo "fill of $v stalled" >&2; exit 1; }
            off=$((off + got))
        done
        echo "# $v: filled with $off requests" | tee -a "$dir/runs.tsv"
    done
fi

# mpn-consume: the usage starts from zero before each run, so no partner
# reaches its allowance (100 a month) and every request is what it was
clear_usage() {
    redis-cli -p "$rport" --scan --pattern 'mpn:usage:*' \
        | xargs -r -n 1000 redis-cli -p "$rport" UNLINK > /dev/null
}

for r in $(seq "$ROUNDS"); do
    for v in $VARIANTS; do
        [ "$v" != mpn-consume ] || clear_usage
        wrk_run "$v" "$WARMUP" > /dev/null
        worker=$(cat "$dir/$v/worker")
        if [[ " $PERF " == *" $v "* ]] && [ "$r" = 1 ]; then
            perf record -q -F 2000 -g -p "$worker" -o "$dir/perf-$v.data" \
                -- sleep "$DURATION" > /dev/null 2>&1 &
        fi
        c0=$(cpu_ticks "$worker" "$redis_pid")
        n0=$(cpu_ticks "$worker")
        wrk_run "$v" "$DURATION" > "$dir/$v.r$r.wrk" 2>&1
        c1=$(cpu_ticks "$worker" "$redis_pid")
        n1=$(cpu_ticks "$worker")
        if [[ " $PERF " == *" $v "* ]] && [ "$r" = 1 ]; then
            wait $!
            perf report -i "$dir/perf-$v.data" --stdio --no-children \
                --percent-limit 0.5 -g none --sort dso,sym 2>/dev/null \
                | grep -v '^#' | grep . > "$dir/perf-$v.txt" || true
            echo "# perf profile of the $v worker: $dir/perf-$v.txt" >&2
        fi
        res=$(grep '^RESULT' "$dir/$v.r$r.wrk") \
            || { cat "$dir/$v.r$r.wrk"; echo "no RESULT from wrk for $v" >&2; exit 1; }
        get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $res"; }
        errs=$(( $(get non2xx3xx) + $(get connect_err) + $(get read_err) \
                 + $(get write_err) + $(get timeouts) ))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$r" "$(get rps)" \
            "$(get p50_us)" "$(get p99_us)" "$errs" "$(get requests)" \
            "$(( (n1 - n0) * 1000000 / hz ))" \
            "$(( (c1 - c0) * 1000000 / hz ))" | tee -a "$dir/runs.tsv"
    done
done

for v in $VARIANTS; do
    [ "$v" = baseline ] && continue
    curl -s "http://127.0.0.1:$(cat "$dir/$v/port")/status" > "$dir/$v.status.json"
done

echo
python3 "$here/summarize.py" "$dir/runs.tsv" "$dir" | tee "$dir/summary.txt"
echo "raw results: $dir/"
