"""-H with group names: tasks.common.serve_once turns each group into its hosts on the task's
first call (Fabric calls a task once per -H entry), and fleet_targets gives the group's
defaults. Nothing connects: a Target is only built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import fabric.main
import pytest
from fabric import Connection

from wsgiship.errors import ConfigError, WsgishipError
from wsgiship.tasks import common

HOSTS = """\
app: {name: shop, wsgi: "shop:app"}
hosts:
  web1: {host: 10.0.0.1, port: 2201}
  web2: {host: 10.0.0.2}
  web3: {host: 10.0.0.3}
  stage1: {host: 10.0.0.9, user: stage}
groups:
  production: [web1, web2, web3]
  everything: [production, stage1]
  canary:
    hosts: [web2, web1]
    batch: 1
    on_failure: stop
"""


@pytest.fixture(autouse=True)
def inventory(write_hosts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_hosts(HOSTS)
    monkeypatch.setenv("WSGISHIP_HOSTS", str(path))
    monkeypatch.setattr(common, "_served", set())
    yield path


def given(monkeypatch: pytest.MonkeyPatch, hosts: str) -> None:
    """As if `fab TASK -H <hosts>` had been run (what Fabric's parser holds)."""
    args = SimpleNamespace(hosts=SimpleNamespace(value=hosts))
    monkeypatch.setattr(fabric.main, "program", SimpleNamespace(core=[SimpleNamespace(args=args)]),
                        raising=False)


def calls(monkeypatch: pytest.MonkeyPatch, hosts: str, task: str = "releases") -> list:
    """serve_once as Fabric calls it: once per -H entry, each with its own Connection."""
    given(monkeypatch, hosts)
    return [common.serve_once(Connection(name), task) for name in hosts.split(",")]


def where(targets: list) -> list[tuple[str, str, int | None, str | None]]:
    return [(t.label, t.host.host, t.host.port, t.host.user) for t in targets]


def test_a_group_is_served_as_its_hosts_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    first, *rest = calls(monkeypatch, "production")
    assert where(first) == [("web1", "10.0.0.1", 2201, None), ("web2", "10.0.0.2", None, None),
                            ("web3", "10.0.0.3", None, None)]
    assert rest == []


def test_groups_and_hosts_mixed_each_host_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first, *rest = calls(monkeypatch, "web3,everything,stage1")
    assert [t.label for t in first] == ["web3", "web1", "web2", "stage1"]
    assert rest == [None, None]
    assert first[3].host.user == "stage"


def test_plain_hosts_keep_what_fabric_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = calls(monkeypatch, "production,deploy@10.9.9.9:2222")
    assert where(first) == [("web1", "10.0.0.1", 2201, None), ("web2", "10.0.0.2", None, None),
                            ("web3", "10.0.0.3", None, None),
                            ("10.9.9.9", "10.9.9.9", 2222, "deploy")]
    assert second is None


def test_plain_hosts_first_are_served_once(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, third = calls(monkeypatch, "a@10.9.9.9:22,b@10.9.9.9:23,canary")
    assert where(first) == [("10.9.9.9", "10.9.9.9", 22, "a"), ("10.9.9.9", "10.9.9.9", 23, "b"),
                            ("web2", "10.0.0.2", None, None), ("web1", "10.0.0.1", 2201, None)]
    assert second is None and third is None


def test_the_current_connection_is_used_for_its_own_host(monkeypatch: pytest.MonkeyPatch) -> None:
    given(monkeypatch, "deploy@10.9.9.9:2222,production")
    c = Connection("deploy@10.9.9.9:2222", connect_kwargs={"key_filename": ["/k"]})
    targets = common.serve_once(c, "logs")
    assert targets is not None and len(targets) == 4
    assert targets[0].remote.connect_kwargs == {"key_filename": ["/k"]}


def test_each_task_serves_its_own_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert calls(monkeypatch, "canary", "logs")[0] is not None
    assert calls(monkeypatch, "canary", "exec")[0] is not None
    assert calls(monkeypatch, "canary", "logs") == [None]


def test_fleet_targets_gives_the_group_of_a_single_group_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    given(monkeypatch, "canary")
    served = common.fleet_targets(Connection("canary"), "deploy")
    assert served is not None
    targets, group = served
    assert [t.label for t in targets] == ["web2", "web1"]
    assert group is not None and (group.name, group.batch, group.max_fail, group.on_failure) == (
        "canary", "1", None, "stop")
    assert common.fleet_targets(Connection("canary"), "deploy") is None


@pytest.mark.parametrize("hosts", ["production,stage1", "web1", "canary,production"])
def test_fleet_targets_without_a_single_group(monkeypatch: pytest.MonkeyPatch,
                                              hosts: str) -> None:
    given(monkeypatch, hosts)
    served = common.fleet_targets(Connection(hosts.split(",")[0]), "deploy")
    assert served is not None and served[1] is None and served[0]


def test_a_mistyped_group_is_suggested(monkeypatch: pytest.MonkeyPatch) -> None:
    given(monkeypatch, "prodution")
    with pytest.raises(ConfigError, match="unknown host alias 'prodution'; did you mean "
                                          "'production'"):
        common.serve_once(Connection("prodution"), "releases")


def test_no_host_names_the_groups_too() -> None:
    with pytest.raises(WsgishipError, match=r"\(aliases: stage1, web1, web2, web3; groups: "
                                            r"production, everything, canary\)"):
        common.serve_once(object(), "releases")
