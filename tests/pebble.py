"""A real ACME server for the tests: Debian's `pebble` (Let's Encrypt's ACME test server), run on
a test host, validating HTTP-01 challenges against that host's nginx. The host trusts pebble's
own HTTPS endpoint and the root it signs certificates with; test names resolve to the loopback
there (its /etc/hosts), so the challenge really goes through the app's nginx site."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import testhost as th

DIR = "/etc/pebble-test"
TRUST = "/usr/local/share/ca-certificates"

START = r'''
set -e
command -v pebble >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q pebble >/dev/null
systemctl stop {unit} 2>/dev/null || true
systemctl reset-failed {unit} 2>/dev/null || true
mkdir -p {dir} && cd {dir}
[ -f cert.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
  -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat > cfg.json <<EOF
{{"pebble": {{"listenAddress": "127.0.0.1:{port}", "managementListenAddress": "127.0.0.1:{mgmt}",
 "certificate": "{dir}/cert.pem", "privateKey": "{dir}/key.pem", "httpPort": {http_port},
 "tlsPort": {tls_port}, "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}
EOF
# no sleeps before validation, no random nonce rejections: deterministic runs
systemd-run --quiet --unit {unit} -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 \
  -E PEBBLE_AUTHZREUSE=0 pebble -config {dir}/cfg.json
cp cert.pem {trust}/pebble-listener.crt
for i in $(seq 100); do
  curl -fsS --cacert cert.pem https://127.0.0.1:{mgmt}/roots/0 -o root.pem 2>/dev/null && break
  sleep 0.1
done
curl -fsS --cacert cert.pem https://127.0.0.1:{mgmt}/intermediates/0 -o intermediate.pem
cp root.pem {trust}/pebble-root.crt
update-ca-certificates >/dev/null 2>&1
cat root.pem
'''


@dataclass
class Pebble:
    """A pebble running on `host` (a transient systemd unit), checking challenges on http_port."""

    host: th.TestHost
    port: int
    mgmt: int
    http_port: int
    root: Path  # its root CA here, for curl --cacert / ssl contexts
    unit: str = "pebble-test"

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @classmethod
    def start(cls, host: th.TestHost, http_port: int, local_dir: Path) -> Pebble:
        port, mgmt, tls_port = (th.find_free_port() for _ in range(3))
        res = host.run(START.format(unit="pebble-test", dir=DIR, port=port, mgmt=mgmt,
                                    http_port=http_port, tls_port=tls_port, trust=TRUST),
                       timeout=300)
        root = local_dir / "pebble-root.pem"
        root.write_text(res.stdout)
        return cls(host, port, mgmt, http_port, root)

    def resolve(self, *names: str) -> None:
        """Make `names` resolve to the loopback on the host (for pebble's validation, certbot
        and the health check)."""
        missing = " ".join(names)
        self.host.run(f"for n in {missing}; do grep -qE \"[[:space:]]$n( |$)\" /etc/hosts || "
                      f"echo \"127.0.0.1 $n\" >> /etc/hosts; done")

    def serial(self, name: str, https_port: int) -> str:
        """The serial of the certificate the host serves for `name` (SNI) on https_port."""
        res = self.host.run(
            f"echo | openssl s_client -connect 127.0.0.1:{https_port} -servername {name} "
            f"2>/dev/null | openssl x509 -noout -serial")
        return res.stdout.strip().removeprefix("serial=")

    def stop(self) -> None:
        self.host.run(f"systemctl stop {self.unit}; rm -f {TRUST}/pebble-*.crt; "
                      "update-ca-certificates --fresh >/dev/null 2>&1", check=False)
