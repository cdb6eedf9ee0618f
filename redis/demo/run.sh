#!/bin/bash
# The demo portal behind `make run`: a private redis-server, Debian's nginx
# with the module, and the small backend (portal.py), all on loopback.  It
# builds nothing (`make run` has built the module and mpnctl), starts from
# the seed every time (a new Redis without persistence, the marker written
# by `mpnctl init`, the demo partners imported), and stops everything it
# started on Ctrl-C (SIGINT, exit 0) or SIGTERM.
#
# Environment (all optional):
#   MPN_PORT          nginx port (default 8080, or a free one when 8080 is taken)
#   MPN_REDIS_PORT    redis-server port (default 6399, or a free one)
#   MPN_BACKEND_PORT  backend port (default: a free one)
#   MPN_RUNDIR        private run directory (default /tmp/mpn-run-$USER, so
#                     the nginx workers (nobody) can read the pages even when
#                     the checkout is under a private home; emptied first)
#   MPN_MODULE        the module object (default build/nginx/objs/ngx_http_mpn_module.so)
#   MPN_PRELOAD       libraries to LD_PRELOAD into nginx (as in the test suite)
# When everything is up it writes $MPN_RUNDIR/ready (shell assignments:
# URL, PORT, REDIS_PORT, BACKEND_PORT) and $MPN_RUNDIR/pids.

set -euo pipefail

# Ctrl-C on a terminal signals the whole foreground process group, make
# included, and make then dies of it (exit 130) whatever this script does.
# So on a terminal the script moves itself into a process group of its own
# and gives that group the terminal: Ctrl-C reaches only the script, which
# stops everything and exits 0, and make with it.  (The shell takes the
# terminal back when make ends.)
if [ -t 0 ] && [ -z "${MPN_RUN_OWN_GROUP:-}" ]; then
    export MPN_RUN_OWN_GROUP=1
    exec /usr/bin/perl -MPOSIX -e '
        my $old = getpgrp();
        if (setpgid(0, 0)) {
            local $SIG{TTOU} = "IGNORE";
            tcsetpgrp(0, getpgrp()) or setpgid(0, $old);
        }
        exec @ARGV or die "exec: $!\n";' "$0" "$@"
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEMO=$ROOT/redis/demo
PY=/usr/bin/python3
MPNCTL=$ROOT/build/mpnctl
MODULE=${MPN_MODULE:-$ROOT/build/nginx/objs/ngx_http_mpn_module.so}
RUNDIR=${MPN_RUNDIR:-/tmp/mpn-run-${USER:-$(id -un)}}

for f in "$MODULE" "$MPNCTL" /usr/sbin/nginx /usr/bin/redis-server "$PY"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "run.sh: missing $f (run make run)" >&2; exit 1; }
done

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {   # pick_port EXPLICIT DEFAULT
    if [ -n "$1" ]; then echo "$1"
    elif [ -n "$2" ] && ! port_in_use "$2"; then echo "$2"
    else free_port; fi
}
PORT=$(pick_port "${MPN_PORT:-}" 8080)
REDIS_PORT=$(pick_port "${MPN_REDIS_PORT:-}" 6399)
BACKEND_PORT=$(pick_port "${MPN_BACKEND_PORT:-}" "")
for p in "$PORT" "$REDIS_PORT" "$BACKEND_PORT"; do
    ! port_in_use "$p" || { echo "run.sh: port $p is in use" >&2; exit 1; }
done

# --- stopping: every process this script started, by PID ----------------
# (each runs under setsid, so a Ctrl-C reaches only this script, which then
# stops them in order)
declare -A PIDS=()
stopping=0
stop_all() {
    [ "$stopping" = 1 ] && return; stopping=1
    trap '' INT TERM
    local name pid
    for name in backend nginx redis; do
        pid=${PIDS[$name]:-}
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
    done
    for name in backend nginx redis; do
        pid=${PIDS[$name]:-}
        [ -n "$pid" ] || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -f "$RUNDIR/ready"
    echo "demo stopped"
}
trap 'stop_all; exit 0' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# --- the run directory ------------------------------------------------------
case "$RUNDIR" in /|"") echo "run.sh: bad MPN_RUNDIR" >&2; exit 1;; esac
rm -rf "$RUNDIR"
mkdir -p "$RUNDIR"/tmp "$RUNDIR"/html
chmod 0755 "$RUNDIR"           # nginx workers (nobody) read the pages

# pages, with the header and the reminder banner inlined where a page says
# <!-- header --> and <!-- banner -->
(cd "$DEMO/html" && find . -type d) | while read -r d; do mkdir -p "$RUNDIR/html/$d"; done
(cd "$DEMO/html" && find . -type f) | while read -r f; do
    sed -e "/<!-- header -->/{r $DEMO/header.inc" -e 'd}' \
        -e "/<!-- banner -->/{r $DEMO/banner.inc" -e 'd}' \
        "$DEMO/html/$f" > "$RUNDIR/html/$f"
