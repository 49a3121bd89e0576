# ruff: noqa: E501  (certbot's lines as it printed them)
"""certbot 2.1 (Debian bookworm's) output, captured from real runs of `certbot certonly
--webroot` against an ACME test server (pebble) and against addresses with nothing behind them;
paths as on a server. For test_acme_output.py."""

UNREACHABLE = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
An unexpected error occurred:
ValueError: Requesting 127.0.0.1/dir: Connection refused
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

UNTRUSTED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
An unexpected error occurred:
requests.exceptions.SSLError: HTTPSConnectionPool(host='127.0.0.1', port=14000): Max retries exceeded with url: /dir (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:992)')))
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

UNKNOWN_HOST = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
An unexpected error occurred:
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='acme.invalid', port=443): Max retries exceeded with url: /dir (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7fd6f4b4fa50>: Failed to establish a new connection: [Errno -2] Name or service not known'))
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

CONNECTION_REFUSED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Account registered.
Requesting a certificate for shop.example.com and www.shop.example.com

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: shop.example.com
  Type:   connection
  Detail: Get "http://shop.example.com:5002/.well-known/acme-challenge/YYjesQCYz-YNMzUcZFD5u5iY6EtxfOkqgwoJIuBcHws": dial tcp 127.0.0.1:5002: connect: connection refused

  Domain: www.shop.example.com
  Type:   connection
  Detail: Get "http://www.shop.example.com:5002/.well-known/acme-challenge/uf6pAljBDQJgjIBaVQw6ugf80S08V98EgkfZ9dkml40": dial tcp 127.0.0.1:5002: connect: connection refused

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot. Ensure that the listed domains serve their content from the provided --webroot-path/-w and that files created there can be downloaded from the internet.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

NOT_FOUND = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for shop.example.com

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: shop.example.com
  Type:   unauthorized
  Detail: Non-200 status code from HTTP: http://shop.example.com:5002/.well-known/acme-challenge/LGyG9O9uB-vYuWcXQ5U4Iit_C7HgQchgci78AGbk9P8 returned 404

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot. Ensure that the listed domains serve their content from the provided --webroot-path/-w and that files created there can be downloaded from the internet.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

UNRESOLVED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for gone.example.com

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: gone.example.com
  Type:   connection
  Detail: Get "http://gone.example.com:5002/.well-known/acme-challenge/nJxhVvIuCR0eoyagzVFKqLoQ8T8m2CK-tGE1XS4gJro": could not resolve URL "http://gone.example.com:5002/.well-known/acme-challenge/nJxhVvIuCR0eoyagzVFKqLoQ8T8m2CK-tGE1XS4gJro"

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot. Ensure that the listed domains serve their content from the provided --webroot-path/-w and that files created there can be downloaded from the internet.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.
"""

OBTAINED = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for shop.example.com and www.shop.example.com
Hook 'deploy-hook' ran with output:
 HOOK-RAN

Successfully received certificate.
Certificate is saved at: /etc/letsencrypt/live/wsgiship-shop/fullchain.pem
Key is saved at:         /etc/letsencrypt/live/wsgiship-shop/privkey.pem
This certificate expires on 2031-11-29.
These files will be updated when the certificate renews.
Certbot has set up a scheduled task to automatically renew this certificate in the background.

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
If you like Certbot, please consider supporting our work by:
 * Donating to ISRG / Let's Encrypt:   https://letsencrypt.org/donate
 * Donating to EFF:                    https://eff.org/donate-le
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
"""

NOT_DUE = """\
Saving debug log to /var/log/letsencrypt/letsencrypt.log
Certificate not yet due for renewal

- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
Certificate not yet due for renewal; no action taken.
- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
"""
