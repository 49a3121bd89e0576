"""wsgiship.shell: quoting, and scripts that stop at the first failure."""

from __future__ import annotations

import shlex

from fakes import HOSTILE, HOSTILE_TOUCH

from wsgiship import shell
from wsgiship.shell import sudo_bash


def test_q_quotes_for_posix_shells() -> None:
    assert shell.q("plain-word_1.2/x") == "plain-word_1.2/x"
    assert shell.q("") == "''"
    assert shell.q(42) == "42"
    assert shlex.split(shell.q(HOSTILE)) == [HOSTILE]
    assert shlex.split(shell.q("a\nb $(id) `id` \"q\"")) == ["a\nb $(id) `id` \"q\""]


def test_cmd_quotes_every_argument() -> None:
    line = shell.cmd("install", "-d", HOSTILE, "a b", 7)
    assert shlex.split(line) == ["install", "-d", HOSTILE, "a b", "7"]


def test_script_stops_at_the_first_failure_and_drops_empty_lines() -> None:
    text = shell.script(["echo a", "", "echo b"])
    assert text == shell.HEADER + "echo a\necho b\n"
    assert shell.HEADER.startswith("set -euo pipefail\n")


def test_script_really_stops_at_the_first_failure(sh) -> None:
    res = sh(shell.script(["echo one", "false", "echo two"]))
    assert res.returncode == 1
    assert res.stdout == "one\n"
    res = sh(shell.script(["false | true", "echo after"]))  # pipefail
    assert res.returncode == 1 and res.stdout == ""
    res = sh(shell.script(["echo $UNSET_VARIABLE_X"]))  # nounset
    assert res.returncode != 0 and "UNSET_VARIABLE_X" in res.stderr


def test_bash_is_one_quoted_command_line(sh) -> None:
    body = shell.script([f"printf '%s\\n' {shell.q(HOSTILE)}", "echo $0"])
    argv = shlex.split(shell.bash(body))
    assert argv == ["bash", "-c", body]
    res = sh(body)  # through /bin/sh, as a login shell would run it
    assert res.returncode == 0
    assert res.stdout.splitlines() == [HOSTILE, "bash"]


def test_sudo_reads_a_password_from_stdin_or_refuses_to_ask() -> None:
    assert shlex.split(sudo_bash("echo hi", with_password=False)) == [
        "sudo", "-n", "--", "bash", "-c", "echo hi"]
    assert shlex.split(sudo_bash(HOSTILE_TOUCH, with_password=True)) == [
        "sudo", "-S", "-p", "", "--", "bash", "-c", HOSTILE_TOUCH]
