#!/usr/bin/env bash
# Make sure a Chromium the browser tests can drive is installed (Debian's package).
#
# `playwright install` cannot download its own browser builds on these machines, so the tests
# launch Debian's chromium through playwright's executable_path instead; this script only has to
# make that binary exist. Separate from services.sh because it is slow to install (~300 MB) and
# only the browser tests need it.
#
# Set ARC_SKIP_BROWSER=1 to skip (the browser tests then skip themselves).
set -euo pipefail

ARC_LOG_TAG=browser
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "${ARC_SKIP_BROWSER:-}" = "1" ]; then
    log "ARC_SKIP_BROWSER=1: not checking for Chromium"
    exit 0
fi

find_chromium() { command -v chromium || command -v chromium-browser || true; }

bin="$(find_chromium)"
if [ -z "$bin" ]; then
    is_root || die "Chromium is missing and we are not root: apt-get install -y chromium (or set ARC_SKIP_BROWSER=1)"
    apt_install chromium
    bin="$(find_chromium)"
    [ -n "$bin" ] || die "chromium installed but not found on PATH"
fi
log "using $bin ($("$bin" --version 2>/dev/null || echo 'version unknown'))"
