# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Sourced, never executed.
#
# Kept tiny on purpose: the scripts must run on a bare Debian 12 (CI starts from a fresh clone
# on a machine that may lack Redis or Chromium), so everything here is plain bash + coreutils.

# shellcheck disable=SC2034  # used by the scripts that source this file
ARC_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# runuser/useradd live in sbin, which minimal CI environments sometimes leave off PATH.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac

log() { printf '[%s] %s\n' "${ARC_LOG_TAG:-arc}" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "${ARC_LOG_TAG:-arc}" "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# apt_install PKG... — install Debian packages, running `apt-get update` at most once per hour
# (the package lists in a fresh container are often months old and give 404s, but updating on
# every `make test` would waste ~10 s each time).
apt_install() {
    is_root || die "need root to install Debian packages: $* (install them yourself, or run as root)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | head -n1)" ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        # Lists that did not change keep their old mtime; record that we did update.
        touch /var/lib/apt/lists/*Packages* 2>/dev/null || true
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

# free_port — ask the kernel for a free TCP port on loopback (bind to 0, read it back).
free_port() {
    local py
    py="$(command -v python3 || command -v python || true)"
    [ -n "$py" ] || die "python3 is needed to pick a free port"
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# port_in_use PORT — whether something listens on 127.0.0.1:PORT (a bind that fails; with
# SO_REUSEADDR, as Django's runserver binds, so a socket in TIME_WAIT does not count).
port_in_use() {
    local py
    py="$(command -v python3 || command -v python || true)"
    [ -n "$py" ] || die "python3 is needed to check a port"
    ! "$py" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# throwaway_services STATE_DIR — start PostgreSQL + Redis (scripts/services.sh, state in
# STATE_DIR), load their ARC_* variables into the environment, and stop them when the calling
# script exits (for `make demo` and `make worker` when no Redis was given). A second Ctrl-C
# (make and the terminal both deliver one) must not cut the stop short.
throwaway_services() {
    export ARC_SERVICES_DIR="$1"
    "$ARC_REPO_ROOT"/scripts/services.sh start
    trap 'trap "" INT TERM; "$ARC_REPO_ROOT/scripts/services.sh" stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # shellcheck disable=SC1091
    . "$1/env"
}
