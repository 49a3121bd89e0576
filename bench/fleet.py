"""Fleet deploys: a warm code-only redeploy to 1, 5 and 10 test hosts, side by side in one run.
Prints figures beside their targets; asserts nothing.

Boots the test hosts at once (testhost.boot_many), writes one hosts.yaml (aliases h1..hN, each
its own http_port, and the groups `one`, `five`, `ten`), deploys the app (a copy of
examples/hello) to all of them once (cold: timed apart), then alternates rounds of code-only
redeploys to each group (the app's text changed each time), timing the whole
`fab deploy -H GROUP`. While fab runs, its threads and its TCP connections to the hosts' SSH
ports are counted from /proc; its peak RSS comes from wait4. The hosts are stopped at the end,
on an error and on Ctrl-C.

    python bench/fleet.py [--rounds 3] [--hosts 1,5,10] [--comma-list]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from bench.common import FAB, ROOT, set_text, th  # noqa: E402

GROUP_NAMES = {1: "one", 2: "two", 3: "three", 5: "five", 10: "ten"}
TARGET_RATIO = 2.0  # the largest group's deploy: at most this many times one host's
TARGET_RSS_MB = 200.0  # fab's peak RSS at the largest group


def group_name(size: int) -> str:
    return GROUP_NAMES.get(size, f"n{size}")


@dataclass
class Run:
    """One `fab` command: how long it took, and what it used."""

    seconds: float
    code: int
    output: str
    rss_mb: float = 0.0
    threads: int = 0  # most threads of fab seen at once
    conns: int = 0  # most TCP connections from fab to the SSH ports seen at once
    conns_seen: set[tuple[int, int]] = field(default_factory=set)  # (local, remote) ports
    fab_cpu: float = 0.0  # fab's own CPU seconds (user + system)
    busy: float = 0.0  # the share of this machine's CPUs busy meanwhile (all test hosts, fab)


def cpu_busy() -> tuple[float, float]:
    """This machine's (busy, total) CPU seconds so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


