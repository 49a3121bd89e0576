"""A real Debian bookworm server, with its own systemd, to deploy to over real SSH.

The base root filesystem is built once with debootstrap and cached. Each instance is an
overlayfs over that base, booted with ``/lib/systemd/systemd`` as PID 1 inside its own PID,
mount, UTS, IPC and cgroup namespaces. It shares the machine's network, so its sshd listens on
127.0.0.1 at a port of its own and nothing in it listens on port 80. Every mount of an instance
lives in its private mount namespace and vanishes when its systemd is killed.

Requires root. Library use::

    host = boot("web1", Path("/tmp/web1"))
    host.run("systemctl is-active nginx", user="deploy")
    host.stop()

Several at once, booted in parallel (each in ``base/NAME``, each its own SSH port)::

    hosts = boot_many(["web1", "web2", "web3"], Path("/tmp/fleet"))
    ...
    for host in hosts:
        host.stop()

Command line::

    python tests/testhost.py build
    python tests/testhost.py up NAME --state-dir DIR [--ssh-port PORT]
    python tests/testhost.py status --state-dir DIR
    python tests/testhost.py down --state-dir DIR

Inside an instance: users ``root``, ``deploy`` (passwordless sudo) and ``deploypw`` (sudo with
the password ``testpw``), all reached with the instance's client key; nginx, ssh, dbus and
journald run; supervisor is installed but disabled; the machine's CA bundle and a pip.conf that
uses it are in place so pip reaches the package index over TLS.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

BASE_PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,nginx-light,python3,python3-venv,python3-dev,"
    "build-essential,sudo,curl,rsync,ca-certificates,procps,supervisor,iproute2"
)
# Bump whenever the base's configuration below changes: it is part of the cache key.
RECIPE_VERSION = "1"
SUITE = "bookworm"
DEFAULT_CACHE_DIR = Path("/var/cache/wsgiship")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SSH_USERS = ("root", "deploy", "deploypw")
DEPLOYPW_PASSWORD = "testpw"
CONTAINER_NAME = "wsgiship"

# Units that slow the boot down or reach out to the network (globs over the base's units).
MASKED_UNITS = (
    "apt-daily*.timer",
    "apt-daily-upgrade*",
    "man-db.timer",
    "e2scrub*",
    "fstrim*",
    "systemd-networkd-wait-online*",
    "getty@tty1.service",
    "console-getty.service",
)

SSHD_BASE_CONFIG = """\
# wsgiship test host: key logins on the loopback address only.
# The port is set per instance in 10-testhost.conf.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
ListenAddress 127.0.0.1
"""

PIP_CONF = """\
[global]
cert = /etc/ssl/certs/ca-certificates.crt
disable-pip-version-check = 1
"""

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

log = logging.getLogger("testhost")
_THIS_FILE = Path(__file__).resolve()

# Console helpers started by this process, kept so they can be reaped.
_HELPERS: dict[int, subprocess.Popen[bytes]] = {}


class CommandError(subprocess.CalledProcessError):
    """A command run on a test host exited non-zero."""

    def __str__(self) -> str:
        text = super().__str__()
        for label, value in (("stdout", self.stdout), ("stderr", self.stderr)):
            if value:
                tail = "\n".join(str(value).rstrip().splitlines()[-20:])
                text += f"\n--- {label} ---\n{tail}"
        return text


# ---------------------------------------------------------------------------------------------
# Base root filesystem


def cache_dir_default() -> Path:
    return Path(os.environ.get("WSGISHIP_TESTHOST_CACHE") or DEFAULT_CACHE_DIR)


def base_name() -> str:
    digest = hashlib.sha256(f"{BASE_PACKAGES}\n{RECIPE_VERSION}".encode()).hexdigest()
    return f"{SUITE}-{digest[:12]}"


def build_base(cache_dir: Path | None = None) -> Path:
    """Build (once, cached) the base root filesystem; returns its path."""
    cache = (cache_dir or cache_dir_default()).absolute()
    base = cache / base_name()
    if base.is_dir():
        return base
    _require_root()
    cache.mkdir(parents=True, exist_ok=True)
    with _flock(cache / f".{base.name}.lock"):
        if base.is_dir():
            return base
        for stale in cache.glob(f".{base.name}.tmp-*"):
            _remove_tree(stale)
        tmp = cache / f".{base.name}.tmp-{os.getpid()}"
        build_log = cache / f"{base.name}.build.log"
        started = time.monotonic()
        log.warning("building the test host base in %s (takes a minute or two)", base)
        try:
            _debootstrap(tmp, build_log)
            _configure_base(tmp)
            os.rename(tmp, base)
        except BaseException:
            _remove_tree(tmp)
            raise
        log.warning("built %s in %.0f s", base, time.monotonic() - started)
    return base


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _debootstrap(target: Path, build_log: Path) -> None:
    if shutil.which("debootstrap") is None:
        _install_debootstrap()
    mirror = os.environ.get("WSGISHIP_DEBIAN_MIRROR") or DEFAULT_MIRROR
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        SUITE,
        str(target),
        mirror,
    ]
    with open(build_log, "w") as out:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_clean_env()
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"debootstrap failed (exit {proc.returncode}), see {build_log}\n" + _tail(build_log, 30)
        )


def _install_debootstrap() -> None:
    env = {**_clean_env(), "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "debootstrap"]
    if subprocess.run(install, capture_output=True, env=env).returncode == 0:
        return
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, check=False)
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or shutil.which("debootstrap") is None:
        raise RuntimeError(f"could not install debootstrap: {proc.stderr.strip()[-500:]}")


def _configure_base(root: Path) -> None:
    """Static configuration shared by every instance."""
    for user in ("deploy", "deploypw"):
        _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", user)
    _chroot(root, "chpasswd", input=f"deploypw:{DEPLOYPW_PASSWORD}\n")
    sudoers = {
        "deploy": "deploy ALL=(ALL) NOPASSWD:ALL\n",
        "deploypw": "deploypw ALL=(ALL) ALL\n",
    }
    for user, rule in sudoers.items():
        path = root / "etc/sudoers.d" / user
        path.write_text(rule)
        os.chmod(path, 0o440)
        _chroot(root, "visudo", "-c", "-q", "-f", f"/etc/sudoers.d/{user}")
    accounts = _passwd(root)
    for user in SSH_USERS:
        uid, gid, home = accounts[user]
        ssh_dir = root / home.lstrip("/") / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(ssh_dir, 0o700)
        os.chown(ssh_dir, uid, gid)

    _install_host_cas(root)
    (root / "etc/pip.conf").write_text(PIP_CONF)

    with contextlib.suppress(FileNotFoundError):
        (root / "etc/nginx/sites-enabled/default").unlink()

    (root / "etc/ssh/sshd_config.d/20-testhost-base.conf").write_text(SSHD_BASE_CONFIG)
    sshd_config = root / "etc/ssh/sshd_config"
    if "Include /etc/ssh/sshd_config.d/*.conf" not in sshd_config.read_text():
        raise RuntimeError("the base's sshd_config does not include sshd_config.d")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()

    _chroot(root, "systemctl", "--root=/", "--quiet", "mask", *_units_to_mask(root))
    _chroot(root, "systemctl", "--root=/", "--quiet", "disable", "supervisor.service")

    # Each instance writes its own machine-id, hostname, hosts and resolv.conf.
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    dbus_id.symlink_to("/etc/machine-id")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/default/locale").write_text("LANG=C.UTF-8\n")
    (root / "etc/wsgiship-testhost").write_text(f"recipe {RECIPE_VERSION}\npackages {BASE_PACKAGES}\n")
    _chroot(root, "apt-get", "clean")


def _units_to_mask(root: Path) -> list[str]:
    names: set[str] = set()
    for pattern in MASKED_UNITS:
        if "*" not in pattern:
            names.add(pattern)
            continue
        for unit_dir in ("usr/lib/systemd/system", "etc/systemd/system"):
            names.update(p.name for p in (root / unit_dir).glob(pattern) if "@." not in p.name)
    return sorted(names)


def _install_host_cas(root: Path) -> None:
    """Trust what the machine trusts: its extra CAs become local CAs of the base."""
    if not HOST_CA_BUNDLE.is_file():
        return
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    host_certs = PEM_RE.findall(HOST_CA_BUNDLE.read_text())
    known = {_pem_key(p) for p in PEM_RE.findall(bundle.read_text())} if bundle.exists() else set()
    extras = [pem for pem in host_certs if _pem_key(pem) not in known]
    local = root / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for index, pem in enumerate(extras):
        (local / f"wsgiship-host-{index}.crt").write_text(pem + "\n")
    if extras:
        _chroot(root, "update-ca-certificates")
    trusted = {_pem_key(p) for p in PEM_RE.findall(bundle.read_text())}
    if not all(_pem_key(pem) in trusted for pem in host_certs):
        shutil.copyfile(HOST_CA_BUNDLE, bundle)


def _pem_key(pem: str) -> str:
    return "".join(pem.split())


def _chroot(root: Path, *argv: str, input: str | None = None) -> str:
    proc = subprocess.run(
        ["chroot", str(root), *argv],
        input=input,
        capture_output=True,
        text=True,
        env={**_clean_env(), "DEBIAN_FRONTEND": "noninteractive"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"in {root}: {shlex.join(argv)} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-1000:]}"
        )
    return proc.stdout


def _passwd(root: Path) -> dict[str, tuple[int, int, str]]:
    accounts = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7:
            accounts[fields[0]] = (int(fields[2]), int(fields[3]), fields[5])
    return accounts


# ---------------------------------------------------------------------------------------------
# Instances


@dataclass
class TestHost:
    """A running instance, as recorded in ``state_dir/info.json``."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    state_dir: Path
    ssh_port: int
    key_path: Path
    known_hosts: Path
    pid: int
    host: str = "127.0.0.1"
    hostname: str = ""
    pid_start_time: int = 0
    console_pid: int = 0
    cgroup: str = ""
    base: str = ""
    started_at: float = 0.0

    def ssh_args(self, user: str = "root") -> list[str]:
        """The ssh command line (without the remote command) that reaches this host."""
        return [
            "ssh",
            "-F", "none",
            "-i", str(self.key_path),
            "-p", str(self.ssh_port),
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR",
            "-l", user,
            self.host,
        ]  # fmt: skip

    def run(
        self,
        command: str,
        user: str = "root",
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host over real SSH."""
        proc = subprocess.run(
            [*self.ssh_args(user), "--", command],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, f"{user}@{self.name}: {command}", proc.stdout, proc.stderr)
        return proc

    def alive(self) -> bool:
        return _is_instance_pid(self.pid, self.pid_start_time)

    def stop(self) -> None:
        """Kill the instance's systemd (only that PID) and clean up. Idempotent."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            if not _wait_gone(self.pid, self.pid_start_time, 30):
                raise RuntimeError(f"test host {self.name}: systemd (pid {self.pid}) did not exit")
        if self.console_pid and _is_console_helper(self.console_pid, self.state_dir):
            _wait_gone(self.console_pid, None, 10)
        _HELPERS.pop(self.console_pid, None)
        _cleanup(self.state_dir, self.cgroup)

    def info(self) -> dict[str, object]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bound_port(stack: contextlib.ExitStack) -> int:
    """A port below the kernel's ephemeral range, bound in `stack` until it closes: the
    kernel never gives it to an outgoing connection (a port from bind(0) is ephemeral, and
    any connection made meanwhile, an SSH check of another booting host, may take it)."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(20000, low) if low > 21000 else random.randrange(20000, 30000)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        stack.callback(sock.close)
        return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def find_free_port() -> int:
    return free_ports(1)[0]


# Ports handed out by free_ports() in this process, so two callers never get the same one.
_PORTS_LOCK = threading.Lock()
_PORTS_GIVEN: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, none handed out before by this function.

    Every candidate stays bound until all are picked, so the kernel cannot return one twice
    (``find_free_port`` called twice may: the port is free again once its socket closes).
    """
    with _PORTS_LOCK, contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count * 20 + 20):
            if len(ports) == count:
                break
            port = _bound_port(stack)
            if port not in _PORTS_GIVEN and port not in ports:
                ports.append(port)
        if len(ports) < count:
            raise RuntimeError(f"could not find {count} free ports on 127.0.0.1")
        _PORTS_GIVEN.update(ports)
        return ports


