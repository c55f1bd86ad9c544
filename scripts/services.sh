#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + Redis 7 for the test suite and the demo.
#
#   scripts/services.sh start    # (re)start both on free loopback ports, write .services/env
#   scripts/services.sh env      # print the env file: eval "$(scripts/services.sh env)"
#   scripts/services.sh status   # say what runs
#   scripts/services.sh stop     # stop both; safe to call twice or when nothing runs
#
# Why this exists instead of "use the system PostgreSQL": tests must never touch a developer's
# own databases, parallel checkouts must not collide on ports, and CI starts from a bare
# machine. So every start is a fresh cluster in the repo's git-ignored .services/ on ports the
# kernel hands us, and nothing depends on systemd or on a system-wide service.
#
# Environment knobs (all optional):
#   ARC_SERVICES_DIR     state dir (default: <repo>/.services; `make test` uses .services/test,
#                        `make worker` .services/worker and `make demo` .services/demo-$PORT, so
#                        they never stop each other's servers)
#   ARC_PG_SYSTEM_USER   unprivileged user that owns the cluster when run as root (default arc-pg;
#                        initdb refuses to run as root)
set -euo pipefail

ARC_LOG_TAG=services
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES_DIR="${ARC_SERVICES_DIR:-$ARC_REPO_ROOT/.services}"
PG_SYS_USER="${ARC_PG_SYSTEM_USER:-arc-pg}"
ENV_FILE="$SERVICES_DIR/env"
PG_DB_USER=arc
PG_DB_NAME=arc

# --------------------------------------------------------------------------- tools

PG_BIN=""

# Locate initdb/pg_ctl: PATH first (Debian symlinks them there on these machines), then the
# newest /usr/lib/postgresql/*/bin. pg_ctl must sit beside `postgres`, so we keep the resolved
# directory rather than the symlink's.
find_pg_bin() {
    local cand dir
    if cand="$(command -v initdb 2>/dev/null)"; then
        dir="$(dirname "$(readlink -f "$cand")")"
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            PG_BIN="$dir"
            return 0
        fi
    fi
    for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            PG_BIN="$dir"
            return 0
        fi
    done
    return 1
}

pg_client() {
    # psql/pg_isready: prefer the server's own directory, fall back to PATH.
    local name="$1"
    if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/$name" ]; then
        echo "$PG_BIN/$name"
    else
        command -v "$name" || die "$name not found (apt-get install postgresql-client)"
    fi
}

ensure_tools() {
    local missing=()
    find_pg_bin || missing+=(postgresql)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    if [ "${#missing[@]}" -gt 0 ]; then
        is_root || die "missing: ${missing[*]}. Install them (apt-get install -y ${missing[*]}) or run this script as root."
        apt_install "${missing[@]}"
        find_pg_bin || die "PostgreSQL installed but initdb/pg_ctl still not found (looked on PATH and /usr/lib/postgresql/*/bin)"
        command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
    fi
}

# Run a command as the cluster owner. As root that is $PG_SYS_USER (initdb refuses root); as any
# other user it is that user.
as_pg() {
    if is_root; then
        # From / so the unprivileged user never trips over an unreadable working directory.
        (cd / && runuser -u "$PG_SYS_USER" -- "$@")
    else
        "$@"
    fi
}

ensure_pg_user() {
    is_root || return 0
    if ! id -u "$PG_SYS_USER" >/dev/null 2>&1; then
        log "creating system user $PG_SYS_USER (owner of the throwaway cluster)"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PG_SYS_USER" 2>/dev/null ||
            id -u "$PG_SYS_USER" >/dev/null 2>&1 ||
            die "could not create system user $PG_SYS_USER"
    fi
}

# --------------------------------------------------------------------------- state

state() { # state NAME -> value recorded at start, or empty
    if [ -f "$SERVICES_DIR/$1" ]; then cat "$SERVICES_DIR/$1"; fi
}

# A daemon we stopped can linger as a zombie when PID 1 does not reap (containers): that counts as
# gone, otherwise every stop would wait for its timeout.
pid_alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local st
    st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || true)"
    [ "${st%% *}" != "Z" ]
}

# --------------------------------------------------------------------------- PostgreSQL

