#!/usr/bin/env bash
# The body of `make test`: start the throwaway services, run the suite on SQLite and then on
# PostgreSQL (Redis available to both), then both again under Django 4.2, the supported floor
# (.venv-django42, made by the Makefile), ALWAYS stop the services, and fail if any run failed.
#
# Every run happens even when an earlier one fails, so one `make test` shows all the failures.
# The exit code is the truth: pytest's exit 5 ("no tests collected") fails the build, with or
# without PYTEST_ARGS (a broken collection path, or a -k or -m that selected nothing: a run
# that tested nothing is not a pass), and so does a run exiting 0 that ran no test
# (--collect-only, --setup-plan). A run exiting 0 before its session ended (no word from the
# tests.run_end plugin, loaded with -p so that --noconftest keeps it) fails; the Django 4.2
# runs must run Django 4.2.
#
# Knobs: PYTEST_ARGS="-k outbox -x" (extra pytest arguments, word-split), ARC_PYTHON and
# ARC_PYTHON_DJANGO42 (interpreters, default .venv/bin/python and .venv-django42/bin/python),
# ARC_TEST_BACKENDS="sqlite postgres django42-sqlite django42-postgres" (subset to run),
# ARC_TEST_JOBS (runs at once, default one per CPU up to the number of runs).
#
# Runs at once: each pytest run is one process on one CPU, so on a machine of N CPUs up to N
# runs go side by side, each in a lane of its own with its own PostgreSQL and Redis (one
# run's query cache, streams and test database are never another's). The longest runs are
# dealt first, each to the least loaded lane. With one lane the output is
# live, as before; with more, each line carries its run's name ("[postgres] ...") and every
# failed run's failures are printed again, whole, before the summary.
set -euo pipefail

ARC_LOG_TAG="test"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARC_REPO_ROOT"

PY="${ARC_PYTHON:-$ARC_REPO_ROOT/.venv/bin/python}"
PY42="${ARC_PYTHON_DJANGO42:-$ARC_REPO_ROOT/.venv-django42/bin/python}"
[ -x "$PY" ] || die "$PY not found; run: make .venv"
# Split PYTEST_ARGS like a shell would (so -k "a and not b" stays one argument), without eval.
# Not `mapfile < <(...)`: a process substitution's exit status is never checked, so an
# unbalanced quote would run the whole suite without the caller's -x or -k.
EXTRA=()
if [ -n "${PYTEST_ARGS:-}" ]; then
    split="$("$PY" -c 'import shlex, sys; print("\n".join(shlex.split(sys.argv[1])))' "$PYTEST_ARGS")" ||
        die "PYTEST_ARGS does not split like a shell command line: $PYTEST_ARGS"
    [ -z "$split" ] || mapfile -t EXTRA <<<"$split"
fi
read -r -a BACKENDS <<<"${ARC_TEST_BACKENDS:-sqlite postgres django42-sqlite django42-postgres}"
[ "${#BACKENDS[@]}" -gt 0 ] || die "ARC_TEST_BACKENDS names no backend to run: '${ARC_TEST_BACKENDS:-}'"
JOBS="${ARC_TEST_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}"
case "$JOBS" in
'' | *[!0-9]* | 0*) die "ARC_TEST_JOBS must be a whole number of runs at once (1 or more): '$JOBS'" ;;
esac
[ "$JOBS" -le "${#BACKENDS[@]}" ] || JOBS="${#BACKENDS[@]}"
declare -A NAMED
for backend in "${BACKENDS[@]}"; do
    [ -z "${NAMED[$backend]:-}" ] || die "ARC_TEST_BACKENDS names $backend twice"
    NAMED[$backend]=1
    case "$backend" in
    sqlite | postgres) ;;
    django42-sqlite | django42-postgres)
        [ -x "$PY42" ] || die "$PY42 not found; run: make test (it makes .venv-django42)"
        # the supported floor, or the runs named after it test another Django under its name
        version="$("$PY42" -c 'import django; print(django.get_version())')" ||
            die "$PY42 cannot import Django; run: make test (it makes .venv-django42)"
        case "$version" in
        4.2 | 4.2.*) ;;
        *) die "$PY42 has Django $version, not Django 4.2 (ARC_PYTHON_DJANGO42, or remove .venv-django42 and run make test)" ;;
        esac
        ;;
    *) die "unknown backend '$backend' in ARC_TEST_BACKENDS (sqlite, postgres, django42-sqlite, django42-postgres)" ;;
    esac