def load(state_dir: Path) -> TestHost | None:
    """Re-attach to the running instance recorded in state_dir (None if it is not running)."""
    host = _read_info(Path(state_dir).absolute())
    return host if host is not None and host.alive() else None


def boot(name: str, state_dir: Path, ssh_port: int | None = None, timeout: float = 60) -> TestHost:
    """Boot a fresh instance as an overlayfs over the base.

    Returns when sshd answers and ``systemctl is-system-running --wait`` says running or
    degraded. A running instance recorded in state_dir is stopped first.
    """
    _require_root()
    if not NAME_RE.match(name):
        raise ValueError(f"bad test host name {name!r}: use lowercase letters, digits and '-'")
    state_dir = Path(state_dir).absolute()
    if any(c in str(state_dir) for c in ",:\n"):
        raise ValueError(f"state dir {state_dir} must not contain ',' or ':'")
    for tool in ("unshare", "chroot", "mount", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed")
    state_dir.mkdir(parents=True, exist_ok=True)

    previous = _read_info(state_dir)
    if previous is not None:
        previous.stop()
    else:
        _cleanup(state_dir, "")
    base = build_base()

    if ssh_port is None:
        reuse = previous is not None and _port_free(previous.ssh_port)
        ssh_port = previous.ssh_port if previous is not None and reuse else find_free_port()
    elif not _port_free(ssh_port):
        raise RuntimeError(f"port {ssh_port} on 127.0.0.1 is already in use")
    hostname = name if name.startswith("wsgiship-") else f"wsgiship-{name}"
    key_path = state_dir / "id_ed25519"
    host_key = state_dir / "ssh_host_ed25519_key"
    for path, comment in ((key_path, "wsgiship-testhost"), (host_key, f"root@{hostname}")):
        if not path.exists() or not path.with_suffix(".pub").exists():
            _keygen(path, comment)
    known_hosts = state_dir / "known_hosts"
    host_pub = host_key.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{ssh_port} {host_pub[0]} {host_pub[1]}\n")

    upper, work, root = state_dir / "upper", state_dir / "work", state_dir / "root"
    for path in (upper, work, root):
        path.mkdir(mode=0o755)
    _populate_upper(base, upper, hostname, ssh_port, host_key, key_path.with_suffix(".pub"))
    cgroup = _make_cgroup(state_dir)

    console_log = state_dir / "console.log"
    script = _boot_script(base, upper, work, root, hostname)
    unshare = [
        "unshare", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--cgroup",
        "--propagation", "private", "sh", "-c", script,
    ]  # fmt: skip
    console_log.write_bytes(b"")
    with open(console_log, "ab") as out:
        helper = subprocess.Popen(
            [sys.executable, "-I", str(_THIS_FILE), "_console", str(console_log),
             str(cgroup), "--", *unshare],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=_clean_env(),
        )  # fmt: skip
    _HELPERS[helper.pid] = helper

    deadline = time.monotonic() + timeout
    instance = TestHost(
        name=name,
        state_dir=state_dir,
        ssh_port=ssh_port,
        key_path=key_path,
        known_hosts=known_hosts,
        pid=0,
        hostname=hostname,
        console_pid=helper.pid,
        cgroup=str(cgroup),
        base=str(base),
        started_at=time.time(),
    )
    try:
        instance.pid, instance.pid_start_time = _find_systemd(helper, deadline)
        (state_dir / "systemd.pid").write_text(f"{instance.pid}\n")
        _write_info(instance)
        _wait_ready(instance, deadline)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            if not instance.pid:
                _abort_boot(helper)
            instance.stop()
        if isinstance(exc, Exception):
            raise RuntimeError(
                f"test host {name} did not come up: {exc} (console log: {console_log})\n"
                + _tail(console_log, 40)
            ) from exc
        raise
    return instance


def boot_many(names: Sequence[str], base: Path, timeout: float = 120) -> list[TestHost]:
    """Boot one instance per name, in parallel threads; returns them in the order of ``names``.

    Each gets its own state dir ``base/NAME`` (so its own overlay dirs and cgroup) and its own
    SSH port (distinct, from ``free_ports``). The base root filesystem is built first, once. If
    any boot fails (or this is interrupted), the instances that did boot are stopped and the
    error names the failing one, with its boot log.
    """
    names = list(names)
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"test host names must be distinct, lowercase letters, digits, '-': {names}")
    base = Path(base).absolute()
    build_base()  # once, before the threads: each boot() then finds it built
    ports = free_ports(len(names))
    booted: list[TestHost | None] = [None] * len(names)
    failed: dict[str, BaseException] = {}

    def one(index: int) -> None:
        name = names[index]
        try:
            booted[index] = boot(name, base / name, _still_free(ports[index]), timeout)
        except BaseException as exc:  # recorded, raised below by the caller's thread
            failed[name] = exc

    threads = [threading.Thread(target=one, args=(i,), name=f"boot-{n}", daemon=True)
               for i, n in enumerate(names)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C: let each started boot end (bounded by its timeout), stop all
        for thread in threads:
            if thread.ident is not None:
                thread.join(timeout + 60)
        _stop_all([h for h in booted if h is not None])
        raise
    if failed:
        _stop_all([h for h in booted if h is not None])
        name = next(n for n in names if n in failed)
        others = [n for n in failed if n != name]
        also = f" (also failed: {', '.join(others)})" if others else ""
        raise RuntimeError(f"boot_many: {failed[name]}{also}") from failed[name]
    return [h for h in booted if h is not None]


def _still_free(port: int) -> int:
    """``port``, or a fresh one if something else on the machine took it since it was picked."""
    return port if _port_free(port) else free_ports(1)[0]


def _stop_all(hosts: Sequence[TestHost]) -> None:
    for host in hosts:
        with contextlib.suppress(Exception):
            host.stop()


def _boot_script(base: Path, upper: Path, work: Path, root: Path, hostname: str) -> str:
    q = shlex.quote
    r = q(str(root))
    overlay = f"lowerdir={base},upperdir={upper},workdir={work}"
    nodes = {"null": "1 3", "zero": "1 5", "full": "1 7", "random": "1 8", "urandom": "1 9",
             "tty": "5 0"}  # fmt: skip
    mknods = "\n".join(f"mknod -m 666 {r}/dev/{n} c {numbers}" for n, numbers in nodes.items())
    return f"""set -eu
mount -t overlay overlay -o {q(overlay)} {r}
hostname {q(hostname)}
mount --bind /sys {r}/sys
mount -o remount,bind,ro,nosuid,nodev,noexec {r}/sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 {r}/sys/fs/cgroup
mount -t proc -o nosuid,nodev,noexec proc {r}/proc
for p in sys sysrq-trigger; do
  if [ -e {r}/proc/$p ]; then
    mount --bind {r}/proc/$p {r}/proc/$p
    mount -o remount,bind,ro {r}/proc/$p
  fi
done
mount -t tmpfs -o mode=755,nosuid,size=64m tmpfs {r}/dev
{mknods}
mkdir {r}/dev/pts {r}/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts {r}/dev/pts
ln -s pts/ptmx {r}/dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {r}/dev/shm
ln -s /proc/self/fd {r}/dev/fd
ln -s /proc/self/fd/0 {r}/dev/stdin
ln -s /proc/self/fd/1 {r}/dev/stdout
ln -s /proc/self/fd/2 {r}/dev/stderr
touch {r}/dev/console
mount --bind "$TESTHOST_CONSOLE" {r}/dev/console
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs {r}/run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {r}/tmp
echo "testhost: starting systemd in {hostname}"
exec chroot {r} /usr/bin/env -i container={CONTAINER_NAME} \\
  /lib/systemd/systemd --system --log-target=console --show-status=no
"""


def _populate_upper(
    base: Path, upper: Path, hostname: str, port: int, host_key: Path, client_pub: Path
) -> None:
    """Per-instance files, written into the overlay's upper dir before it is mounted."""
    root_ids = (0, 0)
    put = _UpperWriter(base, upper)
    put.file("etc/ssh/sshd_config.d/10-testhost.conf", f"Port {port}\n", 0o644, root_ids)
    put.file("etc/ssh/ssh_host_ed25519_key", host_key.read_text(), 0o600, root_ids)
    host_pub = host_key.with_suffix(".pub").read_text()
    put.file("etc/ssh/ssh_host_ed25519_key.pub", host_pub, 0o644, root_ids)
    put.file("etc/hostname", f"{hostname}\n", 0o644, root_ids)
    put.file(
        "etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
        root_ids,
    )
    put.file("etc/machine-id", uuid.uuid4().hex + "\n", 0o444, root_ids)
    with contextlib.suppress(OSError):
        put.file("etc/resolv.conf", Path("/etc/resolv.conf").read_text(), 0o644, root_ids)
    accounts = _passwd(base)
    authorized = client_pub.read_text()
    for user in SSH_USERS:
        uid, gid, home = accounts[user]
        put.file(f"{home.lstrip('/')}/.ssh/authorized_keys", authorized, 0o600, (uid, gid))


class _UpperWriter:
    def __init__(self, base: Path, upper: Path) -> None:
        self.base = base
        self.upper = upper

    def file(self, rel: str, content: str, mode: int, owner: tuple[int, int]) -> None:
        self._parents(Path(rel).parent)
        path = self.upper / rel
        path.write_text(content)
        os.chown(path, *owner)
        os.chmod(path, mode)

    def _parents(self, rel: Path) -> None:
        current = Path()
        for part in rel.parts:
            current = current / part
            target = self.upper / current
            if target.is_dir():
                continue
            target.mkdir()
            lower = self.base / current
            if lower.is_dir() and not lower.is_symlink():
                st = lower.stat()
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, st.st_mode & 0o7777)
            else:
                os.chmod(target, 0o755)


