#!/bin/bash
# make bench-scale: the cached gate from 10,000 to 1,000,000 partners.
#
#     t/bench/scale.sh MODULE_SO SIGNER
#
# Runs bench.sh (baseline and mpn-cache, ttl=1h, every cached partner
# requested once before the rounds) for
#   10k-uniform    10,000 partners, each in turn, the zone holding them all
#   1m-uniform     1,000,000 partners, each in turn, the zone holding them all
#   1m-zipf        1,000,000 partners, Zipf(1.0), the zone holding them all
#   1m-zipf-10pct  1,000,000 partners, Zipf(1.0), the zone holding 10% of them
# and prints one table: req/s and server CPU per request of mpn-cache, paired
# with the baseline of its run, the zone's bytes per entry and hit ratio.
# SCENARIOS="10k-uniform 1m-zipf" picks some; ROUNDS, DURATION, WARMUP as
# bench.sh (WARMUP_10PCT=15: the warm-up of the 10% zone).

set -e -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=${1:?usage: scale.sh MODULE_SO SIGNER}
signer=${2:?usage: scale.sh MODULE_SO SIGNER}
out=$(mktemp -d /tmp/mpn-scale-XXXXXX)
chmod 755 "$out"      # nginx workers (nobody) read the files under it
SCENARIOS=${SCENARIOS:-10k-uniform 1m-uniform 1m-zipf 1m-zipf-10pct}
ENTRY_BYTES=${ENTRY_BYTES:-600}
WARMUP=${WARMUP:-3}
WARMUP_10PCT=${WARMUP_10PCT:-15}

for s in $SCENARIOS; do
    case $s in
        10k-uniform)   n=10000   dist=uniform zone= fill=1 warm=$WARMUP ;;
        1m-uniform)    n=1000000 dist=uniform zone= fill=1 warm=$WARMUP ;;
        1m-zipf)       n=1000000 dist=zipf    zone= fill=1 warm=$WARMUP ;;
        1m-zipf-10pct) n=1000000 dist=zipf    fill=0 warm=$WARMUP_10PCT
                       zone=$(( n / 10 * ENTRY_BYTES / 1048576 ))m ;;
        *) echo "unknown scenario $s" >&2; exit 1 ;;
    esac
    echo "== $s"
    # the 10% zone gets no filling pass: Zipf traffic itself (a longer
    # warm-up) brings it to its steady state of hits and evictions
    VARIANTS="baseline mpn-cache" PARTNERS=$n DIST=$dist ZONE=$zone TTL=1h \
        FILL=$fill WARMUP=$warm \
        "$here/bench.sh" "$module" "$signer" "$out/$s" \
        | grep -E '^(#|mpn-cache|baseline)' || true
done

echo
python3 - "$out" $SCENARIOS <<'PY'
import json, os, statistics as st, sys
out, names = sys.argv[1], sys.argv[2:]
print("%-14s %9s %8s %8s %10s %8s %8s %11s %9s" % ("scenario", "req/s", "x base",
      "srv us", "+us/req", "p99 x", "hits %", "zone bytes", "B/entry"))
rows = {}
for s in names:
    runs = {}
    for line in open(os.path.join(out, s, "runs.tsv")):
        if line.startswith("#"):
            continue
        v, r, rps, p50, p99, errs, reqs, ncpu, scpu = line.split("\t")
        runs.setdefault(v, {})[r] = (float(rps), int(p99), int(scpu) / int(reqs))
    c, b = runs["mpn-cache"], runs["baseline"]
    x = st.median(c[r][0] / b[r][0] for r in c)
    us = st.median(c[r][2] for r in c)
    dus = st.median(c[r][2] - b[r][2] for r in c)
    p99 = st.median(c[r][1] / b[r][1] for r in c)
    rps = st.median(c[r][0] for r in c)
    j = json.load(open(os.path.join(out, s, "mpn-cache.status.json")))["cache"]
    looked = j["hits"] + j["misses"] + j["expired"]
    rows[s] = (rps, x, us)
    print("%-14s %9.0f %8.3f %8.2f %10.2f %8.2f %8.1f %11d %9.0f" % (
        s, rps, x, us, dus, p99, 100.0 * j["hits"] / max(looked, 1),
        j.get("size_bytes", j.get("bytes_total", 0)),
        j.get("used_bytes", j.get("bytes_used", 0)) / max(j["entries"], 1)))
if "10k-uniform" in rows and "1m-uniform" in rows:
    print("\n1m-uniform / 10k-uniform srv us/req: %.3f (goal: at most 1.10)"
          % (rows["1m-uniform"][2] / rows["10k-uniform"][2]))
if "1m-zipf" in rows and "1m-zipf-10pct" in rows:
    print("1m-zipf-10pct / 1m-zipf x base: %.3f (goal: at least 0.8)"
          % (rows["1m-zipf-10pct"][1] / rows["1m-zipf"][1]))
print("\nB/entry: the zone's bytes in use (slab pages, index included) per entry.")
PY
echo "raw results: $out/"
