#!/usr/bin/python3
"""The demo portal's backend: Python 3 standard library only.

  portal.py partners [--now UNIX]  print the demo partners as JSON lines
                                   (dates relative to now) for mpnctl import
  portal.py list                   print the demo partners, one a line
  portal.py serve PORT             answer the portal's dynamic requests on
                                   127.0.0.1:PORT, behind nginx

Environment for serve: MPNCTL (path of mpnctl), MPN_REDIS (its --redis),
MPN_JWKS (the demo signing key set).

nginx passes these locations here:
  GET  /signin                 the sign-in page (pick a demo partner)
  POST /app/signin?return=U    sign a token with mpnctl, set cookie "mpn"
  GET  /app/signout            clear the cookie
  POST /app/renew?return=U     mpnctl renew ID action_pack --rev N      (gated)
  POST /app/subscribe?return=U mpnctl subscribe ID action_pack --rev N  (gated)
  GET  /_demo/who?id=ID        the header's part: company, Action Pack, Sign out
  GET  /_demo/notice?id=ID     a notice for a cancelled Action Pack, or nothing
  GET  /_demo/rev?id=ID        the hidden rev field of a renew/subscribe form
The gated ones get the partner id from the module, in X-Mpn-Partner; the
/_demo/ fragments are internal to nginx, included (SSI) by pages the module
gated, with the id it gave them.  A form carries the rev of the record the
page showed, so a second click or the back button never renews twice (the
library refuses a stale rev with CONFLICT).
"""

import calendar
import html
import http.server
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

DAY = 86400

AP_BENEFITS = {"developer_tools": 1, "windows_enterprise": 10,
               "visual_studio_pro": 3, "vsts": 1, "office365_e3": 10,
               "ems": 5, "dynamics_crm": 5, "azure_credits": 100}

# id, name, what it shows
PARTNERS = [
    ("4410001", "Contoso Ltd", "Action Pack, active, renews automatically"),
    ("4410002", "Fabrikam Inc", "Action Pack lapsed (expired 20 days ago)"),
    ("4410003", "Northwind Traders",
     "Action Pack active, auto-renew off, ends in 12 days"),
    ("4410004", "Tailspin Toys", "network member only"),
    ("4410005", "Adventure Works", "gold competency in cloud_platform"),
    ("4410006", "Litware Inc", "account suspended"),
    ("4410007", "Wide World Importers", "Action Pack cancelled"),
]

ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REV_RE = re.compile(r"^[0-9]{1,15}$")
MONTHS = ["January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December"]


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def action_pack(now, end_days, status="active", auto_renew=True):
    return {"status": status,
            "start": rfc3339(now + (end_days - 365) * DAY),
            "end": rfc3339(now + end_days * DAY),
            "auto_renew": auto_renew,
            "benefits": dict(AP_BENEFITS)}


def records(now):
    subs = {
        "4410001": {"action_pack": action_pack(now, 200)},
        "4410002": {"action_pack": action_pack(now, -20, status="expired")},
        "4410003": {"action_pack": action_pack(now, 12.5, auto_renew=False)},
        "4410004": {},
        "4410005": {},
        "4410006": {"action_pack": action_pack(now, 150)},
        "4410007": {"action_pack": action_pack(now, 90, status="cancelled")},
    }
    out = []
    for pid, name, _ in PARTNERS:
        r = {"v": 1, "partner_id": pid, "name": name, "network": True,
             "status": "suspended" if pid == "4410006" else "active",
             "subscriptions": subs[pid], "competencies": {}}
        if pid == "4410005":
            r["competencies"]["cloud_platform"] = {
                "level": "gold", "end": rfc3339(now + 300 * DAY),
                "benefits": {"advisory_hours": 20, "developer_tools": 1,
                             "windows_enterprise": 25, "azure_credits": 350}}
        out.append(json.dumps(r, sort_keys=True))
    return out


def readable(rfc):
    """2027-01-15T00:00:00Z -> 15 January 2027 ("" if it is not a date)."""
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T", rfc or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        return ""
    return "%d %s %s" % (int(m.group(3)), MONTHS[int(m.group(2)) - 1],
                         m.group(1))


