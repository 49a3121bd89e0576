#!/usr/bin/env bash
# The floor a deploy tool is measured against: a bare redeploy in ONE SSH session, what a
# hand-written script does — stream the code as a tar, switch a `current` link, reload uWSGI
# (graceful: the master re-execs and chdirs into the new `current`), reload nginx, and poll the
# site until it answers the new text. No lock, no checks, no venv handling, no way back.
#
#   SSH="ssh ... root@host" bench/floor.sh setup VENV PORT WORKERS   # once: ini, nginx site
#   SSH="ssh ... root@host" bench/floor.sh deploy APP_DIR PORT TEXT  # one timed redeploy
#
# VENV: a venv on the server with the app's requirements and uWSGI (bench/run.py passes the
# one wsgiship built for the same app, so both sides run the same code and packages).
set -euo pipefail
D=/srv/floor
: "${SSH:?set SSH to the ssh command that reaches the test host as root}"

case "${1:-}" in
setup)
    VENV=$2 PORT=$3 WORKERS=$4
    $SSH bash -s -- "$D" "$VENV" "$PORT" "$WORKERS" <<'REMOTE'
set -euo pipefail
D=$1 VENV=$2 PORT=$3 WORKERS=$4
if [ -p "$D/fifo" ]; then printf q | timeout 5 tee "$D/fifo" >/dev/null || true; sleep 1; fi
rm -rf "$D"; mkdir -p "$D/releases"; chown www-data:www-data "$D"
cat > "$D/uwsgi.ini" <<INI
[uwsgi]
master = true
home = $VENV
; a graceful reload re-execs: through the venv's python (pyuwsgi's uwsgi is a Python script)
binary-path = $VENV/bin/python3
chdir = $D/current
module = hello:app
processes = $WORKERS
threads = 2
socket = $D/uwsgi.sock
chmod-socket = 660
master-fifo = $D/fifo
uid = www-data
gid = www-data
daemonize = $D/uwsgi.log
INI
cat > /etc/nginx/sites-enabled/floor <<SITE
server {
    listen $PORT;
    location / { include /etc/nginx/uwsgi_params; uwsgi_pass unix:$D/uwsgi.sock; }
}
SITE
systemctl reload nginx
REMOTE
    ;;
deploy)
    APP=$2 PORT=$3 TEXT=$4
    N=$(date +%s%N)
    tar -C "$APP" --exclude=__pycache__ -cz . | $SSH bash -c "'
set -euo pipefail
D=$D; R=\$D/releases/$N
mkdir -p \$R; tar -xz -C \$R
ln -sfn \$R \$D/.current && mv -T \$D/.current \$D/current
if [ -p \$D/fifo ] && [ -S \$D/uwsgi.sock ]; then printf r > \$D/fifo
else cd /; \$(grep ^home \$D/uwsgi.ini | cut -d\" \" -f3)/bin/uwsgi --ini \$D/uwsgi.ini; fi
systemctl reload nginx
python3 - $PORT \"$TEXT\" <<PY
import sys, time, urllib.request
url, want = \"http://127.0.0.1:%s/\" % sys.argv[1], sys.argv[2]
for _ in range(600):
    try:
        if urllib.request.urlopen(url, timeout=5).read().decode() == want:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.02)
sys.exit(\"the new release never answered\")
PY
'"
    ;;
*)
    sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
