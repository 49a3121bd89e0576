"""The health checks, on the server: poll the new release's own uWSGI socket (speaking uwsgi, as
nginx does) before any user request can reach it, and the site through nginx after the switch,
until the release answers."""

from __future__ import annotations

from ..layout import Paths
from ..privilege import as_app
from ..shell import Raw, q, script

HEALTH_PROBE = r'''
import http.client, socket, ssl, sys, time
port, host, path, want, release, timeout, extra = (sys.argv[1:8] + [""])[:7]
start = time.monotonic()
deadline, wrong_since, hung = start + float(timeout), None, 0
# unix:SOCKET (extra: the site's port, https:PORT for an HTTPS site), https:PORT (extra: a CA
# file trusted besides the system's), or the HTTP port
if port.startswith("unix:"):
    scheme, site_port = ("https", extra[6:]) if extra.startswith("https:") else ("http", extra)
    where = f"{scheme}://{host}:{site_port}{path} on the new uWSGI's own socket (before the switch)"
else:
    scheme, site_port = ("https", port[6:]) if port.startswith("https:") else ("http", port)
    where = f"{scheme}://{host}:{site_port}{path}"

class Https(http.client.HTTPConnection):
    """nginx on this machine as a browser reaches the site: SNI and the certificate's check for
    the site's name, against the system's trust store (and the uploaded chain, if any)."""
    def connect(self):
        super().connect()
        ctx = ssl.create_default_context()
        if extra:
            ctx.load_verify_locations(cafile=extra)
            ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=host)

class Uwsgi(http.client.HTTPConnection):
    """A request to a uWSGI socket as nginx makes it: the uwsgi packet of CGI vars; the answer
    is plain HTTP."""
    def __init__(self, socket_path):
        super().__init__("localhost", timeout=5)
        self.socket_path = socket_path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.socket_path)
    def ask(self, path, host, server_port):
        self.connect()
        script, _, query = path.partition("?")
        env = {"REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": script,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": host,
               "SERVER_PORT": server_port, "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": host,
               "HTTP_USER_AGENT": "wsgiship-health", "REQUEST_SCHEME": scheme,
               "wsgi.url_scheme": scheme}
        if scheme == "https":  # as nginx's uwsgi_params say it: the app sees wsgi.url_scheme https
            env["HTTPS"] = "on"
        body = b"".join(len(k.encode()).to_bytes(2, "little") + k.encode()
                        + len(v.encode()).to_bytes(2, "little") + v.encode()
                        for k, v in env.items())
        self.sock.sendall(b"\0" + len(body).to_bytes(2, "little") + b"\0" + body)
        resp = self.response_class(self.sock, method="GET")
        resp.begin()
        return resp

def hint(status, seen, body):
    """What a wrong answer most likely means, when the app itself gave it (its release header,
    or none and no nginx page); or why the HTTPS connection failed."""
    if status is None and body.startswith("SSLCertVerificationError"):
        return (f": the certificate nginx serves for {host} does not verify against this"
                f" server's trust store{' and the uploaded chain' if extra else ''} (a test ACME"
                f" server's root must be added to it: update-ca-certificates)")
    if seen not in (release, None) or (seen is None and "<center>nginx</center>" in body):
        return ""
    if status == 404 != int(want):
        return (f": the app has no page at {path}; set app.health.path in hosts.yaml to a path"
                f" that answers (e.g. /admin/login/ for Django)")
    if status == 400 != int(want) and any(
            word in body for word in ("DisallowedHost", "ALLOWED_HOSTS", "Bad Request (400)")):
        return (f": the app refused the Host header {host} (Django's ALLOWED_HOSTS?): allow it"
                f" there, or set app.server_name in hosts.yaml to a name the app allows (the"
                f" check sends the first one, localhost for _)")
    return ""

while True:
    status, seen, body = None, None, ""
    try:
        if port.startswith("unix:"):
            conn = Uwsgi(port[5:])
            resp = conn.ask(path, host, site_port)
        else:
            kind = Https if scheme == "https" else http.client.HTTPConnection
            conn = kind("127.0.0.1", int(site_port), timeout=5)
            conn.request("GET", path, headers={"Host": host, "User-Agent": "wsgiship-health"})
            resp = conn.getresponse()
        status, seen = resp.status, resp.getheader("X-Wsgiship-Release")
        body = resp.read(4096).decode("utf-8", "replace")
        conn.close()
        hung = 0
    except (TimeoutError, socket.timeout) as exc:  # one class from Python 3.10 on
        # nginx took the request and nothing answered in 5 s: twice in a row is a hung release
        hung += 1
        body = f"no answer within 5 s ({hung} in a row): {exc}"
    except Exception as exc:
        hung = 0
        body = f"{type(exc).__name__}: {exc}"
    # A request answered by the old workers does not count: wait for the new release's header
    # (apps whose wsgi template drops the header are judged on the status alone).
    new = seen in (release, None)
    if status == int(want) and new:
        print(f"status={status}")
        sys.exit(0)
    # the new release answering a wrong status for 5 s is an answer; no need to wait longer
    # (and so is a certificate that does not verify)
    settled = (new and status) or body.startswith("SSLCertVerificationError")
    wrong_since = (wrong_since or time.monotonic()) if settled else None
    now = time.monotonic()
    if now > deadline or (wrong_since and now - wrong_since > 5) or hung >= 2:
        answer = "no answer" if status is None else f"answered {status}"
        if seen not in (release, None):
            answer += f" from release {seen} (still the old workers)"
        print(f"status={status or 'none'}")
        print(f"release={seen or 'none'}")
        print(f"waited={now - start:.1f}")
        print(f"reason=health check failed: GET {where} {answer},"
              f" expected {want} from release {release} (waited {now - start:.1f}s)"
              f"{hint(status, seen, body)}")
        print("\n".join(body.strip().splitlines()[:8]))
        sys.exit(1)
    time.sleep(0.2)
'''


