#!/usr/bin/env bash
# `make demo`: migrate + seed_demo + runserver for the example shop, on 127.0.0.1:$PORT.
#
# The shop caches its product lists in Redis (the query cache): when ARC_REDIS_URL is not set
# we start a throwaway instance (scripts/services.sh, state in .services/demo) and stop it when
# the server exits, so the documented X-Cache examples behave as shown. With ARC_REDIS_URL set,
# that Redis is used. (PostgreSQL starts too, unused unless ARC_EXAMPLE_DB=postgres.)
set -euo pipefail

ARC_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARC_REPO_ROOT"

PY="$ARC_REPO_ROOT/.venv/bin/python"
[ -x "$PY" ] || die "$PY not found; run: make .venv"
PORT="${PORT:-8000}"

STATE="$ARC_REPO_ROOT/.services/demo"
if [ -z "${ARC_REDIS_URL:-}" ]; then
    throwaway_services "$STATE"
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
# Not exec: the EXIT trap above must still stop the services when the server ends.
"$PY" manage.py runserver "127.0.0.1:$PORT"
