#!/usr/bin/env bash
# `make worker`: a Celery worker for the example project.
#
# Celery needs a broker; when ARC_REDIS_URL is not already set we start the throwaway services
# (scripts/services.sh) and stop them again when the worker exits, so `make demo` in one
# terminal and `make worker` in another is all a developer needs.
set -euo pipefail

ARC_LOG_TAG=worker
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARC_REPO_ROOT"

CELERY="$ARC_REPO_ROOT/.venv/bin/celery"
[ -x "$CELERY" ] || die "$CELERY not found; run: make .venv"

if [ -z "${ARC_REDIS_URL:-}" ]; then
    scripts/services.sh start
    trap 'scripts/services.sh stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # shellcheck disable=SC1091
    . .services/env
fi
log "broker: $ARC_REDIS_URL"
cd example_project
"$CELERY" -A example worker -l info
