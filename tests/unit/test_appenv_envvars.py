"""wsgiship.envvars: names and values as fab env / fab exec --env take them (checked, a value
never in a message), the KEY=VALUE line the loader reads back exactly (run through run_in, the
loader `fab exec` and hooks use, the same as wsgi.py's), shared/NAME, and the masked listing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from wsgiship import envvars
from wsgiship.commands.appenv import run_in
from wsgiship.errors import WsgishipError
from wsgiship.schema import LINE_BREAKS

SECRET = "tok-5e1f"  # in every value: never in an error


@pytest.mark.parametrize("key", ["A", "_x", "DATABASE_URL", "a1_B2"])
def test_a_variable_name_is_letters_digits_and_underscore(key: str) -> None:
    assert envvars.check_name(key, "--unset") == key


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B", "Ä", "A\n", "$(id)"])
def test_anything_else_is_not_a_name(key: str) -> None:
    with pytest.raises(WsgishipError, match="not a variable name"):
        envvars.check_name(key, "--unset")


@pytest.mark.parametrize("text, expected", [
    (f"K={SECRET}", ("K", SECRET)),
    ("K=", ("K", "")),
    (f"K=a=b {SECRET}", ("K", f"a=b {SECRET}")),      # only the first = splits
    (f"K= {SECRET} ", ("K", f" {SECRET} ")),           # kept as given
])
def test_an_assignment_keeps_the_value_whole(text: str, expected: tuple[str, str]) -> None:
    assert envvars.parse_assignment(text, "--set") == expected


def test_a_name_alone_takes_the_local_value_or_asks() -> None:
    assert envvars.parse_assignment("K", "--set", {"K": SECRET}) == ("K", SECRET)
    assert envvars.parse_assignment("K", "--set", {}, ask=lambda key: key + SECRET) == (
        "K", "K" + SECRET)
    with pytest.raises(WsgishipError, match="K is not set in your environment"):
        envvars.parse_assignment("K", "--env", {})


@pytest.mark.parametrize("text, words", [
    (f"BAD-NAME={SECRET}", "not a variable name"),
    (f"{SECRET}-value", "has no '='"),                  # a value without its name: not shown
    *[(f"K=a{ch}{SECRET}", "line break") for ch in LINE_BREAKS + "\0"],
])
def test_a_wrong_assignment_is_one_line_without_the_value(text: str, words: str) -> None:
    with pytest.raises(WsgishipError) as err:
        envvars.parse_assignment(text, "--set", {})
    message = str(err.value)
    assert words in message and SECRET not in message and "\n" not in message


def test_a_name_given_twice_is_refused() -> None:
    assert envvars.assignments(["A=1", "B"], "--env", {"B": "2"}) == {"A": "1", "B": "2"}
    with pytest.raises(WsgishipError, match="--env A: given twice"):
        envvars.assignments(["A=1", "A=2"], "--env")


HOSTILE_VALUES = ["plain", "", " ", "  padded  ", "'quoted'", '"dq"', "'", '"x', "x'", "a b",
                  "$HOME `id` $(id)", "#not a comment", "export X=1", "=", "ünï", "'mixed\"",
                  "\t tab \t", "\"'both'\""]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    venv = tmp_path / "venvs" / "k"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    r = tmp_path / "releases" / "r1"
    (r / ".wsgiship").mkdir(parents=True)
    (r / ".venv").symlink_to("../../venvs/k")
    return r


def test_every_value_reads_back_exactly_through_the_loader(release: Path, sh) -> None:
    values = {f"V{i}": v for i, v in enumerate(HOSTILE_VALUES)}
    (release / ".env").write_text(envvars.env_text(values))
    show = ["python", "-c", f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in"
                            f" {sorted(values)!r}}}))"]
    res = sh(run_in(str(release), show))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == values
    # a simple value stays as it is: only what the loader would change is quoted
    assert envvars.env_line("A", "x y") == "A=x y"
    assert envvars.env_line("A", " x") == "A=' x'"


@pytest.mark.parametrize("remote, name", [
    ("shared/.env", ".env"), ("shared/creds.json", "creds.json"),
    ("shared/media/k.json", "media/k.json"), ("shared/a b", "a b"),
])
def test_shared_name_is_a_path_inside_shared(remote: str, name: str) -> None:
    assert envvars.shared_name(remote) == name


@pytest.mark.parametrize("remote, words", [
    (".env", "give shared/NAME"), ("/srv/app/shared/x", "give shared/NAME"),
    ("shared/", "inside shared/"), ("shared/../x", "inside shared/"),
    ("shared/a/../../x", "inside shared/"), ("shared//etc/x", "inside shared/"),
    ("shared/./x", "inside shared/"), ("shared/x/", "inside shared/"),
    ("shared/a\nb", "inside shared/"), ("shared/log/x", "wsgiship's"),
    ("shared/run", "wsgiship's"),
])
def test_shared_name_refuses_ways_out_and_wsgiships_own(remote: str, words: str) -> None:
    with pytest.raises(WsgishipError, match=words):
        envvars.shared_name(remote)


def test_the_listing_masks_every_value_and_says_where_it_comes_from() -> None:
    lines = envvars.listing(
        shared=[("SECRET_KEY", 50), ("DEBUG", 1), ("EMPTY", 0)],
        settings={"GREETING": "hi", "DEBUG": "true", "NEW": SECRET, "CHANGED": "abc"},
        deployed={"GREETING": 2, "CHANGED": 2, "GONE": 4, "DEBUG": 4})
    assert lines == [
        "DEBUG=****       1 char    shared/.env",
        "EMPTY=****       empty     shared/.env",
        "SECRET_KEY=****  50 chars  shared/.env",
        "CHANGED=****     3 chars   hosts.yaml env; changed since the last deploy",
        "DEBUG=****       4 chars   hosts.yaml env; shared/.env's value wins",
        "GREETING=****    2 chars   hosts.yaml env",
        "NEW=****         8 chars   hosts.yaml env; not deployed yet",
        "GONE=****        4 chars   hosts.yaml env when deployed; gone from it: the next deploy "
        "drops it",
    ]
    assert not any(SECRET in line or "true" in line for line in lines)
    # nothing deployed: no comparison
    assert envvars.listing([], {"A": "x"}, None) == ["A=****  1 char  hosts.yaml env"]
    assert envvars.listing([], {}, None) == []
