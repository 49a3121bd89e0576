"""A bounded HTTP load on loopback: N connections for at most T seconds / R requests.

Counts every request: status, transport errors, latency, and the response bodies in order, so a
deploy under load can be judged (failed requests, worst latency, old -> new switch).

Like a browser (RFC 9112 section 9.3.1), a GET sent on a reused keep-alive connection that the
server closed before answering a single byte is sent again once on a new connection: nginx
closes idle keep-alive connections when it reloads, and a request racing that close was never
processed. Such retries are counted (`retried`), never hidden in `served`; any other error, or
one on a new connection, is a failed request.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

# a reused connection closed before any byte of the answer: the request was never processed
UNANSWERED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Sample:
    start: float
    latency: float
    status: int | None     # None: connection error or timeout
    body: str
    release: str
    retried: bool = False  # sent again after its reused connection closed unanswered


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)

    @property
    def served(self) -> int:
        return sum(1 for s in self.samples if s.status is not None and s.status < 500)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status is None or s.status >= 500]

    def percentile(self, q: float, since: float = 0.0, until: float = float("inf")) -> float:
        lat = sorted(s.latency for s in self.samples if since <= s.start <= until)
        if not lat:
            return 0.0
        return lat[min(len(lat) - 1, int(q / 100 * len(lat)))]

    def max_latency(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((s.latency for s in self.samples if since <= s.start <= until), default=0.0)

    def bodies(self) -> list[str]:
        """Distinct bodies in the order they first appeared."""
        seen: list[str] = []
        for s in sorted(self.samples, key=lambda s: s.start):
            if s.status == 200 and s.body not in seen:
                seen.append(s.body)
        return seen

    @property
    def retried(self) -> int:
        return sum(1 for s in self.samples if s.retried)

    def summary(self, since: float = 0.0, until: float = float("inf")) -> str:
        window = LoadResult([s for s in self.samples if since <= s.start <= until])
        return (f"requests {len(window.samples)}, served {window.served}, "
                f"failed {len(window.failed)}, retried {window.retried}, "
                f"p50 {self.percentile(50, since, until) * 1000:.1f} ms, "
                f"p99 {self.percentile(99, since, until) * 1000:.1f} ms, "
                f"max {self.max_latency(since, until) * 1000:.1f} ms")


class Load:
    """Run in the background: `with Load(port) as load: ...deploy...`; then load.result."""

    def __init__(self, port: int, path: str = "/", host: str = "localhost", connections: int = 4,
                 max_seconds: float = 60.0, max_requests: int = 200_000, timeout: float = 10.0) -> None:
        self.port, self.path, self.host = port, path, host
        self.connections, self.max_seconds, self.max_requests = connections, max_seconds, max_requests
        self.timeout = timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _worker(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.result.samples) >= self.max_requests:
                    return
            t0, retried = time.monotonic(), False
            while True:
                reused, answered = conn is not None, False
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                          timeout=self.timeout)
                    conn.request("GET", self.path, headers={"Host": self.host})
                    resp = conn.getresponse()
                    answered = True
                    body = resp.read().decode("utf-8", "replace")
                    sample = Sample(t0, time.monotonic() - t0, resp.status, body,
                                    resp.getheader("X-Wsgiship-Release") or "", retried)
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    if conn is not None:
                        conn.close()
                    conn = None
                    if reused and not (retried or answered) and isinstance(exc, UNANSWERED):
                        retried = True
                        continue
                    sample = Sample(t0, time.monotonic() - t0, None,
                                    f"{type(exc).__name__}: {exc}", "", retried)
                break
            with self._lock:
                self.result.samples.append(sample)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for _ in range(self.connections):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