def _keygen(path: Path, comment: str) -> None:
    for stale in (path, path.with_suffix(".pub")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _cgroup2_mount() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] == "cgroup2":
            return Path(left.split()[4])
    raise RuntimeError("no cgroup2 hierarchy is mounted (needed for the test host's systemd)")


def _cgroup_path(state_dir: Path) -> Path:
    """The instance's cgroup (v2): systemd inside sees it as its root, via a cgroup namespace."""
    own = "/"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            own = line[3:]
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return _cgroup2_mount() / own.lstrip("/") / f"wsgiship-testhost-{digest}"


def _make_cgroup(state_dir: Path) -> Path:
    path = _cgroup_path(state_dir)
    _remove_cgroup(str(path))
    path.mkdir()
    return path


def _remove_cgroup(cgroup: str) -> None:
    if not cgroup or not Path(cgroup).is_dir():
        return
    deadline = time.monotonic() + 10
    while True:
        try:
            for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
                os.rmdir(dirpath)
            return
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise RuntimeError(f"cannot remove cgroup {cgroup}: {exc}") from exc
            time.sleep(0.1)


def _find_systemd(helper: subprocess.Popen[bytes], deadline: float) -> tuple[int, int]:
    """The instance's systemd: the child of the unshare process that the helper started."""
    while time.monotonic() < deadline:
        if helper.poll() is not None:
            raise RuntimeError(f"the boot process exited (status {helper.returncode})")
        for unshare_pid in _children(helper.pid):
            for pid in _children(unshare_pid):
                if _cmdline(pid).split(b"\0")[0] == b"/lib/systemd/systemd":
                    start = _start_time(pid)
                    if start is not None:
                        return pid, start
        time.sleep(0.05)
    raise TimeoutError("systemd did not start")


