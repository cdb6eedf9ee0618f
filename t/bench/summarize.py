#!/usr/bin/env python3
"""make bench's tables from runs.tsv, in the judge's terms (lib/summarize.py
of ../shared/peers): medians over rounds, and ratios paired with the
baseline of the same round.

runs.tsv: variant round rps p50_us p99_us errors requests nginx_cpu_us
srv_cpu_us (CPU of the nginx worker, and of worker + redis-server, over the
measured run).  srv us/req = srv_cpu_us / requests.

    summarize.py runs.tsv [DIR]   (DIR: <variant>.status.json for hit counts)
"""
import json
import os
import statistics as st
import sys


def main(path, folder=None):
    runs, order = {}, []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        v, rnd, rps, p50, p99, errs, reqs, ncpu, scpu = line.split("\t")
        if v not in runs:
            runs[v] = {}
            order.append(v)
        runs[v][int(rnd)] = {
            "rps": float(rps), "p50": int(p50), "p99": int(p99),
            "errs": int(errs), "us": int(scpu) / max(int(reqs), 1),
            "nginx_us": int(ncpu) / max(int(reqs), 1)}

    def med(v, k):
        return st.median(r[k] for r in runs[v].values())

    base = runs.get("baseline")
    fmt = "%-14s %8s %15s %7s %7s %7s %6s %10s %10s"
    print(fmt % ("variant", "req/s", "min..max", "p50 ms", "p99 ms",
                 "vs base", "errors", "srv us/req", "nginx us"))
    for v in order:
        rps = [r["rps"] for r in runs[v].values()]
        print(fmt % (
            v, "%.0f" % st.median(rps), "%.0f..%.0f" % (min(rps), max(rps)),
            "%.2f" % (med(v, "p50") / 1000), "%.2f" % (med(v, "p99") / 1000),
            "%.2f" % (st.median(rps) / med("baseline", "rps")) if base else "-",
            sum(r["errs"] for r in runs[v].values()),
            "%.2f" % med(v, "us"), "%.2f" % med(v, "nginx_us")))

    def paired(v, b):
        pr = [(r, runs[b][n]) for n, r in runs[v].items() if n in runs[b]]
        return (st.median(r["rps"] / o["rps"] for r, o in pr),
                st.median(r["us"] - o["us"] for r, o in pr),
                st.median(r["p99"] / o["p99"] for r, o in pr))

    if base:
        print("\npaired with the baseline of the same round (median over rounds):")
        print("%-14s %8s %10s %9s %13s" % ("variant", "x base", "+us/req",
                                           "p99 x", "x mpn-cache"))
        for v in order:
            x, us, p99 = paired(v, "baseline")
            rel = ""
            if (v.startswith("mpn-token") or v == "mpn-consume") \
                    and "mpn-cache" in runs:
                rel = "%.3f" % (x / paired("mpn-cache", "baseline")[0])
            print("%-14s %8.3f %10.2f %9.2f %13s" % (v, x, us, p99, rel))

    # what one thing adds, against the variant without it in the same round
    for v, b, what in (("mpn-consume", "mpn-cache", "consuming"),
                       ("mpn-nocache-tls", "mpn-nocache", "TLS")):
        if v not in runs or b not in runs:
            continue
        x, us, p99 = paired(v, b)
        pr = [(r, runs[b][n]) for n, r in runs[v].items() if n in runs[b]]
        p50 = st.median(r["p50"] - o["p50"] for r, o in pr)
        nus = st.median(r["nginx_us"] - o["nginx_us"] for r, o in pr)
        print("\n%s over %s (%s), the same round: x%.3f req/s, %+.2f us CPU "
              "per request (%+.2f us nginx worker, the rest redis-server), "
              "p50 %+.0f us, p99 x%.2f" % (v, b, what, x, us, nus, p50, p99))

    if folder:
        for v in order:
            f = os.path.join(folder, v + ".status.json")
            if not os.path.exists(f) or not os.path.getsize(f):
                continue
            s = json.load(open(f))
            c, t = s.get("cache", {}), s.get("token_cache", {})
            used = c.get("used_bytes", c.get("bytes_used", 0))
            line = "%-14s cache hits %d misses %d expired %d evictions %d " \
                   "entries %d used_bytes %d (%.0f per entry)" % (
                       v, c.get("hits", 0), c.get("misses", 0),
                       c.get("expired", 0), c.get("evictions", 0),
                       c.get("entries", 0), used,
                       used / max(c.get("entries", 0), 1))
            if t.get("hits") or t.get("misses"):
                line += "; token cache hits %d misses %d" % (t["hits"], t["misses"])
            for b, n in sorted(s.get("consumptions", {}).items()):
                line += "; consumptions of %s: %s" % (b, " ".join(
                    "%s %d" % kv for kv in sorted(n.items())))
            print(line)

    print("\nreq/s, p50, p99, srv us/req: median of %d rounds; srv us/req: CPU "
          "of the nginx worker and redis-server per request; x base, +us/req, "
          "p99 x: each round against the baseline of the same round, then the "
          "median; x mpn-cache: a token variant's (or mpn-consume's) x "
          "base over mpn-cache's."
          % len(next(iter(runs.values()))))


if __name__ == "__main__":
    main(*sys.argv[1:])
