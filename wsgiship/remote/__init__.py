"""The only package that touches SSH. Here: connect with verified host keys, run scripts, upload.
`stream.py`: a script's output line by line as it comes; `attached.py`: a command attached to
the local terminal. Every error raised carries the host (`error.host`)."""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass

import invoke
import paramiko
from fabric import Config, Connection

from ..config import Host
from ..errors import ConnectionLost, RemoteError, WsgishipError
from ..shell import bash, q


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def facts(self) -> dict[str, str]:
        """key=value lines of stdout."""
        out = {}
        for line in self.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.isidentifier():
                out[key] = value
        return out

    @property
    def output(self) -> str:
        return (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()


def _forget_hint(host: str, port: int) -> str:
    """ssh-keygen -R names a host on port 22 plainly, others as [host]:port."""
    return f"ssh-keygen -R {host}" if port == 22 else f"ssh-keygen -R '[{host}]:{port}'"


def _trust_hint(host: Host, port: int) -> str:
    where = f"-p {port} " if port != 22 else ""
    target = host.known_hosts or "~/.ssh/known_hosts"
    return (f"check the key with the server's admin, then: "
            f"ssh-keyscan {where}{host.host} >> {target}")


class Remote:
    """Runs scripts on one host; privileged ones through sudo unless the login user is root."""

    def __init__(self, host: Host, config: Config | None = None,
                 connect_kwargs: dict | None = None) -> None:
        self.host = host
        self.config = config or Config()
        self.connect_kwargs = dict(connect_kwargs or {})
        if host.identity:
            self.connect_kwargs["key_filename"] = [str(host.identity)]
        if host.known_hosts and not host.known_hosts.exists():
            raise WsgishipError(f"hosts.{host.alias}.known_hosts: {host.known_hosts} not found")
        self.conn = self._connection()

    def _connection(self) -> Connection:
        host = self.host
        conn = Connection(
            host.host, user=host.user, port=host.port, config=self.config,
            connect_timeout=host.connect_timeout, connect_kwargs=dict(self.connect_kwargs),
            # ssh_config's ForwardAgent does not decide: the app must not reach your agent
            forward_agent=host.forward_agent,
        )
        # Fabric accepts any host key by default, gateways (ProxyJump) too; we verify every hop
        # against known_hosts: the host's own file when hosts.yaml names one (it replaces
        # ~/.ssh/known_hosts, as OpenSSH's UserKnownHostsFile does), else the user's.
        hop: object = conn
        while isinstance(hop, Connection):
            hop.client.set_missing_host_key_policy(paramiko.RejectPolicy())
            if host.known_hosts:
                hop.client.load_host_keys(str(host.known_hosts))
            else:
                hop.client.load_system_host_keys()
            hop = hop.gateway
        return conn

    def reconnect(self) -> None:
        """A fresh connection, e.g. to clean up after the old one was cut."""
        self.close()
        self.conn = self._connection()
        self.open()

    @property
    def label(self) -> str:
        return self.host.alias

    def error(self, message: str, detail: str = "", *,
              kind: type[WsgishipError] | None = None) -> WsgishipError:
        """An error about this host: a RemoteError when there is remote output to show."""
        kind = kind or (RemoteError if detail else WsgishipError)
        if issubclass(kind, RemoteError):
            return kind(message, detail, host=self.label)
        return kind(message, host=self.label)

    def lost(self, why: str = "") -> ConnectionLost:
        return ConnectionLost("connection lost" + (f" {why}" if why.startswith("during")
                                                   else f": {why}" if why else ""),
                              host=self.label)

    @property
    def user(self) -> str:
        return self.conn.user

    def open(self) -> None:
        host, port = self.conn.host, self.conn.port
        try:
            self.conn.open()
        except paramiko.BadHostKeyException:
            raise self.error(
                f"the host key of {host}:{port} does NOT match known_hosts — the "
                f"server was reinstalled or someone is in between. If the change is expected, "
                f"remove the old key ({_forget_hint(host, port)}) and "
                f"{_trust_hint(self.host, port)}"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise self.error(
                    f"unknown host key for {host}:{port}; {_trust_hint(self.host, port)}"
                ) from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise self.error(
                    f"SSH login as {self.user}@{host}:{port} refused ({exc}); check "
                    f"hosts.yaml user/identity or your ssh-agent"
                ) from None
            raise self.error(f"SSH to {host}:{port} failed: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise self.error(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        transport = self.conn.transport
        if transport is not None:
            transport.set_keepalive(15)

    def close(self) -> None:
        """Close; a connection already cut may fail to say goodbye, which is fine."""
        try:
            self.conn.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    @property
    def whole_script_sudo(self) -> bool:
        """With a sudo password, a privileged script runs whole under one `sudo` (Fabric answers
        the prompt once); otherwise each root command inside it is prefixed with `sudo -n`, so a
        deploy user needs sudo only for the exact commands that `fab setup` allows."""
        return self.user != "root" and self.config.sudo.password is not None

    @property
    def sudo_prefix(self) -> str:
        return "" if self.user == "root" or self.whole_script_sudo else "sudo -n"

    def as_app_prefix(self, app_user: str, as_root: bool) -> str:
        """How a script running as the login user (or as root) runs a command as the app."""
        if as_root:
            return "" if app_user == "root" else f"runuser -u {q(app_user)} --"
        return "" if app_user == self.user else f"sudo -n -u {q(app_user)} --"

    def prefixed(self, body: str, priv: bool, app_user: str | None, as_root: bool) -> str:
        """The script with its $SUDO and $AS_APP set (see run), for a script run as root
        (`as_root`) or as the login user."""
        if app_user is not None:
            body = f"AS_APP={q(self.as_app_prefix(app_user, as_root))}\n" + body
        if priv:
            body = f"SUDO={q(self.sudo_prefix)}\n" + body
        return body

    @property
    def jobs_as_root(self) -> bool:
        """A server-side job (commands/job) runs as root when the login user is root or has a
        sudo password (nothing could answer sudo for it later); else as the login user."""
        return self.user == "root" or self.whole_script_sudo

    @property
    def as_login(self) -> str:
        """In a job run as root for another login user: the prefix that runs a command as it."""
        return f"runuser -u {q(self.user)} --" if self.jobs_as_root and self.user != "root" else ""

    def job_body(self, body: str, *, priv: bool = False, app_user: str | None = None) -> str:
        """A script as a step of a job runs it: as `run` would (its $SUDO, $AS_APP); one that
        is neither privileged nor the app's runs as the login user, even in a job run as root."""
        body = self.prefixed(body, priv, app_user, self.jobs_as_root)
        if self.as_login and not priv and app_user is None:
            body = f"exec {self.as_login} bash -c {q(body)}\n"
        return body

    def run(self, body: str, *, priv: bool = False, root: bool = False, check: bool = True,
            what: str = "", timeout: int | None = None, app_user: str | None = None) -> Result:
        """Run a bash script. A privileged one gets $SUDO: empty when already root, else
        `sudo -n` to put before each command that needs root. `root`: all of it as root.
        With `app_user`, the script gets $AS_APP to put before a command run as the app."""
        # with a sudo password, `sudo -n -u APP` would ask for it: such a script runs whole
        # under the one sudo Fabric answers, and switches to the app with runuser
        as_other = app_user is not None and app_user != self.user
        via_sudo = ((priv or as_other) and self.whole_script_sudo) or (root and self.user != "root")
        command = bash(self.prefixed(body, priv, app_user, self.user == "root" or via_sudo))
        opts = dict(hide=True, warn=True, in_stream=False, timeout=timeout)
        try:
            if via_sudo:
                res = self.conn.sudo(command, **opts)
            else:
                res = self.conn.run(command, **opts)
        except invoke.exceptions.AuthFailure:
            raise self.error(
                f"sudo refused the password for {self.user}; check it, or allow "
                f"NOPASSWD for the deploy commands (fab setup)"
            ) from None
        except invoke.exceptions.CommandTimedOut:
            raise self.error(f"{what or 'remote command'} timed out", kind=RemoteError) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self.lost(f"during {what or 'a command'}: {exc}") from None
        result = Result(res.exited, res.stdout, res.stderr)
        if check and not result.ok:
            raise self.failure(result, what)
        return result

    def failure(self, result: Result, what: str = "") -> WsgishipError:
        """The error for a script that failed: sudo's refusals and a full disk said plainly."""
        if "sudo: a password is required" in result.stderr:
            return self.error(
                f"sudo asked {self.user} for a password during "
                f"{what or 'a privileged step'}; run with --prompt-for-sudo-password, or "
                f"allow NOPASSWD for the deploy commands (fab setup)")
        if "is not allowed to execute" in result.stderr or "not allowed to run" in result.stderr:
            return self.error(
                f"sudo does not allow {self.user} a command "
                f"{what or 'a step'} needs; run `fab setup -H {self.label}` as root to "
                f"install the sudo rules", result.output)
        full = " (disk full on the server: free some space)" if (
            "No space left on device" in result.output) else ""
        return self.error(f"{what or 'remote command'} failed (exit {result.code}){full}",
                          result.output)

    def feed(self, body: str, data: bytes, *, priv: bool = False, app_user: str | None = None,
             what: str = "", timeout: float = 120) -> Result:
        """Run a script as `run` does ($SUDO, $AS_APP), with `data` on its stdin: secrets that
        must never be on a command line (`ps` on the server shows those). With a sudo password
        the whole script runs under one `sudo -S`, the password sent first (stream.fed)."""
        code, out, err = fed(self, body, data, priv=priv, app_user=app_user, what=what,
                             timeout=timeout)
        return Result(code, out, err)

    def put(self, data: bytes, remote_path: str, what: str = "upload") -> None:
        """Upload bytes to an absolute remote path."""
        try:
            self.conn.put(io.BytesIO(data), remote=remote_path)
        except OSError as exc:
            transport = self.conn.transport
            if transport is None or not transport.is_active():
                raise self.lost(f"during {what}: {exc}") from None
            # SFTP reports a full disk as a generic failure; say what it most likely is.
            raise self.error(f"{what} to {remote_path} failed: {exc}"
                             " (is the disk full? df -h on the server)", kind=RemoteError) from None
        except (EOFError, paramiko.SSHException) as exc:
            raise self.lost(f"during {what}: {exc}") from None


def local_identity() -> str:
    """user@machine of the person deploying, for the lock and the deploy log."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


from .attached import run_attached  # noqa: E402
from .stream import Stream, check_alive, fed, sudo_refusal  # noqa: E402

__all__ = ["Remote", "Result", "Stream", "check_alive", "local_identity", "run_attached",
           "sudo_refusal"]