done
# weight NAME: a run's length relative to the others (CI's last serial make test: PostgreSQL
# 1,256 s, SQLite 921 s; the Django 4.2 runs try a quarter of the property-based tests'
# examples, tests/budget.py, which are about half of a run's time)
weight() {
    case "$1" in
    postgres) echo 12 ;;
    sqlite) echo 9 ;;
    django42-postgres) echo 8 ;;
    django42-sqlite) echo 6 ;;
    esac
}
# the order runs are dealt in: the longest first (runs of one weight as named)
mapfile -t ORDER < <(for backend in "${BACKENDS[@]}"; do echo "$(weight "$backend") $backend"; done |
    sort -s -r -n -k1,1 | cut -d' ' -f2)
# (a process substitution's status goes unchecked: its output is)
[ "${#ORDER[@]}" -eq "${#BACKENDS[@]}" ] || die "could not order the runs: ${BACKENDS[*]}"

# pytest reads PYTEST_ADDOPTS too: one inherited from the environment (-m "not browser")
# narrows every run, which nothing else in this log would show
[ -z "${PYTEST_ADDOPTS:-}" ] || log "WARNING: PYTEST_ADDOPTS='$PYTEST_ADDOPTS' applies to every run"

T0=$SECONDS
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/arc-test.XXXXXX")"

# Own instance in .services/test: a developer's `make services-start`/`make worker` servers in
# .services survive a test run, and the test run cannot be disturbed by them. Lane 1 uses it,
# lane N its sibling "-N".
SERVICES_BASE="${ARC_SERVICES_DIR:-$ARC_REPO_ROOT/.services/test}"
lane_services() { if [ "$1" -eq 1 ]; then echo "$SERVICES_BASE"; else echo "$SERVICES_BASE-$1"; fi; }

SERVICES_STOPPED=0
stop_services() {
    [ "$SERVICES_STOPPED" = 1 ] && return 0
    SERVICES_STOPPED=1
    local lane
    for ((lane = 1; lane <= JOBS; lane++)); do
        ARC_SERVICES_DIR="$(lane_services "$lane")" "$ARC_REPO_ROOT"/scripts/services.sh stop ||
            log "WARNING: services.sh stop failed (lane $lane)"
    done
}
# kill_tree PID: the process and everything under it; the parent first, so a lane does not
# go on to its next run when its pytest ends.
# shellcheck disable=SC2317  # invoked through cleanup
kill_tree() {
    local child children
    children="$(pgrep -P "$1" 2>/dev/null || true)"
    kill "$1" 2>/dev/null || true
    for child in $children; do kill_tree "$child"; done
}
# shellcheck disable=SC2317  # invoked through trap
cleanup() {
    local rc=$?
    # A second Ctrl-C (make and the terminal both deliver one) must not cut the stop short.
    trap '' INT TERM
    # the lanes and their pytest runs first: a CI timeout ends this shell, not its children
    local pid
    for pid in $(jobs -p); do kill_tree "$pid"; done
    stop_services
    rm -rf "$LOGDIR"
    exit "$rc"
}
trap cleanup EXIT
# A Ctrl-C or a CI timeout must still stop PostgreSQL/Redis: turn signals into a normal exit so
# the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

for ((lane = 1; lane <= JOBS; lane++)); do
    ARC_SERVICES_DIR="$(lane_services "$lane")" "$ARC_REPO_ROOT"/scripts/services.sh start
done

declare -A RC DURATION COUNTS
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
EMPTY_RUNS=()