def parse_time(rfc):
    try:
        return calendar.timegm(time.strptime(rfc[:19], "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return None


def action_pack_state(rec):
    """(state, end) of the record's Action Pack: state is none, active,
    cancelled or ended."""
    ap = (rec.get("subscriptions") or {}).get("action_pack")
    if not isinstance(ap, dict):
        return "none", ""
    end = ap.get("end", "")
    if ap.get("status") == "cancelled":
        return "cancelled", end
    t = parse_time(end)
    if ap.get("status") != "active" or t is None or t < time.time():
        return "ended", end
    return "active", end


def who_html(rec, pid):
    """The header's right end: who is signed in, or the Sign in link."""
    if not pid:
        return '<a href="/signin" id="signin-link">Sign in</a>'
    rec = rec or {}
    name = rec.get("name") if isinstance(rec.get("name"), str) else pid
    state, end = action_pack_state(rec)
    if rec.get("status") == "suspended":
        what = "account suspended"
    else:
        what = {"active": "Action Pack until %s" % readable(end),
                "cancelled": "Action Pack cancelled",
                "ended": "Action Pack ended on %s" % readable(end),
                "none": "no Action Pack"}[state]
    return ('<span class="who" id="who"><b id="company">%s</b> (%s) &middot; '
            '<span id="state">%s</span></span> '
            '<a href="/app/signout" id="signout">Sign out</a>'
            % (html.escape(name), html.escape(pid), html.escape(what)))


def notice_html(rec):
    if rec and action_pack_state(rec)[0] == "cancelled":
        return ('<p class="error" id="cancelled-notice">Your Action Pack was '
                'cancelled: its benefits have stopped. <a href="/offers">'
                'Subscribe again</a> to get them back.</p>')
    return ""


def safe_return(value, default="/benefits/"):
    """A local path to go back to: one leading '/', never '//' or '/\\'."""
    if not value or not value.startswith("/") or value[1:2] in ("/", "\\"):
        return default
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return default
    return value


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/style.css"></head><body>
<header><a class="brand" href="/benefits/">Partner Network</a>
<nav><a href="/benefits/">Benefits</a> <a href="/offers">Offers</a>
{who}</nav></header>
<main>{body}</main></body></html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mpn-demo"

    def log_message(self, fmt, *args):
        sys.stderr.write("portal: %s\n" % (fmt % args))

    # (nginx adds Cache-Control: no-store to every portal response)
    def send_page(self, code, title, body, headers=(), pid=""):
        who = who_html(self.record(pid), pid) if pid else who_html(None, "")
        data = PAGE.format(title=html.escape(title), body=body,
                           who=who).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location, headers=()):
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        return u.path, safe_return(q.get("return", [""])[0])

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 4096)).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}

    def mpnctl(self, *args):
        cmd = [os.environ["MPNCTL"], args[0]]
        if args[0] != "token":
            cmd += ["--redis", os.environ["MPN_REDIS"]]
        p = subprocess.run(cmd + list(args[1:]), capture_output=True,
                           text=True, timeout=10)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    def record(self, pid):
        """The stored record, or None."""
        if not ID_RE.match(pid or ""):
            return None
        rc, out, _ = self.mpnctl("get", pid)
        try:
            return json.loads(out) if rc == 0 else None
        except ValueError:
            return None

    def fragment(self, text):
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path, ret = self.split()
        if path.startswith("/_demo/"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            pid = q.get("id", [""])[0]
            pid = pid if ID_RE.match(pid) else ""
            rec = self.record(pid)
            if path == "/_demo/who":
                return self.fragment(who_html(rec, pid))
            if path == "/_demo/notice":
                return self.fragment(notice_html(rec))
            if path == "/_demo/rev":
                rev = (rec or {}).get("rev", 0)
                return self.fragment(
                    '<input type="hidden" name="rev" value="%d">' % rev
                    if rec and isinstance(rev, int) else "")
        if path == "/signin":
            return self.signin_page(ret)
        if path == "/app/signout":
            return self.redirect("/signin", [(
                "Set-Cookie", "mpn=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")])
        self.send_page(404, "Not found", "<h1>Not found</h1>")

    def do_POST(self):
        path, ret = self.split()
        if path == "/app/signin":
            return self.signin(ret)
        if path in ("/app/renew", "/app/subscribe"):
            return self.write_call(path.rsplit("/", 1)[1], ret)
        self.send_page(404, "Not found", "<h1>Not found</h1>")

    def signin_page(self, ret):
        action = "/app/signin?return=" + urllib.parse.quote(ret, safe="")
        rows = "".join(
            '<label class="partner"><input type="radio" name="partner" '
            'value="{0}"{3}> <b>{1}</b> <span>{0} &middot; {2}</span></label>\n'
            .format(pid, html.escape(name), html.escape(what),
                    " checked" if i == 0 else "")
            for i, (pid, name, what) in enumerate(PARTNERS))
        body = ("<h1>Sign in to the Partner Network</h1>\n"
                "<p>Pick a demo partner. You get a signed token in the "
                "<code>mpn</code> cookie, which the module checks on every "
                "benefit page.</p>\n"
                '<form method="post" action="{0}">\n{1}'
                '<button type="submit" id="signin">Sign in</button></form>\n'
                ).format(html.escape(action), rows)
        self.send_page(200, "Sign in", body)

    def signin(self, ret):
        pid = self.form().get("partner", "")
        if pid not in [p[0] for p in PARTNERS]:
            return self.send_page(400, "Sign in", "<h1>No such partner</h1>")
        rc, token, err = self.mpnctl("token", "--jwks", os.environ["MPN_JWKS"],
                                     "--sub", pid, "--exp", "8h")
        if rc != 0:
            return self.failed("Sign-in failed", err)
        self.redirect(ret, [(
            "Set-Cookie",
            "mpn=%s; Path=/; Max-Age=28800; HttpOnly; SameSite=Lax" % token)])

    def write_call(self, what, ret):
        pid = self.headers.get("X-Mpn-Partner", "")
        if not ID_RE.match(pid):
            return self.redirect("/signin?return=" + urllib.parse.quote(ret, safe=""))
        rev = self.form().get("rev", "")
        if not REV_RE.match(rev):
            return self.failed("Could not %s Action Pack" % what, "STALE_PAGE",
                               pid, ret, 400)
        rc, out, err = self.mpnctl(what, pid, "action_pack", "--rev", rev)
        if rc != 0:
            return self.failed("Could not %s Action Pack" % what, err, pid, ret)
        self.redirect(ret)

    def failed(self, title, err, pid="", ret="/benefits/", status=409):
        code = re.search(r"\b([A-Z][A-Z_]{3,})\b", err or "")
        code = code.group(1) if code else ""
        msg = {"ALREADY_ACTIVE": "Your Action Pack is current: renew it instead.",
               "NOT_MEMBER": "Join the Partner Network first.",
               "SUSPENDED": "This account is suspended: please contact "
                            "partner support.",
               "CONFLICT": "Nothing was changed: the page you sent this from "
                           "was out of date (it was already sent once, or "
                           "your Action Pack changed since). Check your "
                           "benefits before you try again.",
               "STALE_PAGE": "Nothing was changed: reload the page and try "
                             "again."
               }.get(code, err or "unknown error")
        self.send_page(status, title,
                       '<h1>%s</h1><p class="error" id="failed" data-code="%s">'
                       '%s</p><p><a href="%s" id="back">Back to your benefits'
                       '</a></p>' % (html.escape(title), html.escape(code),
                                     html.escape(msg),
                                     html.escape(safe_return(ret))),
                       pid=pid)


def main(argv):
    if len(argv) >= 2 and argv[1] == "partners":
        now = int(argv[3]) if len(argv) > 3 and argv[2] == "--now" else int(time.time())
        print("\n".join(records(now)))
    elif len(argv) >= 2 and argv[1] == "list":
        for pid, name, what in PARTNERS:
            print("  %-8s %-22s %s" % (pid, name, what))
    elif len(argv) == 3 and argv[1] == "serve":
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(argv[2])), Handler)
        srv.daemon_threads = True
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
