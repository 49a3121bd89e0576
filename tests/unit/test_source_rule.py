"""wsgiship.source: the rule the venv's packages come by, in the words the venv step prints
(Source.venv_rule), the uWSGI package added, the warnings about what is not read, and binary
files (the app's wheel) in the tarball."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from wsgiship import source
from wsgiship.errors import ConfigError


def collected(tmp_path: Path, files: dict[str, str], package: str = "pyuwsgi") -> source.Source:
    root = tmp_path / "app"
    for name, text in {"app.py": "app = None\n", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return source.collect(root, package)


@pytest.mark.parametrize("files, package, rule", [
    ({"requirements.txt": "flask\n"}, "pyuwsgi", "requirements.txt + pyuwsgi"),
    ({"requirements.txt": "flask\n"}, "uwsgi", "requirements.txt + uwsgi"),
    # the app names its own uWSGI: nothing added
    ({"requirements.txt": "flask\npyuwsgi==2.0.29\n"}, "pyuwsgi", "requirements.txt"),
    ({"pyproject.toml": '[project]\nname = "s"\ndependencies = ["flask"]\n'}, "pyuwsgi",
     "pyproject.toml [project].dependencies + pyuwsgi"),
    ({"pyproject.toml": '[project]\nname = "s"\ndependencies = ["flask", "uwsgi"]\n'}, "pyuwsgi",
     "pyproject.toml [project].dependencies"),
    ({}, "pyuwsgi", "no requirements.txt or [project].dependencies: only uWSGI (pyuwsgi)"),
    ({"pyproject.toml": "[tool.ruff]\nline-length = 100\n"}, "uwsgi",
     "no requirements.txt or [project].dependencies: only uWSGI (uwsgi)"),
])
def test_the_venv_rule_says_where_the_packages_come_from(tmp_path: Path, files: dict[str, str],
                                                        package: str, rule: str) -> None:
    assert collected(tmp_path, files, package).venv_rule == rule


def test_dynamic_dependencies_are_not_read_and_the_deploy_is_told(tmp_path: Path) -> None:
    src = collected(tmp_path, {"pyproject.toml": '[project]\nname = "s"\n'
                                                 'dynamic = ["dependencies", "version"]\n'})
    assert src.requirements == source.UWSGI_REQUIREMENT + "\n"
    (warning,) = src.warnings
    assert "pyproject.toml declares its dependencies dynamic" in warning
    assert warning.endswith("list them in requirements.txt")
    # a requirements.txt beside it is what counts: nothing to say
    both = collected(tmp_path / "b", {"requirements.txt": "flask\n",
                                      "pyproject.toml": '[project]\ndynamic = ["dependencies"]\n'})
    assert both.warnings == ()


def test_dependencies_that_are_not_a_list_of_strings_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"/app/pyproject\.toml: \[project\]\.dependencies: "
                                          r"expected a list of requirement strings"):
        source.requirements_of({"pyproject.toml": b'[project]\ndependencies = "flask"\n'},
                               Path("/app"))


def test_the_tarball_carries_binary_files_as_they_are(tmp_path: Path) -> None:
    src = collected(tmp_path, {})
    wheel = bytes(range(256)) * 4
    data = source.tarball(src, {".wsgiship/dist/s-1.0-py3-none-any.whl": wheel, "REVISION": "r\n"})
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.getmember(".wsgiship/dist/s-1.0-py3-none-any.whl")
        assert tar.extractfile(member).read() == wheel  # type: ignore[union-attr]
        assert member.mode == 0o644
