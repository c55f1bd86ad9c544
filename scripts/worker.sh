#!/usr/bin/env bash
# `make worker`: a Celery worker with embedded beat for the example project (it runs the outbox
# relay every second, see example_project/example/celery.py).
#
# Celery needs a broker; when neither CELERY_BROKER_URL nor ARC_REDIS_URL is set we start a
# throwaway instance (scripts/services.sh, state in .services/worker) and stop it when the worker
# exits, so `make demo` in one terminal and `make worker` in another is all a developer needs.
set -euo pipefail

ARC_LOG_TAG=worker
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARC_REPO_ROOT"

CELERY="$ARC_REPO_ROOT/.venv/bin/celery"
[ -x "$CELERY" ] || die "$CELERY not found; run: make .venv"

STATE="$ARC_REPO_ROOT/.services/worker"
if [ -z "${CELERY_BROKER_URL:-}" ] && [ -z "${ARC_REDIS_URL:-}" ]; then
    throwaway_services "$STATE"
fi
mkdir -p "$STATE"
log "broker: ${CELERY_BROKER_URL:-$ARC_REDIS_URL}"
cd example_project
# Not exec: the EXIT trap above must still stop the services when the worker ends.
"$CELERY" -A example worker -B -s "$STATE/celerybeat-schedule" -l info