class Watch(threading.Thread):
    """Samples a running fab from /proc: its threads and its TCP connections to `ports`."""

    def __init__(self, pid: int, ports: set[int], run: Run) -> None:
        super().__init__(daemon=True)
        self.pid, self.ports, self.run_, self.done = pid, ports, run, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(0.05)

    def sample(self) -> None:
        proc = Path(f"/proc/{self.pid}")
        try:
            status = (proc / "status").read_text()
            inodes = set()
            for fd in os.listdir(proc / "fd"):
                link = os.readlink(proc / "fd" / fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
            tables = [(proc / "net" / t).read_text() for t in ("tcp", "tcp6")]
        except OSError:
            return  # exited between two reads
        for line in status.splitlines():
            if line.startswith("Threads:"):
                self.run_.threads = max(self.run_.threads, int(line.split()[1]))
        now = set()
        for table in tables:
            for row in table.splitlines()[1:]:
                cols = row.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                rport = int(remote.rsplit(":", 1)[1], 16)
                if inode in inodes and rport in self.ports:
                    now.add((int(local.rsplit(":", 1)[1], 16), rport))
        self.run_.conns = max(self.run_.conns, len(now))
        self.run_.conns_seen |= now


def run_fab(args: list[str], env: dict, ssh_ports: set[int], timeout: float) -> Run:
    """`fab ARGS`, timed whole, watched while it runs; killed after `timeout` seconds."""
    with tempfile.TemporaryFile() as out:
        t0, (busy0, total0) = time.monotonic(), cpu_busy()
        proc = subprocess.Popen([FAB, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        run = Run(0.0, -1, "")
        watch = Watch(proc.pid, ssh_ports, run)
        watch.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            killer.cancel()
            watch.done.set()
            watch.join()
        run.seconds = time.monotonic() - t0
        busy1, total1 = cpu_busy()
        run.busy = (busy1 - busy0) / max(total1 - total0, 1e-9)
        run.code = proc.returncode = os.waitstatus_to_exitcode(status)
        run.rss_mb = usage.ru_maxrss / 1024
        run.fab_cpu = usage.ru_utime + usage.ru_stime
        out.seek(0)
        run.output = out.read().decode("utf-8", "replace")
    return run


class Fleet:
    """N test hosts, one app, one hosts.yaml with a group per size."""

    def __init__(self, hosts: list[th.TestHost], work: Path, sizes: list[int],
                 comma_list: bool) -> None:
        self.hosts, self.work, self.sizes, self.comma_list = hosts, work, sizes, comma_list
        self.app_dir = work / "fleet"
        shutil.copytree(ROOT / "examples" / "hello", self.app_dir)
        self.http_ports = th.free_ports(len(hosts))
        self.ssh_ports = {h.ssh_port for h in hosts}
        self.hosts_file = work / "hosts.yaml"
        self.env = {**os.environ, "WSGISHIP_HOSTS": str(self.hosts_file)}
        self.write()
        if not comma_list and not self.knows_groups():
            print("this wsgiship rejects `groups:` in hosts.yaml: deploying with -H h1,h2,... "
                  "(today's path, one host after another) instead", flush=True)
            self.comma_list = True
            self.write()

    def knows_groups(self) -> bool:
        """Whether this wsgiship's loader takes the hosts.yaml with its `groups:`."""
        from wsgiship import config
        from wsgiship.errors import WsgishipError

        try:
            config.load(self.hosts_file)
        except WsgishipError as exc:
            if "groups" in str(exc):
                return False
            raise
        return True

    def aliases(self, size: int) -> list[str]:
        return [f"h{i + 1}" for i in range(size)]

    def write(self) -> None:
        data: dict = {
            "app": {"name": "fleet", "source": str(self.app_dir), "wsgi": "hello:app",
                    "server_name": "localhost", "processes": 2, "threads": 2},
            "hosts": {
                alias: {"host": h.host, "port": h.ssh_port, "user": "deploy",
                        "identity": str(h.key_path), "known_hosts": str(h.known_hosts),
                        "http_port": port}
                for alias, h, port in zip(self.aliases(len(self.hosts)), self.hosts,
                                          self.http_ports, strict=True)},
        }
        if not self.comma_list:
            data["groups"] = {group_name(n): self.aliases(n) for n in self.sizes}
        self.hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def target(self, size: int) -> str:
        """What -H names: the group, or (today's fallback) the comma list of its aliases."""
        return ",".join(self.aliases(size)) if self.comma_list else group_name(size)

    def deploy(self, size: int, timeout: float) -> Run:
        run = run_fab(["deploy", "-H", self.target(size)], self.env, self.ssh_ports, timeout)
        if run.code != 0:
            hint = ("" if self.comma_list or "groups" not in run.output else
                    "\n(this wsgiship does not know `groups:` yet: run with --comma-list)")
            raise SystemExit(f"fab deploy -H {self.target(size)} failed (exit {run.code}):\n"
                             f"{run.output[-4000:]}{hint}")
        return run

    def serving(self, size: int) -> str:
        """The page the group's last host serves (a check that the deploy took)."""
        port = self.http_ports[size - 1]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": "localhost"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.read().decode()
        except OSError as exc:
            return f"<{exc}>"


def rounds(fleet: Fleet, count: int, deadline: float, timeout: float) -> dict[int, list[Run]]:
    """Alternating rounds (the order rotated each round); stops early at the deadline."""
    runs: dict[int, list[Run]] = {n: [] for n in fleet.sizes}
    for r in range(count):
        order = fleet.sizes[r % len(fleet.sizes):] + fleet.sizes[:r % len(fleet.sizes)]
        for size in order:
            worst = max((run.seconds for run in runs[size]), default=timeout / 4)
            if r and time.monotonic() + worst > deadline:
                print(f"  (time budget spent: round {r + 1} not finished)")
                return runs
            text = f"fleet round {r + 1} to {size}"
            set_text(fleet.app_dir, text)
            run = fleet.deploy(size, timeout)
            runs[size].append(run)
            served = fleet.serving(size)
            note = "" if served == text else f"  (h{size} serves {served[:60]!r})"
            print(f"  round {r + 1}: {size:>2} hosts {run.seconds:6.2f} s{note}", flush=True)
    return runs


def report(fleet: Fleet, runs: dict[int, list[Run]]) -> None:
    mode = "comma list, today's serial path" if fleet.comma_list else "groups"
    print(f"\nwarm code-only redeploy, whole `fab deploy -H <target>` ({mode}; medians):")
    print(f"{'hosts':>5}  {'group':<8} {'median s':>8}  {'ratio':>6}  {'peak RSS MB':>11}  "
          f"{'threads':>7}  {'SSH conns at once/seen':>22}  {'fab CPU s':>9}  "
          f"{'CPUs busy':>9}  runs (s)")
    base = statistics.median(r.seconds for r in runs[fleet.sizes[0]]) if runs[fleet.sizes[0]] \
        else 0.0
    for size in fleet.sizes:
        got = runs[size]
        if not got:
            print(f"{size:>5}  (no run)")
            continue
        med = statistics.median(r.seconds for r in got)
        ratio = med / base if base else 0.0
        print(f"{size:>5}  {group_name(size):<8} {med:8.2f}  {ratio:5.2f}x  "
              f"{max(r.rss_mb for r in got):11.0f}  {max(r.threads for r in got):7d}  "
              f"{max(r.conns for r in got):>10d}/{max(len(r.conns_seen) for r in got):<11d}  "
              f"{statistics.median(r.fab_cpu for r in got):9.2f}  "
              f"{statistics.median(r.busy for r in got):8.0%}  "
              + ", ".join(f"{r.seconds:.2f}" for r in got))
    big, small = fleet.sizes[-1], fleet.sizes[0]
    if runs[big] and runs[small] and big != small:
        ratio = statistics.median(r.seconds for r in runs[big]) / base
        rss = max(r.rss_mb for r in runs[big])
        one = "one host" if small == 1 else f"{small} hosts"
        print(f"target: {big} hosts <= {TARGET_RATIO:g}x {one}: {ratio:.2f}x "
              f"({'met' if ratio <= TARGET_RATIO else 'not met'})")
        print(f"target: fab peak RSS <= {TARGET_RSS_MB:g} MB at {big} hosts: {rss:.0f} MB "
              f"({'met' if rss <= TARGET_RSS_MB else 'not met'})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/fleet.py",
        description="Warm code-only redeploys to groups of 1, 5 and 10 test hosts, side by side "
                    "(medians, ratio to the smallest group, fab's peak RSS, threads and SSH "
                    "connections). Prints figures; asserts nothing.")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of redeploys, each to every group in turn (default: 3)")
    ap.add_argument("--hosts", default="1,5,10",
                    help="group sizes, comma-separated; as many test hosts as the largest are "
                         "booted (default: 1,5,10)")
    ap.add_argument("--comma-list", action="store_true",
                    help="no `groups:` in hosts.yaml: deploy with -H h1,h2,... instead (chosen "
                         "by itself, with a note, when this wsgiship's loader rejects groups)")
    ap.add_argument("--max-minutes", type=float, default=10.0,
                    help="time budget of the whole run, boots included: no new round is "
                         "started past it (default: 10)")
    ap.add_argument("--boot-timeout", type=float, default=180.0,
                    help="seconds each test host may take to boot (default: 180)")
    args = ap.parse_args(argv)
    try:
        args.sizes = sorted({int(n) for n in args.hosts.split(",") if n.strip()})
    except ValueError:
        ap.error(f"--hosts {args.hosts!r}: give host counts such as 1,5,10")
    if not args.sizes or args.sizes[0] < 1 or args.sizes[-1] > 40:
        ap.error(f"--hosts {args.hosts!r}: counts from 1 to 40")
    if args.rounds < 1:
        ap.error("--rounds: at least 1")
    return args


def bench(args: argparse.Namespace, work: Path, hosts: list[th.TestHost], started: float) -> None:
    fleet = Fleet(hosts, work, args.sizes, args.comma_list)
    deadline = started + args.max_minutes * 60
    timeout = max(120.0, deadline - time.monotonic())
    cold = fleet.deploy(args.sizes[-1], timeout)
    print(f"cold first deploy to all {len(hosts)} (not in the table): {cold.seconds:.1f} s, "
          f"fab peak RSS {cold.rss_mb:.0f} MB, {cold.threads} threads, "
          f"{cold.conns} SSH connections at once", flush=True)
    runs = rounds(fleet, args.rounds, deadline, max(60.0, timeout / 2))
    report(fleet, runs)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the hosts on a kill too
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background (`&`)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wsgiship-fleet-"))
    hosts: list[th.TestHost] = []
    try:
        count = args.sizes[-1]
        hosts = th.boot_many([f"fleet{i + 1}" for i in range(count)], work / "hosts",
                             timeout=args.boot_timeout)
        print(f"booted {count} test hosts in {time.monotonic() - started:.1f} s", flush=True)
        bench(args, work, hosts, started)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the test hosts", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave hosts
        for host in hosts:
            try:
                host.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop test host {host.name}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
