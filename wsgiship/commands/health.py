"""The health check: poll the site through nginx, on the server, until the new release answers."""

from __future__ import annotations

from ..shell import q, script

HEALTH_PROBE = r'''
import http.client, socket, sys, time
port, host, path, want, release, timeout = sys.argv[1:7]
start = time.monotonic()
deadline, wrong_since, hung = start + float(timeout), None, 0
while True:
    status, seen, body = None, None, ""
    try:
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
        print(f"reason=health check failed: GET http://{host}:{port}{path} {answer},"
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