def _abort_boot(helper: subprocess.Popen[bytes]) -> None:
    """Before its systemd is known: kill the unshare process this boot started (its child, the
    namespace's PID 1, gets SIGKILL through --kill-child)."""
    deadline = time.monotonic() + 10
    while helper.poll() is None and time.monotonic() < deadline:
        for pid in _children(helper.pid):
            if _cmdline(pid).startswith(b"unshare\0"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _wait_ready(host: TestHost, deadline: float) -> None:
    while True:
        if not host.alive():
            raise RuntimeError("systemd exited during boot")
        with contextlib.suppress(OSError):
            socket.create_connection((host.host, host.ssh_port), timeout=1).close()
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"sshd did not listen on port {host.ssh_port}")
        time.sleep(0.1)
    state = ""
    while time.monotonic() < deadline:
        remaining = max(deadline - time.monotonic(), 1)
        try:
            proc = host.run(
                f"timeout {int(remaining)} systemctl is-system-running --wait",
                check=False,
                timeout=remaining + 5,
            )
        except subprocess.TimeoutExpired:
            break
        state = proc.stdout.strip() or proc.stderr.strip()[-300:]
        if state in ("running", "degraded"):
            if state == "degraded":
                failed = host.run("systemctl --failed --no-legend --plain", check=False)
                log.warning("test host %s is degraded:\n%s", host.name, failed.stdout.strip())
            return
        if proc.returncode == 255:  # ssh itself failed: sshd not ready yet
            time.sleep(0.2)
            continue
        if state not in ("initializing", "starting"):
            break
    raise TimeoutError(f"systemd did not finish booting (state: {state or 'unknown'})")


