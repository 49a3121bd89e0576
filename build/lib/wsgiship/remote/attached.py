"""A command attached to the local terminal: output streamed, stdin passed on (exec)."""

from __future__ import annotations

import codecs
import os
import select
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

import invoke
import paramiko
from fabric.runners import Remote as FabricRemoteRunner

if TYPE_CHECKING:
    from . import Remote



class Utf8Runner(FabricRemoteRunner):
    """Fabric's remote runner, decoding output incrementally (a character cut in two by a read
    is not replaced), and passing piped stdin on as bytes (Fabric reads it a character at a
    time through the locale's codec: binary data breaks, and a decoding error hangs the run)."""

    def read_our_stdin(self, input_: Any) -> bytes | str | None:
        try:
            fd = input_.fileno()
        except (AttributeError, ValueError, OSError):
            return super().read_our_stdin(input_)
        if self.using_pty or os.isatty(fd):
            return super().read_our_stdin(input_)
        ready, _, _ = select.select([fd], [], [], 0.1)
        return os.read(fd, 65536) if ready else None  # b"": end of input

    def write_proc_stdin(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            self._write_proc_stdin(data)
        else:
            super().write_proc_stdin(data)

    def read_proc_output(self, reader: Callable[[int], bytes]) -> Iterable[str]:
        decoder = codecs.getincrementaldecoder(self.encoding or "utf-8")("replace")
        while True:
            data = reader(self.read_chunk_size)
            if not data:
                break
            text = decoder.decode(data)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text


def run_attached(remote: Remote, command: str, *, sudo_user: str | None = None,
                 interactive: bool, stdin: Any, out: TextIO | None = None) -> int:
    """Run a command line (through `sudo -u sudo_user` when given), its output streamed to
    ours (or `out`), our stdin passed on (a terminal when `interactive`); its exit code."""
    conn = remote.conn
    conn.config.runners.remote = Utf8Runner
    opts: dict[str, Any] = dict(warn=True, hide=False, pty=interactive,
                                in_stream=stdin if stdin is not None else False)
    if out is not None:
        opts.update(out_stream=out, err_stream=out)
    try:
        if sudo_user is None:
            result = conn.run(command, **opts)
        else:
            result = conn.sudo(command, user=sudo_user, **opts)
    except invoke.exceptions.AuthFailure:
        raise remote.error(f"sudo asked {remote.user} for a password (to run as {sudo_user});"
                           f" run with --prompt-for-sudo-password") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise remote.lost(str(exc)) from None
    return int(result.exited if result.exited is not None else 255)
