#!/usr/bin/env bash
# `make demo`: migrate + seed_demo + runserver for the example shop, on 127.0.0.1:$PORT.
#
# The shop caches its product lists in Redis (the query cache): when ARC_REDIS_URL is not set
# we start a throwaway instance (scripts/services.sh, state in .services/demo-$PORT) and stop
# it when the server exits, so the documented X-Cache examples behave as shown. With
# ARC_REDIS_URL set, that Redis is used. (PostgreSQL starts too, unused unless
# ARC_EXAMPLE_DB=postgres.) The state is per port because services.sh stops whatever its state
# directory's previous start left running: a second `make demo PORT=8001` sharing the first
# one's directory would stop the first server's Redis under it (its cache then missing on every
# request, silently). For the same reason a port already taken is refused before anything
# starts, rather than by runserver after the services were restarted.
set -euo pipefail

ARC_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARC_REPO_ROOT"

PORT="${PORT:-8000}"
case "$PORT" in
[1-9] | [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][0-9][0-9] | [1-9][0-9][0-9][0-9][0-9]) ;;
*) die "PORT must be a number from 1 to 65535, not '$PORT'" ;;
esac
[ "$PORT" -le 65535 ] || die "PORT must be a number from 1 to 65535, not '$PORT'"
port_in_use "$PORT" && die "port $PORT is in use (another make demo?); stop it, or: make demo PORT=$((PORT + 1))"

# ARC_DEMO_PYTHON: another interpreter with the project installed (the tests use their own)
PY="${ARC_DEMO_PYTHON:-$ARC_REPO_ROOT/.venv/bin/python}"
[ -x "$PY" ] || die "$PY not found; run: make .venv"

STATE="$ARC_REPO_ROOT/.services/demo-$PORT"
OWN_SERVICES=""
if [ -z "${ARC_REDIS_URL:-}" ]; then
    throwaway_services "$STATE"
    OWN_SERVICES=1
fi

cd example_project
"$PY" manage.py migrate --noinput
"$PY" manage.py seed_demo
echo
if [ -f demo_urls.txt ]; then
    sed "s/127\.0\.0\.1:8000/127.0.0.1:$PORT/g" demo_urls.txt
else
    echo "API:     http://127.0.0.1:$PORT/api/"
fi
echo
if [ -n "$OWN_SERVICES" ]; then
    # A manage.py command in another terminal (shell, seed_demo) must write through this
    # server's Redis, or its writes do not invalidate the cached lists the server serves.
    echo "manage.py in another terminal: first  . $STATE/env"
    echo "(so its writes invalidate this server's cache)"
    echo
fi
# Not exec: the EXIT trap above must still stop the services when the server ends.
"$PY" manage.py runserver "127.0.0.1:$PORT"