def _cleanup(state_dir: Path, cgroup: str) -> None:
    """Remove what an instance leaves behind, keeping its keys and logs."""
    _remove_cgroup(cgroup)
    with contextlib.suppress(RuntimeError):
        _remove_cgroup(str(_cgroup_path(state_dir)))
    leftovers = [state_dir / name for name in ("upper", "work", "root")]
    markers = ("info.json", "console.log", "ssh_host_ed25519_key")
    if any(p.exists() for p in leftovers) and not any((state_dir / m).exists() for m in markers):
        raise RuntimeError(f"{state_dir} has upper/work/root but is not a test host state dir")
    for leftover in leftovers:
        _remove_tree(leftover)
    with contextlib.suppress(FileNotFoundError):
        (state_dir / "systemd.pid").unlink()


def _remove_tree(path: Path) -> None:
    """rm -rf, refusing to descend into anything that is mounted under path."""
    if not path.exists() and not path.is_symlink():
        return
    prefix = str(path.absolute())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            raise RuntimeError(f"refusing to delete {path}: {mount_point} is mounted")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _write_info(host: TestHost) -> None:
    target = host.state_dir / "info.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(host.info(), indent=2) + "\n")
    os.replace(tmp, target)


def _read_info(state_dir: Path) -> TestHost | None:
    try:
        data = json.loads((state_dir / "info.json").read_text())
        return TestHost(
            name=data["name"],
            state_dir=state_dir,
            ssh_port=int(data["ssh_port"]),
            key_path=Path(data["key_path"]),
            known_hosts=Path(data["known_hosts"]),
            pid=int(data["pid"]),
            host=data.get("host", "127.0.0.1"),
            hostname=data.get("hostname", ""),
            pid_start_time=int(data.get("pid_start_time", 0)),
            console_pid=int(data.get("console_pid", 0)),
            cgroup=data.get("cgroup", ""),
            base=data.get("base", ""),
            started_at=float(data.get("started_at", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------
# /proc helpers


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from 3 (state) on


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _is_instance_pid(pid: int, start_time: int) -> bool:
    if pid <= 1:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    if start_time and int(fields[19]) != start_time:
        return False
    return b"systemd" in _cmdline(pid)


def _is_console_helper(pid: int, state_dir: Path) -> bool:
    cmdline = _cmdline(pid)
    return b"_console" in cmdline and str(state_dir).encode() in cmdline


def _wait_gone(pid: int, start_time: int | None, timeout: float) -> bool:
    helper = _HELPERS.get(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if helper is not None and helper.poll() is not None:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):  # a zombie has finished exiting
            return True
        if start_time is not None and int(fields[19]) != start_time:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------------
# Small helpers


def _require_root() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the test host needs root (mounts, namespaces, debootstrap)")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _clean_env() -> dict[str, str]:
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _console_main(log_path: str, cgroup: str, argv: list[str]) -> int:
    """Run argv with a pseudo-terminal as its console; copy everything it prints to log_path.

    The instance's systemd (PID 1 inside) writes to /dev/console, which must be a terminal:
    the pty's slave side is bind-mounted there. This process lives as long as the instance.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    master, slave = os.openpty()
    tty.setraw(slave)
    env = {**_clean_env(), "TESTHOST_CONSOLE": os.ttyname(slave)}

    def enter_cgroup() -> None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write("0\n")

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=enter_cgroup,
    )
    os.close(slave)
    with open(log_path, "ab", buffering=0) as out:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break  # EIO: every process holding the console has exited
            if not data:
                break
            out.write(data.replace(b"\r\n", b"\n"))
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["_console"]:
        log_path, cgroup, sep, *command = args_list[1:]
        if sep != "--" or not command:
            return 2
        return _console_main(log_path, cgroup, command)

    parser = argparse.ArgumentParser(prog="testhost", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot a fresh instance and print its info.json")
    up.add_argument("name")
    up.add_argument("--state-dir", type=Path, required=True)
    up.add_argument("--ssh-port", type=int)
    up.add_argument("--timeout", type=float, default=60)
    for cmd, text in (("down", "stop the instance"), ("status", "exit 0 if it is running")):
        sub.add_parser(cmd, help=text).add_argument("--state-dir", type=Path, required=True)
    build = sub.add_parser("build", help="build (or find) the cached base root filesystem")
    build.add_argument("--cache-dir", type=Path)
    args = parser.parse_args(args_list)
    logging.basicConfig(level=logging.WARNING, format="testhost: %(message)s")

    try:
        if args.cmd == "build":
            print(build_base(args.cache_dir))
        elif args.cmd == "up":
            host = boot(args.name, args.state_dir, args.ssh_port, args.timeout)
            print(json.dumps(host.info(), indent=2))
        elif args.cmd == "down":
            state_dir = args.state_dir.absolute()
            recorded = _read_info(state_dir)
            if recorded is not None:
                recorded.stop()
            elif state_dir.is_dir():
                _cleanup(state_dir, "")
        elif args.cmd == "status":
            running = load(args.state_dir)
            if running is None:
                print(f"testhost: no test host running in {args.state_dir}", file=sys.stderr)
                return 1
            print(json.dumps(running.info(), indent=2))
    except KeyboardInterrupt:
        print("testhost: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the command line; details are in the log files
        message = str(exc).strip().splitlines()
        print(f"testhost: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