done
chmod -R a+rX "$RUNDIR/html"

# --- redis ------------------------------------------------------------------
cat > "$RUNDIR/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
save ""
appendonly no
dir $RUNDIR
daemonize no
logfile $RUNDIR/redis.log
CONF
setsid /usr/bin/redis-server "$RUNDIR/redis.conf" </dev/null &
PIDS[redis]=$!
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
for _ in $(seq 100); do
    [ "$(rcli ping 2>/dev/null)" = PONG ] && break
    kill -0 "${PIDS[redis]}" 2>/dev/null || { cat "$RUNDIR/redis.log" >&2; exit 1; }
    sleep 0.05
done
[ "$(rcli ping 2>/dev/null)" = PONG ] || { echo "run.sh: redis did not start" >&2; exit 1; }
rcli -x FUNCTION LOAD REPLACE < "$ROOT/redis/mpn.lua" >/dev/null
# the dataset marker: the gate reads no record from a Redis without it
"$MPNCTL" --redis "127.0.0.1:$REDIS_PORT" init > "$RUNDIR/init.log"

# --- demo key and partners --------------------------------------------------
"$MPNCTL" keygen --alg ES256 --kid demo > "$RUNDIR/jwks.json"
chmod 0600 "$RUNDIR/jwks.json"  # read by the nginx master (and the backend)
"$PY" "$DEMO/portal.py" partners > "$RUNDIR/partners.jsonl"
"$MPNCTL" --redis "127.0.0.1:$REDIS_PORT" import --quiet "$RUNDIR/partners.jsonl" \
    > "$RUNDIR/import.log"

# --- nginx ------------------------------------------------------------------
cache=""
if grep -aq mpn_invalidate_channel "$MODULE"; then
    # this build of the module has the shared cache with pub/sub invalidation
    cache="    mpn_cache zone=mpn_demo:1m ttl=30s;\n    mpn_invalidate_channel mpn:invalidate;"
fi
sed -e "s|@MODULE@|$MODULE|g" -e "s|@RUNDIR@|$RUNDIR|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@REDIS_PORT@|$REDIS_PORT|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
    -e "s|@CACHE@|$cache|" "$DEMO/nginx.conf.in" > "$RUNDIR/nginx.conf"

setsid env ${MPN_PRELOAD:+LD_PRELOAD="$MPN_PRELOAD"} \
    /usr/sbin/nginx -p "$RUNDIR" -c "$RUNDIR/nginx.conf" \
    </dev/null >>"$RUNDIR/nginx.stderr" 2>&1 &
PIDS[nginx]=$!

# --- backend ----------------------------------------------------------------
MPNCTL=$MPNCTL MPN_REDIS="127.0.0.1:$REDIS_PORT" MPN_JWKS="$RUNDIR/jwks.json" \
    setsid "$PY" "$DEMO/portal.py" serve "$BACKEND_PORT" </dev/null 2>>"$RUNDIR/backend.log" &
PIDS[backend]=$!

for name in nginx backend; do
    p=$([ $name = nginx ] && echo "$PORT" || echo "$BACKEND_PORT")
    for _ in $(seq 100); do
        port_in_use "$p" && break
        kill -0 "${PIDS[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    port_in_use "$p" || {
        echo "run.sh: $name did not start" >&2
        cat "$RUNDIR/nginx.stderr" "$RUNDIR/error.log" "$RUNDIR/backend.log" 2>/dev/null >&2
        exit 1
    }
done

for name in redis nginx backend; do echo "$name ${PIDS[$name]}"; done > "$RUNDIR/pids"
URL="http://127.0.0.1:$PORT/"
printf 'URL=%s\nPORT=%s\nREDIS_PORT=%s\nBACKEND_PORT=%s\n' \
    "$URL" "$PORT" "$REDIS_PORT" "$BACKEND_PORT" > "$RUNDIR/ready"

cat <<MSG

  Partner Network demo portal:  $URL
  (sign in: ${URL}signin   benefits: ${URL}benefits/)

  Demo partners (pick one on the sign-in page):
$("$PY" "$DEMO/portal.py" list)

  Or with curl: sign each partner in, then ask for Azure credits
  (200 granted, 302 to /renew, /offers or /signin, 403 denied):
    for p in 4410001 4410002 4410003 4410004 4410005 4410006 4410007; do
      curl -s -c $RUNDIR/jar -d partner=\$p ${URL}app/signin >/dev/null
      curl -s -b $RUNDIR/jar -o /dev/null -w "\$p %{http_code} %{redirect_url}\\n" \\
           ${URL}benefits/azure/
    done

  Redis 127.0.0.1:$REDIS_PORT (mpn functions loaded), e.g.
    $MPNCTL --redis 127.0.0.1:$REDIS_PORT get 4410002
  Logs and config in $RUNDIR.  Press Ctrl-C to stop.

MSG

# wait until a signal, or until one of the processes ends by itself
set +e
wait -n "${PIDS[@]}"
echo "run.sh: a demo process exited; stopping" >&2
exit 1