start_postgres() {
    ensure_pg_user
    local root="$SERVICES_DIR/pg"
    mkdir -p "$root"
    if is_root; then chown "$PG_SYS_USER:" "$root"; fi
    # The cluster owner must reach the data dir; a checkout under /root (mode 700) would not let
    # it, so fall back to a private temp dir in that case.
    if ! as_pg test -w "$root" 2>/dev/null; then
        root="$(mktemp -d "${TMPDIR:-/tmp}/arc-pg.XXXXXX")"
        chown "$PG_SYS_USER:" "$root"
        log "$SERVICES_DIR is not writable by $PG_SYS_USER; cluster goes to $root"
    fi
    echo "$root" >"$SERVICES_DIR/pg.root"
    # Unix socket paths are limited to ~107 bytes; keep the socket out of deep checkouts.
    local sockdir
    sockdir="$(mktemp -d "${TMPDIR:-/tmp}/arc-pgs.XXXXXX")"
    if is_root; then chown "$PG_SYS_USER:" "$sockdir"; fi
    echo "$sockdir" >"$SERVICES_DIR/pg.sockdir"

    local data="$root/data" logf="$root/postgres.log"
    log "initdb ($PG_BIN)"
    if ! as_pg "$PG_BIN/initdb" -D "$data" -U "$PG_DB_USER" --auth=trust -E UTF8 --locale=C \
        --no-sync >"$root/initdb.log" 2>&1; then
        cat "$root/initdb.log" >&2
        die "initdb failed (log above)"
    fi

    local port attempt
    for attempt in 1 2 3; do
        port="$(free_port)"
        log "starting PostgreSQL on 127.0.0.1:$port"
        if as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$logf" -w -t 60 -s \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $sockdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
            start; then
            break
        fi
        # Another process may have taken the port between our probe and postgres' bind.
        if [ "$attempt" -eq 3 ] || ! grep -q "could not bind\|Address already in use" "$logf" 2>/dev/null; then
            tail -n 30 "$logf" >&2 || true
            die "PostgreSQL did not start (log: $logf)"
        fi
        log "port $port was taken meanwhile; retrying"
    done
    echo "$port" >"$SERVICES_DIR/pg.port"

    local isready psql i
    isready="$(pg_client pg_isready)"
    psql="$(pg_client psql)"
    for i in $(seq 1 60); do
        "$isready" -q -h 127.0.0.1 -p "$port" -U "$PG_DB_USER" -d postgres && break
        [ "$i" -eq 60 ] && die "PostgreSQL on port $port is not accepting connections after 30 s (log: $logf)"
        sleep 0.5
    done
    "$psql" -X -q -h 127.0.0.1 -p "$port" -U "$PG_DB_USER" -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE DATABASE $PG_DB_NAME OWNER $PG_DB_USER" >/dev/null ||
        die "could not create database $PG_DB_NAME"
}