# Add the numbers of pytest's closing line ("== 3 failed, 120 passed, 4 skipped in 9.1s ==") to
# the totals, so the very last line of `make test` is a plain "N passed, N failed" summary.
count_results() {
    local name="$1" line passed=0 failed=0 skipped=0 deselected=0 n word
    line="$(grep -E '^(=+ )?[0-9a-z ,]*( passed| failed| errors?| skipped| no tests ran).* in [0-9.]+s' "$LOGDIR/$name.log" | tail -n1 || true)"
    for tok in $(echo "$line" | grep -oE '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)' | tr ' ' ':'); do
        n="${tok%%:*}"
        word="${tok#*:}"
        case "$word" in
        passed | xfailed) passed=$((passed + n)) ;;
        failed | error | errors | xpassed) failed=$((failed + n)) ;;
        skipped) skipped=$((skipped + n)) ;;
        deselected) deselected=$((deselected + n)) ;;
        esac
    done
    # A run that failed without a closing line (conftest import error, crash), or collected
    # nothing (exit 5, a failure too), must not read as "0 failed" in the totals.
    if [ "${RC[$name]}" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    COUNTS[$name]="$passed passed, $failed failed, $skipped skipped"
    # a -k/-m (PYTEST_ARGS, or PYTEST_ADDOPTS inherited from the environment) left these out
    [ "$deselected" -eq 0 ] || COUNTS[$name]+=", $deselected deselected"
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
}

# run_backend NAME LANE: one pytest run of the whole suite, on the lane's services. Its exit
# status and duration go to files (a lane is a subshell): $LOGDIR/NAME.rc, NAME.seconds.
run_backend() {
    local name="$1" lane="$2" t=$SECONDS rc python="$PY" services
    local -a vars=()
    case "$name" in django42-*) python="$PY42" ;; esac
    case "$name" in *postgres) vars=(ARC_TEST_DB=postgres) ;; esac
    services="$(lane_services "$lane")"
    log "=== pytest on $name ($("$python" -c 'import django; print("Django", django.get_version())'))$([ "$JOBS" -eq 1 ] || echo ", lane $lane") ==="
    set +e
    # tests/run_end.py writes ARC_RUN_END when the session ends (pytest_sessionfinish): a
    # process ended mid-run with status 0 (os._exit(0) in code a test runs) writes nothing.
    # A plugin given here, not a conftest hook: --noconftest in PYTEST_ARGS keeps it.
    # shellcheck disable=SC1091
    (
        . "$services/env"
        export ARC_SERVICES_DIR="$services"
        env -u ARC_TEST_DB ARC_RUN_END="$LOGDIR/$name.end" "${vars[@]}" "$python" -m pytest -p tests.run_end "${EXTRA[@]}"
    ) 2>&1 | if [ "$JOBS" -eq 1 ]; then tee "$LOGDIR/$name.log"; else tee "$LOGDIR/$name.log" | sed -u "s/^/[$name] /"; fi
    rc=${PIPESTATUS[0]}
    set -e
    echo "$rc" >"$LOGDIR/$name.rc"
    echo $((SECONDS - t)) >"$LOGDIR/$name.seconds"
}

# Deal the runs to the lanes, longest first, each to the least loaded lane.
declare -A LANE_OF LANE_LOAD
for ((lane = 1; lane <= JOBS; lane++)); do LANE_LOAD[$lane]=0; done
for backend in "${ORDER[@]}"; do
    best=1
    for ((lane = 2; lane <= JOBS; lane++)); do
        [ "${LANE_LOAD[$lane]}" -ge "${LANE_LOAD[$best]}" ] || best=$lane
    done
    LANE_OF[$backend]=$best
    LANE_LOAD[$best]=$((LANE_LOAD[$best] + $(weight "$backend")))
