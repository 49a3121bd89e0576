"""Render the release's configs from Jinja2 templates; a user override directory wins per file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from . import managers
from . import tls as tlsconf
from .config import App
from .envfile import PARSE_LINE
from .envvars import env_text
from .errors import ConfigError
from .layout import CONFIG_DIR, SLOTS, paths_for

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
# template -> file name inside <release>/.wsgiship/ ("service": the service manager's config)
TEMPLATES = {
    "wsgi.py.j2": "wsgi.py",
    "uwsgi.ini.j2": "uwsgi.ini",
    "nginx.conf.j2": "nginx.conf",
}


def _uwsgi_options(app: App) -> list[tuple[str, str]]:
    def text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    out = []
    for key, value in app.uwsgi.items():
        values = value if isinstance(value, tuple) else (value,)
        out.extend((key, text(v)) for v in values)
    return out


def environment(app: App) -> jinja2.Environment:
    dirs = [str(app.templates)] if app.templates else []
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*dirs, str(TEMPLATE_DIR)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _template_location(exc: BaseException) -> str:
    """file:line of the template frame that raised, from Jinja's rewritten traceback."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            where = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def tls_context(app: App, https: bool = True) -> dict[str, Any] | None:
    """The site's HTTPS, for the nginx template (`tls`; None without app.tls): where nginx finds
    the certificate (from the app's name and the kind), the ACME webroot, the redirect and HSTS.
    `https` false: the site before its certificate exists (fab setup's first step of an ACME
    certificate): HTTP only, serving the app and the challenges, no redirect."""
    tls = app.tls
    if tls is None:
        return None
    certificate, key = tlsconf.files(app.name, tls.kind)
    return {
        "kind": tls.kind,
        "https": https,
        "https_port": app.https_port,
        "port_suffix": "" if app.https_port == 443 else f":{app.https_port}",
        "certificate": certificate,
        "key": key,
        "webroot": tlsconf.webroot(app.name) if tls.kind == "acme" else "",
        "redirect": tls.redirect,
        "hsts": tls.hsts,
        "session_cache": f"wsgiship_{app.name}",
    }


def render(app: App, release: str, app_user: str, revision: str,
           https: bool = True) -> dict[str, str]:
    """Every config file of a release, as {path inside the release: text} (`https`: see
    tls_context)."""
    paths = paths_for(app)
    context = {
        "app": app,
        "release": release,
        "revision": revision,
        "deploy_to": paths.deploy_to,
        "current": paths.current,
        "shared": paths.shared,
        "socket": paths.socket,
        "release_dir": paths.release(release),
        "run_dir": paths.run_dir,
        "slots": paths.slots,
        "slots_names": SLOTS,
        "app_log": paths.app_log,
        "app_user": app_user,
        "app_group": "www-data",
        "service": paths.service,
        "uwsgi_options": _uwsgi_options(app),
        "tls": tls_context(app, https),
        "env_line_parser": PARSE_LINE.strip(),
    }
    env = environment(app)
    out = {}
    templates = {**TEMPLATES, managers.get(app.service_manager).template: "service"}
    for template, target in templates.items():
        try:
            out[f"{CONFIG_DIR}/{target}"] = env.get_template(template).render(context)
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename}:{exc.lineno}"
            raise ConfigError(f"{where}: template error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            where = _template_location(exc) or template
            raise ConfigError(f"{where}: template error: {exc.message}") from None
        except RecursionError:
            raise ConfigError(f"{template}: template error: it includes itself (an override "
                              f"cannot include the default of the same name)") from None
        except jinja2.TemplateError as exc:
            raise ConfigError(f"{template}: template error: {exc}") from None
    # (quoted where wsgi.py's loader would otherwise change a value: spaces or quotes around it)
    out[f"{CONFIG_DIR}/env"] = env_text(app.env)
    return out