stop_postgres() {
    local root data sockdir pid
    root="$(state pg.root)"
    sockdir="$(state pg.sockdir)"
    if [ -n "$root" ] && [ -f "$root/data/PG_VERSION" ]; then
        data="$root/data"
        find_pg_bin || true
        if [ -f "$data/postmaster.pid" ]; then
            pid="$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)"
            if pid_alive "$pid"; then
                log "stopping PostgreSQL (pid $pid)"
                if [ -z "$PG_BIN" ] || ! as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 -s stop; then
                    log "pg_ctl stop failed; killing postmaster $pid"
                    kill -QUIT "$pid" 2>/dev/null || true
                    sleep 1
                    kill -KILL "$pid" 2>/dev/null || true
                fi
            fi
        fi
        rm -rf "$data"
    fi
    # A temp-dir cluster (see start_postgres) lives outside .services: remove it whole.
    case "$root" in
    "" | "$SERVICES_DIR"/*) ;;
    *) rm -rf "$root" ;;
    esac
    [ -n "$sockdir" ] && rm -rf "$sockdir"
    rm -f "$SERVICES_DIR/pg.root" "$SERVICES_DIR/pg.sockdir" "$SERVICES_DIR/pg.port"
}

# --------------------------------------------------------------------------- Redis

start_redis() {
    local dir="$SERVICES_DIR/redis" port attempt i
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        port="$(free_port)"
        log "starting Redis on 127.0.0.1:$port"
        rm -f "$dir/redis.pid"
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize yes --maxmemory-policy noeviction --dir "$dir" \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ||
            die "redis-server refused to start (log: $dir/redis.log)"
        for i in $(seq 1 50); do
            if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
                echo "$port" >"$SERVICES_DIR/redis.port"
                # --daemonize writes the pid file slightly after it starts answering.
                for _ in $(seq 1 20); do
                    [ -s "$dir/redis.pid" ] && break
                    sleep 0.1
                done
                return 0
            fi
            sleep 0.1
        done
        if [ "$attempt" -eq 3 ] || ! grep -q "Address already in use" "$dir/redis.log" 2>/dev/null; then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "Redis did not answer PING on port $port (log: $dir/redis.log)"
        fi
        log "port $port was taken meanwhile; retrying"
    done
}

stop_redis() {
    local dir="$SERVICES_DIR/redis" port pid i
    port="$(state redis.port)"
    pid="$(state redis/redis.pid)"
    if pid_alive "$pid" && grep -qs redis "/proc/$pid/comm" 2>/dev/null; then
        log "stopping Redis (pid $pid)"
        if [ -n "$port" ]; then
            redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
        for i in $(seq 1 50); do
            pid_alive "$pid" || break
            [ "$i" -eq 20 ] && { kill -TERM "$pid" 2>/dev/null || true; }
            sleep 0.1
        done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$SERVICES_DIR/redis.port" "$dir/redis.pid"
}

# --------------------------------------------------------------------------- commands

cmd_stop() {
    [ -d "$SERVICES_DIR" ] || {
        log "nothing to stop"
        return 0
    }
    rm -f "$ENV_FILE"
    stop_redis
    stop_postgres
    log "stopped"
}

cmd_start() {
    local t0=$SECONDS
    ensure_tools
    if [ -d "$SERVICES_DIR" ]; then
        # Fresh every start: stop whatever a previous start left, then wipe its state and logs.
        # Only our own entries: `make test` and `make worker` keep their own instances in
        # subfolders (.services/test, .services/worker) that must survive a plain start.
        cmd_stop 2>/dev/null || true
        rm -rf "$SERVICES_DIR"/{env,env.tmp,pg,pg.root,pg.sockdir,pg.port,redis,redis.port}
    fi
    mkdir -p "$SERVICES_DIR"
    # If anything below fails, do not leave half the services running.
    trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed; cleaning up"; cmd_stop || true; fi' EXIT
    start_postgres
    start_redis
    local pg_port redis_port
    pg_port="$(state pg.port)"
    redis_port="$(state redis.port)"
    cat >"$ENV_FILE.tmp" <<EOF
export ARC_PG_HOST=127.0.0.1 ARC_PG_PORT=$pg_port ARC_PG_USER=$PG_DB_USER ARC_PG_NAME=$PG_DB_NAME ARC_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    trap - EXIT
    log "ready in $((SECONDS - t0)) s: PostgreSQL 127.0.0.1:$pg_port (db/user $PG_DB_NAME), Redis 127.0.0.1:$redis_port"
    # `scripts/services.sh env` reads the default state directory: name this one when it is
    # another (`make demo`, `make worker`), or the hint prints another instance's env, or none.
    local env_cmd="scripts/services.sh env"
    if [ "$SERVICES_DIR" != "$ARC_REPO_ROOT/.services" ]; then
        env_cmd="ARC_SERVICES_DIR=$(printf %q "$SERVICES_DIR") $env_cmd"
    fi
    log "env: $ENV_FILE  (source it, or: eval \"\$($env_cmd)\")"
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "services are not running (no $ENV_FILE); run: scripts/services.sh start"
    cat "$ENV_FILE"
}

cmd_status() {
    local rc=0 pg_port redis_port
    pg_port="$(state pg.port)"
    redis_port="$(state redis.port)"
    find_pg_bin || true
    if [ -n "$pg_port" ] && "$(pg_client pg_isready)" -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; then
        echo "postgres: running on 127.0.0.1:$pg_port"
    else
        echo "postgres: not running"
        rc=1
    fi
    if [ -n "$redis_port" ] && [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null || true)" = "PONG" ]; then
        echo "redis: running on 127.0.0.1:$redis_port"
    else
        echo "redis: not running"
        rc=1
    fi
    return $rc
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
