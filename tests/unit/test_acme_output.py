"""wsgiship.acme: the one line `fab setup` says when certbot could not get a certificate, read
from certbot's real output (certbot_outputs.py): per domain what the ACME server said and the
fix, or that the ACME server cannot be reached, or certbot's own last words."""

from __future__ import annotations

import certbot_outputs as out
import pytest

from wsgiship import acme

LE = "https://acme-v02.api.letsencrypt.org/directory"
NAMES = ("shop.example.com", "www.shop.example.com")
FIX = "resolves to this server and its port 80 (http_port) is reachable from the internet"


def test_a_domain_the_acme_server_could_not_verify() -> None:
    assert acme.problems(out.NOT_FOUND) == [acme.Problem(
        "shop.example.com", "unauthorized",
        "Non-200 status code from HTTP: http://shop.example.com:5002/.well-known/acme-challenge/"
        "LGyG9O9uB-vYuWcXQ5U4Iit_C7HgQchgci78AGbk9P8 returned 404")]
    assert acme.failure(out.NOT_FOUND, NAMES, LE) == (
        f"tls: the ACME server {LE} could not verify shop.example.com (unauthorized: Non-200"
        " status code from HTTP: http://shop.example.com:5002/.well-known/acme-challenge/"
        "LGyG9O9uB-vYuWcXQ5U4Iit_C7HgQchgci78AGbk9P8 returned 404); check that shop.example.com"
        f" {FIX}")


def test_two_domains_unreachable() -> None:
    line = acme.failure(out.CONNECTION_REFUSED, NAMES, LE)
    assert [p.domain for p in acme.problems(out.CONNECTION_REFUSED)] == list(NAMES)
    assert line.startswith(f"tls: the ACME server {LE} could not verify shop.example.com"
                           ' (connection: Get "http://shop.example.com:5002/')
    assert "connect: connection refused), www.shop.example.com (connection: Get" in line
    assert line.endswith("; check that shop.example.com and www.shop.example.com resolve to this"
                         " server and its port 80 (http_port) is reachable from the internet")
    assert "\n" not in line


def test_a_name_that_does_not_resolve() -> None:
    line = acme.failure(out.UNRESOLVED, ("gone.example.com",), LE)
    assert line.startswith(f"tls: the ACME server {LE} could not verify gone.example.com"
                           ' (connection: Get "http://gone.example.com:5002/')
    assert "could not resolve URL" in line and line.endswith(f"check that gone.example.com {FIX}")


@pytest.mark.parametrize("output, reason", [
    (out.UNREACHABLE, "Connection refused"),
    (out.UNKNOWN_HOST, "Name or service not known"),
    (out.UNTRUSTED, "certificate verify failed: self-signed certificate"),
])
def test_an_acme_server_out_of_reach(output: str, reason: str) -> None:
    server = "https://127.0.0.1:14000/dir"
    assert acme.failure(output, NAMES, server) == (
        f"tls: cannot reach the ACME server {server}: {reason}")


@pytest.mark.parametrize("text, reason", [
    ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='acme.test', port=443): Max"
     " retries exceeded with url: /dir (Caused by NameResolutionError(\"<urllib3.connection."
     "HTTPSConnection object at 0x7f>: Failed to resolve 'acme.test' ([Errno -3] Temporary"
     " failure in name resolution)\"))", "cannot resolve acme.test"),
    ("requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='acme.test', port=443): Read"
     " timed out. (read timeout=45)", "Read timed out"),
    ("something else entirely", "something else entirely"),
])
def test_connection_reasons(text: str, reason: str) -> None:
    assert acme.connection_reason(text) == reason


def test_any_other_error_says_certbot_s_words() -> None:
    rate_limited = ("Saving debug log to /var/log/letsencrypt/letsencrypt.log\n"
                    "An unexpected error occurred:\n"
                    "Error creating new order :: too many certificates (5) already issued for this"
                    " exact set of domains in the last 168 hours\n"
                    "Ask for help or search for solutions at https://community.letsencrypt.org.\n")
    assert acme.failure(rate_limited, NAMES, LE) == (
        f"tls: certbot could not get a certificate for shop.example.com, www.shop.example.com"
        f" from {LE}: Error creating new order :: too many certificates (5) already issued for"
        f" this exact set of domains in the last 168 hours (its log:"
        f" /var/log/letsencrypt/letsencrypt.log on the server)")
    assert acme.failure("bash: certbot: command not found\n", NAMES, LE).endswith(
        ": bash: certbot: command not found (its log: /var/log/letsencrypt/letsencrypt.log on"
        " the server)")


def test_success_lists_no_problem() -> None:
    assert acme.problems(out.OBTAINED) == [] and acme.problems(out.NOT_DUE) == []