done
# run_lane LANE: the runs dealt to it, one after another.
run_lane() {
    local backend
    for backend in "${ORDER[@]}"; do
        [ "${LANE_OF[$backend]}" != "$1" ] || run_backend "$backend" "$1"
    done
}
if [ "$JOBS" -eq 1 ]; then
    # In the foreground: on a Ctrl-C pytest ends its session and tears its fixtures down
    # before this script's trap runs (a trap runs when the foreground command ends; while
    # the script waits for background lanes it runs at once, and its TERM cuts them short).
    run_lane 1
else
    for ((lane = 1; lane <= JOBS; lane++)); do run_lane "$lane" & done
    wait
fi

# collect_backend NAME: read back what the lane wrote, judge the run.
collect_backend() {
    local name="$1" rc
    rc="$(cat "$LOGDIR/$name.rc" 2>/dev/null || echo 1)"
    DURATION[$name]="$(cat "$LOGDIR/$name.seconds" 2>/dev/null || echo "?")"
    [ -e "$LOGDIR/$name.log" ] || : >"$LOGDIR/$name.log"
    if [ "$rc" -eq 0 ] && [ ! -e "$LOGDIR/$name.end" ]; then
        rc=-1
        printf '\n%s\n' "!!!!!!!! pytest on $name exited 0 before its session ended (or PYTEST_ARGS disabled tests.run_end): its later tests may never have run !!!!!!!!" >&2
    elif [ "$rc" -eq 0 ] && [ "$(sed -n 2p "$LOGDIR/$name.end")" = "0" ]; then
        # the session ended with status 0 and ran no test: --collect-only, --setup-plan...
        rc=-2
        printf '\n%s\n' "!!!!!!!! pytest on $name exited 0 and RAN NO TEST (PYTEST_ARGS: ${PYTEST_ARGS:-}) !!!!!!!!" >&2
    fi
    RC[$name]=$rc
    count_results "$name"
    if [ "$rc" -eq 5 ]; then
        EMPTY_RUNS+=("$name")
        printf '\n%s\n' "!!!!!!!! pytest collected NO TESTS on $name (exit 5): check testpaths and PYTEST_ARGS !!!!!!!!" >&2
    fi
}

for backend in "${BACKENDS[@]}"; do
    collect_backend "$backend"
    # side by side, a run's failures were interleaved with another's lines: again, whole
    if [ "$JOBS" -gt 1 ] && [ "${RC[$backend]}" -ne 0 ]; then
        printf '\n%s\n' "================ failures of $backend, again ================"
        if grep -q '^=* FAILURES =*$\|^=* ERRORS =*$' "$LOGDIR/$backend.log"; then
            sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,$p' "$LOGDIR/$backend.log"
        else
            tail -n 60 "$LOGDIR/$backend.log"
        fi
    fi
done

# Stop now (not only in the trap) so the summary below is the last thing printed.
stop_services

failed=0
echo
echo "================ make test summary ================"
for backend in "${BACKENDS[@]}"; do
    rc="${RC[$backend]}"
    case "$rc" in
    0) verdict="ok" ;;
    5)
        # a -k or -m selecting nothing too: a run that tested nothing is no pass
        verdict="FAILED: NO TESTS COLLECTED"
        failed=1
        ;;
    -1)
        verdict="FAILED (exit 0 mid-session)"
        failed=1
        ;;
    -2)
        # --collect-only, --setup-only, --setup-plan, --fixtures: exit 0, no test run
        verdict="FAILED: NO TEST RAN"
        failed=1
        ;;
    *)
        verdict="FAILED (pytest exit $rc)"
        failed=1
        ;;
    esac
    printf '  %-18s %-32s %s  (%ss)\n' "$backend:" "$verdict" "${COUNTS[$backend]}" "${DURATION[$backend]}"
done
if [ "${#EMPTY_RUNS[@]}" -gt 0 ]; then
    echo "  NO TESTS COLLECTED on: ${EMPTY_RUNS[*]}${EXTRA[*]:+ (PYTEST_ARGS: $PYTEST_ARGS)}"
fi
echo "  wall time: $((SECONDS - T0))s"
echo "==================================================="
echo "total: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
exit "$failed"
