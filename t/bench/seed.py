#!/usr/bin/env python3
"""make bench's records, as RESP for redis-cli --pipe: the dataset marker
and N partners BASE .. BASE+N-1 in the shape of the judge's lib/seed.py
(one Action Pack with eight benefits, one gold competency; dates relative
to now), every fifth lapsed (alternately "expired" and "active" with its
end in the past).

    seed.py N BASE
"""
import json
import sys
import time

DAY = 86400


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def record(pid, now, i, sub_status="active", end_days=165):
    midnight = now - now % DAY
    end = midnight + end_days * DAY
    benefits = {"developer_tools": 1, "windows_enterprise": 10 + i % 5,
                "visual_studio_pro": 3, "vsts": 1, "office365_e3": 10,
                "ems": 5, "dynamics_crm": 5, "azure_credits": 100}
    return json.dumps({
        "v": 1, "partner_id": pid, "name": "Partner %s Ltd" % pid,
        "network": True, "status": "active", "rev": 1 + i % 9,
        "updated_at": iso(midnight - 4 * DAY),
        "subscriptions": {"action_pack": {
            "status": sub_status, "start": iso(end - 365 * DAY),
            "end": iso(end), "auto_renew": sub_status == "active",
            "benefits": benefits}},
        "competencies": {"cloud_platform": {
            "level": "gold", "end": iso(midnight + 218 * DAY),
            "benefits": {"advisory_hours": 20}}},
    }, separators=(",", ":"))


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def main():
    n, base = int(sys.argv[1]), int(sys.argv[2])
    now = int(time.time())
    out = sys.stdout.buffer
    out.write(resp("SET", "mpn:meta", '{"v":1,"created_at":"%s"}' % iso(now)))
    for i in range(n):
        pid = str(base + i)
        kw = {}
        if i % 5 == 4:
            kw = ({"sub_status": "expired", "end_days": -40} if (i // 5) % 2
                  else {"end_days": -3})
        out.write(resp("SET", "mpn:partner:" + pid, record(pid, now, i, **kw)))


if __name__ == "__main__":
    main()
