"""The health checks, on the server: poll the new release's own uWSGI socket (speaking uwsgi, as
nginx does) before any user request can reach it, and the site through nginx after the switch,
until the release answers."""

from __future__ import annotations

from ..privilege import as_app
from ..shell import Raw, q, script

HEALTH_PROBE = r'''
import http.client, socket, sys, time
port, host, path, want, release, timeout = sys.argv[1:7]
start = time.monotonic()
deadline, wrong_since, hung = start + float(timeout), None, 0
where = (f"uwsgi://{port[5:]}{path}" if port.startswith("unix:")
         else f"http://{host}:{port}{path}")

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
               "HTTP_USER_AGENT": "wsgiship-health", "wsgi.url_scheme": "http"}
        body = b"".join(len(k.encode()).to_bytes(2, "little") + k.encode()
                        + len(v.encode()).to_bytes(2, "little") + v.encode()
                        for k, v in env.items())
        self.sock.sendall(b"\0" + len(body).to_bytes(2, "little") + b"\0" + body)
        resp = self.response_class(self.sock, method="GET")
        resp.begin()
        return resp

while True:
    status, seen, body = None, None, ""
    try:
        if port.startswith("unix:"):
            conn = Uwsgi(port[5:])
            resp = conn.ask(path, host, sys.argv[7] if len(sys.argv) > 7 else "80")
        else:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
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
    wrong_since = (wrong_since or time.monotonic()) if (new and status) else None
    now = time.monotonic()
    if now > deadline or (wrong_since and now - wrong_since > 5) or hung >= 2:
        answer = "no answer" if status is None else f"answered {status}"
        if seen not in (release, None):
            answer += f" from release {seen} (still the old workers)"
        print(f"status={status or 'none'}")
        print(f"release={seen or 'none'}")
        print(f"waited={now - start:.1f}")
        print(f"reason=health check failed: GET {where} {answer},"
              f" expected {want} from release {release} (waited {now - start:.1f}s)")
        print("\n".join(body.strip().splitlines()[:8]))
        sys.exit(1)
    time.sleep(0.2)
'''


def health_check(port: int, host: str, path: str, status: int, release: str, timeout: int) -> str:
    """Poll the site through nginx on the server until the new release answers `status`."""
    return script([
        " ".join(["python3", "-c", q(HEALTH_PROBE), q(port), q(host), q(path), q(status),
                  q(release), q(timeout)])
    ])


def slot_check(socket: Raw | str, http_port: int, host: str, path: str, status: int,
               release: str, timeout: int) -> str:
    """Poll a uWSGI instance on its own socket (as nginx would ask it, with the site's Host and
    port) until it answers `status` as `release`: no user request reaches it before. The socket
    is the app user's: run with app_user."""
    where = Raw('"unix:"' + (str(socket) if isinstance(socket, Raw) else q(socket)))
    return script([
        f"{as_app('python3', '-c', HEALTH_PROBE, where, host, path, status, release, timeout, http_port)}",
    ])
