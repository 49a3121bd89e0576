"""hosts.yaml `groups:`: list and mapping forms, groups of groups, Inventory.expand/group_for,
every error path, and schema.count_of (a batch / max_fail value as a number of hosts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wsgiship import config
from wsgiship.errors import ConfigError
from wsgiship.groups import Group
from wsgiship.schema import count_of

BASE = """\
app: {name: shop, wsgi: "shop:app"}
hosts:
  web1: {host: 10.0.0.1}
  web2: {host: 10.0.0.2}
  web3: {host: 10.0.0.3}
  web4: {host: 10.0.0.4}
  stage1: {host: 10.0.0.9}
"""

GROUPS = BASE + """\
groups:
  production: [web1, web2, web3]
  everything: [production, stage1, web2]
  canary:
    hosts: [web1, web2]
    batch: 1
    max_fail: "10%"
    on_failure: rollback
  wide:
    hosts: [everything, web4]
    batch: 25%
"""


def load(write_hosts, text: str) -> config.Inventory:
    return config.load(write_hosts(text))


def error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """The message loading `text` as ./hosts.yaml fails with."""
    (tmp_path / "hosts.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        config.load(Path("hosts.yaml"))
    return str(err.value)


# --- valid files ---


def test_groups_expand_in_order_depth_first_each_host_once(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    assert list(inv.groups) == ["production", "everything", "canary", "wide"]
    assert inv.groups["production"] == Group("production", ("web1", "web2", "web3"))
    assert inv.groups["everything"].members == ("web1", "web2", "web3", "stage1")
    assert inv.groups["wide"].members == ("web1", "web2", "web3", "stage1", "web4")


def test_mapping_form_keeps_its_settings_as_text(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    assert inv.groups["canary"] == Group("canary", ("web1", "web2"), batch="1", max_fail="10%",
                                         on_failure="rollback")
    assert inv.groups["wide"].batch == "25%"
    assert inv.groups["wide"].max_fail is None and inv.groups["wide"].on_failure is None


def test_no_groups_key_means_no_groups(write_hosts) -> None:
    assert dict(load(write_hosts, BASE).groups) == {}
    assert dict(load(write_hosts, BASE + "groups:\n").groups) == {}


def test_groups_are_frozen(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    with pytest.raises(TypeError):
        inv.groups["x"] = inv.groups["canary"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.groups["canary"].batch = "2"  # type: ignore[misc]


def test_expand_replaces_groups_and_keeps_other_names(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    assert inv.expand(["production"]) == ["web1", "web2", "web3"]
    assert inv.expand(["web3", "canary", "deploy@10.1.1.1:2222", "web1"]) == [
        "web3", "web1", "web2", "deploy@10.1.1.1:2222"]
    assert inv.expand(["production", "stage1", "production"]) == ["web1", "web2", "web3",
                                                                    "stage1"]
    assert inv.expand([]) == []


def test_group_for_only_a_single_group_name(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    assert inv.group_for(["canary"]) == inv.groups["canary"]
    assert inv.group_for(("production",)) == inv.groups["production"]
    assert inv.group_for(["canary", "web3"]) is None
    assert inv.group_for(["web1"]) is None
    assert inv.group_for([]) is None


def test_an_unknown_alias_suggests_a_group_too(write_hosts) -> None:
    inv = load(write_hosts, GROUPS)
    with pytest.raises(ConfigError, match="did you mean 'production'"):
        inv.host("productoin")


# --- errors ---


def test_unknown_member_names_the_key_and_suggests(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups:\n  production: [web1, web2, web5]\n")
    assert msg == ("hosts.yaml: groups.production[2]: unknown host alias 'web5'; did you mean "
                   "'web4'? (hosts: web1, web2, web3, web4, stage1; groups: production)")


def test_unknown_member_of_the_mapping_form(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups:\n  c:\n    hosts: [web1, zzz]\n")
    assert msg.startswith("hosts.yaml: groups.c.hosts[1]: unknown host alias 'zzz' (hosts: web1,")


def test_a_group_named_like_a_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups:\n  web1: [web2]\n")
    assert msg == ("hosts.yaml: groups.web1: a host alias has this name; give the group "
                   "another one")


@pytest.mark.parametrize("groups, cycle", [
    ("  production: [web1, all]\n  all: [production]\n", "groups.production: a cycle: "
                                                          "production -> all -> production"),
    ("  me: [me]\n", "groups.me: a cycle: me -> me"),
    ("  a: [web1, b]\n  b: [c]\n  c: [web2, b]\n", "groups.b: a cycle: b -> c -> b"),
])
def test_a_cycle_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: str,
                          cycle: str) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups:\n" + groups)
    assert msg == f"hosts.yaml: {cycle}; a group cannot contain itself"


@pytest.mark.parametrize("groups, expected", [
    ("  empty: []\n", "groups.empty: empty; list at least one host alias or group"),
    ("  e:\n    hosts: []\n", "groups.e.hosts: empty; list at least one host alias or group"),
    ("  e:\n    batch: 2\n", "groups.e.hosts: missing (required)"),
    ("  e: web1\n", 'groups.e: expected a list of host aliases or group names, or a mapping '
                    'with hosts, got "web1"'),
    ("  e:\n    hosts: web1\n", "groups.e.hosts: expected a list of host aliases or group names"),
    ("  e: [web1, 3]\n", "groups.e[1]: expected a host alias or group name, got 3"),
    ('  "bad name": [web1]\n', 'groups: name "bad name" must be a simple name'),
    ("  e:\n    hosts: [web1]\n    batchh: 1\n", "groups.e.batchh: unknown key; did you mean "
                                                 "'batch'?"),
    ("  e:\n    hosts: [web1]\n    zzz: 1\n", "groups.e.zzz: unknown key; known keys: hosts, "
                                              "batch, max_fail, on_failure"),
    ("  e:\n    hosts: [web1]\n    on_failure: retry\n",
     'groups.e.on_failure: expected rollback or stop, got "retry"'),
])
def test_bad_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: str,
                    expected: str) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups:\n" + groups)
    assert msg.startswith(f"hosts.yaml: {expected}")


def test_groups_must_be_a_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "groups: [web1]\n")
    assert msg.startswith("hosts.yaml: groups: expected a mapping of group name to a list")


@pytest.mark.parametrize("key, value", [
    ("batch", 0), ("batch", "0%"), ("batch", "101%"), ("batch", -1), ("batch", "x"),
    ("batch", True), ("batch", 1.5), ("batch", "25 %"), ("max_fail", -1), ("max_fail", "200%"),
    ("max_fail", "ten"), ("max_fail", [1]),
])
def test_bad_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str,
                    value: object) -> None:
    shown = f'"{value}"' if isinstance(value, str) else str(value).lower()
    text = BASE + f"groups:\n  e:\n    hosts: [web1]\n    {key}: {shown}\n"
    msg = error(tmp_path, monkeypatch, text)
    minimum = 1 if key == "batch" else 0
    assert msg.startswith(f"hosts.yaml: groups.e.{key}: expected an integer >= {minimum} or a "
                          f'percentage of the group\'s hosts such as "25%", got')


@pytest.mark.parametrize("key, value, kept", [
    ("batch", "1", "1"), ("batch", 3, "3"), ("batch", "100%", "100%"), ("batch", "1%", "1%"),
    ("max_fail", 0, "0"), ("max_fail", "0%", "0%"), ("max_fail", "10%", "10%"),
    ("max_fail", " 2 ", "2"),
])
def test_good_counts(write_hosts, key: str, value: object, kept: str) -> None:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    inv = load(write_hosts, BASE + f"groups:\n  e:\n    hosts: [web1]\n    {key}: {shown}\n")
    assert getattr(inv.groups["e"], key) == kept


def test_top_level_keys_still_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error(tmp_path, monkeypatch, BASE + "group:\n  p: [web1]\n")
    assert msg == "hosts.yaml: group: unknown key; did you mean 'groups'?"


# --- count_of ---


@pytest.mark.parametrize("value, total, minimum, rounding, count", [
    ("25%", 10, 1, "ceil", 3),
    ("25%", 10, 0, "floor", 2),
    ("10%", 5, 1, "ceil", 1),     # half a host rounds up to one for a batch
    ("10%", 5, 0, "floor", 0),    # and down to none for max_fail
    ("1%", 3, 1, "floor", 1),     # never below the minimum
    ("100%", 7, 1, "ceil", 7),
    ("30%", 10, 1, "ceil", 3),    # exact: no float rounding up to 4
    ("3", 10, 1, "ceil", 3),
    ("20", 4, 1, "ceil", 4),      # never above the hosts there are
    ("0", 4, 0, "floor", 0),
    ("2", 0, 1, "ceil", 1),
])
def test_count_of(value: str, total: int, minimum: int, rounding: str, count: int) -> None:
    assert count_of(value, total, minimum=minimum, rounding=rounding) == count


def test_count_of_rounds_up_by_default_and_refuses_other_roundings() -> None:
    assert count_of("50%", 3, minimum=1) == 2
    with pytest.raises(ValueError):
        count_of("50%", 3, minimum=1, rounding="nearest")