def health_check(port: int, host: str, path: str, status: int, release: str, timeout: int,
                 https: bool = False, ca_file: str = "") -> str:
    """Poll the site through nginx on the server until the new release answers `status`; over
    HTTPS (`https`): to 127.0.0.1:port with SNI `host`, the certificate verified for it against
    the system's trust store, plus `ca_file` (your own certificate's chain) when given."""
    target = f"https:{port}" if https else port
    return script([
        " ".join(["python3", "-c", q(HEALTH_PROBE), q(target), q(host), q(path), q(status),
                  q(release), q(timeout), *([q(ca_file)] if https and ca_file else [])])
    ])


def slot_check(socket: Raw | str, http_port: int, host: str, path: str, status: int,
               release: str, timeout: int, https: bool = False) -> str:
    """Poll a uWSGI instance on its own socket (as nginx would ask it, with the site's Host and
    port, and HTTPS on for an HTTPS site: its https_port as `http_port`) until it answers
    `status` as `release`: no user request reaches it before. The socket is the app user's: run
    with app_user."""
    where = Raw('"unix:"' + q(socket))
    site_port = f"https:{http_port}" if https else http_port
    return script([
        f"{as_app('python3', '-c', HEALTH_PROBE, where, host, path, status, release, timeout, site_port)}",
    ])


# After the switch, while the previous release's uWSGI stays warm: follow the app log and count
# the new instance's requests (uWSGI's request lines of the workers of its master) by status.
WATCH_PROGRAM = r'''
import os, re, select, subprocess, sys, time
seconds, max_pct, main, end_file = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
MIN_REQUESTS = 10  # fewer requests than this say nothing either way
line_re = re.compile(rb"\[pid: (\d+)\|.*\(HTTP/[\d.]+ (\d{3})\)")
tail = subprocess.Popen(sys.argv[sys.argv.index("--") + 1:], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL)

def workers():
    out = subprocess.run(["pgrep", "-P", main], capture_output=True, text=True).stdout
    return set(out.split())

if main in ("", "0"):
    print("watched=0\nrequests=0\nerrors=0\nnote=the new uWSGI's master was not found: nothing watched")
    sys.exit(0)
start = refreshed = time.monotonic()
ours, total, errors, buf, failed, why = workers(), 0, 0, b"", False, ""
while True:
    now = time.monotonic()
    if now - start >= seconds:
        break
    if os.path.exists(end_file):
        who = open(end_file).read().strip()
        failed = who == "rollback"
        why = "fab rollback during the watch window" if failed else f"ended by the next {who}"
        break
    if now - refreshed >= 1:
        ours |= workers()  # respawned workers too; a dead one's last lines still count
        refreshed = now
    if select.select([tail.stdout], [], [], 0.25)[0]:
        chunk = os.read(tail.stdout.fileno(), 65536)
        if not chunk:
            why = "the app log could not be followed"
            break
        *lines, buf = (buf + chunk).split(b"\n")
        for line in lines:
            m = line_re.search(line)
            if m and m.group(1).decode() in ours:
                total += 1
                errors += m.group(2).startswith(b"5")
        if total >= MIN_REQUESTS and errors * 100 > max_pct * total:
            failed = True
            why = (f"{errors} of {total} requests answered 5xx ({errors * 100 / total:.1f}%)"
                   f" within {time.monotonic() - start:.0f}s, above health.max_5xx_percent"
                   f" {max_pct:g}")
            break
tail.terminate()
print(f"watched={time.monotonic() - start:.0f}")
print(f"requests={total}")
print(f"errors={errors}")
print(f"note={why}")
if failed:
    print(f"reason=watch: {why}")
    sys.exit(1)
'''


def watch(p: Paths, release: str, slots_pid: str, seconds: int, max_5xx_percent: float) -> str:
    """Watch the new release's 5xx rate for `seconds` after the switch (privileged, for the
    manager's pid query; run with app_user, for the app log). `slots_pid` prints the master pid
    of the slot in $WSGISHIP_SLOT. The lock holds `watching` meanwhile: a next deploy or a
    rollback writes `watch-end` to end the window (release.end_watch)."""
    lock = q(p.lock)
    return script([
        f'printf %s {q(release)} > {lock}/watching',
        f"trap 'rm -f {lock}/watching {lock}/watch-end' EXIT",
        f"main=$({slots_pid})",
        f'python3 -c {q(WATCH_PROGRAM)} {q(seconds)} {q(max_5xx_percent)} "${{main:-0}}"'
        f" {lock}/watch-end -- {as_app('tail', '-n', '0', '-F', p.app_log)}",
    ])
