"""Every builder of wsgiship.commands: pure, valid bash, and naming only its own
service manager."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fakes import NAME

from wsgiship import shell
from wsgiship.commands import checks, health, job, nginx, release, services, venv
from wsgiship.layout import Paths
from wsgiship.shell import Raw, q


def all_builders(p: Paths) -> list[str]:
    return [
        release.prepare(p, "python3", {"by": "me", "token": "t"}),
        release.layout(p, "deploy"),
        release.unlock(p, "t"),
        release.unpack(p, NAME, "/tmp/u.tgz", (".env",), ("media",)),
        release.mark_failed(p, NAME, "boom"),
        release.switch(p, NAME),
        release.prune(p, 5, NAME),
        release.append_log(p, {"release": NAME}),
        venv.ensure(p, NAME, "k" * 16, "python3"),
        checks.nginx_check(p, NAME),
        checks.unit_check(p, NAME, "web1"),
        nginx.site_check(p, NAME, "web1"),
        services.install(p),
        shell.script([services.install_config(p, NAME)]),
        services.app_dirs(p, "deploy", "wsgiship-app", ("media", ".env")),
        services.app_dirs(p, "deploy", "deploy"),
        services.start_slot(p, NAME),
        services.switch_traffic(p),
        services.retire(p),
        services.retire(p, keep_live=False),
        nginx.reload_nginx(p),
        release.force_unlock(p),
        release.keeper(p, "t"),
        job.launch(p, NAME, job.spec(job.Job([job.JobStep("s", "step", "true")]), p, "t"), "t"),
        job.launch(p, NAME, "{}", "t", "runuser -u deploy --"),
        job.follow(p, NAME, 123),
        health.health_check(80, "localhost", "/", 200, NAME, 60),
        health.slot_check(p.slot_socket("a"), 80, "localhost", "/", 200, NAME, 60),
        health.slot_check(Raw(q(p.run_dir) + '"/uwsgi-$WSGISHIP_SLOT.sock"'), 80, "localhost",
                          "/", 200, NAME, 60),
        services.error_log_tail(p),
    ]


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_builders_are_pure(tmp_path: Path, manager: str) -> None:
    p = Paths(str(tmp_path / "d"), "app", manager)
    first = all_builders(p)
    assert all_builders(p) == first
    assert list(tmp_path.iterdir()) == []  # building touched nothing
    for text in first:
        assert text.startswith(shell.HEADER) and text.endswith("\n")
        assert sh_syntax_ok(text)
    # the service manager shows in the service scripts and nowhere else
    for line in "\n".join(first).splitlines():
        if manager == "systemd":
            assert "supervisorctl" not in line
        else:
            assert not ("systemctl" in line and "wsgiship-app" in line), line
            assert "journalctl" not in line


def sh_syntax_ok(text: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", text], capture_output=True).returncode == 0
