# shellcheck shell=bash
# A throwaway PostgreSQL 15 cluster for Lien's PostgreSQL tests.
#
# This file is meant to be *sourced*, not run: sourcing is how the export of
# LIEN_TEST_POSTGRES_URL reaches the `cargo test` that follows, and how the EXIT trap that stops
# the cluster lives exactly as long as the shell that uses it. `.ci/run` sources it just before
# the tests. If PostgreSQL cannot be installed, started or reached, sourcing it fails (returns
# non-zero with a message on stderr) instead of leaving the variable unset, because an unset
# variable would let the PostgreSQL suite be skipped without anyone noticing.
#
# Local use (bash only), from the repository root:
#
#   bash -c 'source .ci/postgres.sh && cargo test -p lien-store'   # one command, then cleaned up
#   ( source .ci/postgres.sh && cargo test --workspace )          # the same in a subshell
#
#   source .ci/postgres.sh     # or in your interactive shell: the cluster lives until the shell
#   lien_pg_stop               # exits, or until you stop it (and remove its files) yourself
#
# What it does:
#   - uses the server binaries in /usr/lib/postgresql/15/bin (Debian/Ubuntu layout), installing
#     the `postgresql` package with apt-get where they are missing; LIEN_PG_BINDIR overrides the
#     directory (and then nothing is installed: an explicit directory is taken as given);
#   - runs the server as the `postgres` OS user when invoked as root (CI runs as root, and initdb
#     refuses to run as root), or as the current user otherwise;
#   - keeps everything (data, log, unix socket) in one `mktemp -d` directory, listens only on
#     127.0.0.1 on a port the kernel reports free, and trusts every local connection: it is a
#     throwaway cluster for tests, reachable only from this machine, with fsync off for speed;
#   - creates the database `lien_test` and exports
#     LIEN_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/lien_test
#     (replacing any value it had), after checking it answers `select 1`;
#   - stops the cluster and removes the directory on exit, also when the shell exits on an error.
#     The EXIT trap replaces any EXIT trap the sourcing shell already had.
#
# Every step is checked explicitly rather than through `set -e`, because errexit is switched off
# inside anything run as part of an `if`, `&&` or `||` (`source .ci/postgres.sh || exit 1`), and
# the failure must be reported either way. The script is also safe under `set -u` and pipefail.

if [ -z "${BASH_VERSION:-}" ]; then
    echo "postgres.sh: needs bash (source it from bash)" >&2
    return 2 2>/dev/null || exit 2
fi
if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
    echo "postgres.sh: source this file (source .ci/postgres.sh); running it would export nothing" >&2
    exit 2
fi

_LIEN_PG_BINDIR="${LIEN_PG_BINDIR:-/usr/lib/postgresql/15/bin}"
_LIEN_PG_DIR=""       # the temporary directory; empty when there is nothing to clean up
_LIEN_PG_PORT=""
_LIEN_PG_OWNER=""     # the OS user the server runs as

_lien_pg_log() { echo "postgres.sh: $*" >&2; }

# Runs a command as the cluster's owner, from inside the temporary directory (the owner may not be
# allowed into the caller's working directory, and initdb/pg_ctl complain when they cannot stat it).
_lien_pg_as_owner() {
    if [[ "$_LIEN_PG_OWNER" == "$(id -un)" ]]; then
        (cd "$_LIEN_PG_DIR" && "$@")
    else
        (cd "$_LIEN_PG_DIR" && runuser -u "$_LIEN_PG_OWNER" -- "$@")
    fi
}

# Installs the server binaries where they are missing. Only for the default directory: with
# LIEN_PG_BINDIR set, a missing binary is an error, not something to install.
_lien_pg_ensure_binaries() {
    local b missing=""
    for b in initdb pg_ctl postgres; do
        [[ -x "$_LIEN_PG_BINDIR/$b" ]] || missing+=" $b"
    done
    [[ -z "$missing" ]] && return 0
    if [[ -n "${LIEN_PG_BINDIR:-}" ]]; then
        _lien_pg_log "missing in LIEN_PG_BINDIR=$_LIEN_PG_BINDIR:$missing"
        return 1
    fi
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        _lien_pg_log "missing in $_LIEN_PG_BINDIR:$missing; install PostgreSQL 15 (apt-get install postgresql" \
            "as root on Debian 12) or point LIEN_PG_BINDIR at its bin directory"
        return 1
    fi
    _lien_pg_log "installing PostgreSQL (missing:$missing)"
    # A fresh CI image usually has empty package lists, hence the update.
    if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
        ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2; then
        _lien_pg_log "apt-get install postgresql failed"
        return 1
    fi
    for b in initdb pg_ctl postgres; do
        if [[ ! -x "$_LIEN_PG_BINDIR/$b" ]]; then
            # The distribution's `postgresql` is another major version (Debian 12's is 15).
            _lien_pg_log "installed postgresql, but $_LIEN_PG_BINDIR/$b is still missing" \
                "(is the distribution's PostgreSQL not version 15? try apt-get install postgresql-15)"
            return 1
        fi
    done
}

# Prints a TCP port on 127.0.0.1 that nobody listens on. The kernel picks it (bind to port 0);
# between closing that socket and the server binding it another process could take it, so the
# caller retries with a new port when the server reports the address in use.
_lien_pg_free_port() {
    local port="" i
    if command -v python3 >/dev/null 2>&1; then
        port="$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null)" || port=""
    fi
    for i in 1 2 3 4 5 6 7 8 9 10; do
        # Without python3, a random port below Linux's ephemeral range (32768-60999).
        [[ "$port" =~ ^[0-9]+$ ]] || port=$((20000 + RANDOM % 10000))
        # Free means nothing accepts a connection there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
        port=""
    done
    return 1
}

# Stops the server (fast: nothing in a throwaway cluster is worth a clean shutdown) and removes the
# directory. Idempotent, and keeps the exit status it was called with.
_lien_pg_cleanup() {
    local status=$? pid
    if [[ -n "$_LIEN_PG_DIR" && -d "$_LIEN_PG_DIR" ]]; then
        if [[ -f "$_LIEN_PG_DIR/data/postmaster.pid" ]]; then
            if ! _lien_pg_as_owner "$_LIEN_PG_BINDIR/pg_ctl" stop -D "$_LIEN_PG_DIR/data" -m immediate -w -t 30 \
                >/dev/null 2>&1; then
                pid="$(head -n 1 "$_LIEN_PG_DIR/data/postmaster.pid" 2>/dev/null)"
                [[ "$pid" =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
            fi
        fi
        rm -rf -- "$_LIEN_PG_DIR"
    fi
    _LIEN_PG_DIR=""
    return "$status"
}

# Stops the cluster now, for interactive use; the EXIT trap then has nothing left to do.
lien_pg_stop() {
    _lien_pg_cleanup
    unset LIEN_TEST_POSTGRES_URL
}

_lien_pg_start() {
    local bin="$_LIEN_PG_BINDIR" attempt port url log answer

    _lien_pg_ensure_binaries || return 1

    if [[ "$(id -u)" == 0 ]]; then
        _LIEN_PG_OWNER=postgres
        if ! id postgres >/dev/null 2>&1; then
            _lien_pg_log "running as root but there is no 'postgres' OS user to run the server as"
            return 1
        fi
        if ! command -v runuser >/dev/null 2>&1; then
            _lien_pg_log "running as root but runuser (util-linux) is missing"
            return 1
        fi
    else
        _LIEN_PG_OWNER="$(id -un)"
    fi

    # The trap goes in before anything exists, so a failure at any later step still cleans up.
    _LIEN_PG_DIR="$(mktemp -d -t lien-pg.XXXXXX)" || { _LIEN_PG_DIR=""; _lien_pg_log "mktemp -d failed"; return 1; }
    trap _lien_pg_cleanup EXIT
    # A non-interactive shell killed by a signal would otherwise skip its EXIT trap. (Not in an
    # interactive shell, where Ctrl-C must not end the shell.)
    if [[ $- != *i* ]]; then
        trap 'exit 129' HUP
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    if [[ "$_LIEN_PG_OWNER" != "$(id -un)" ]] && ! chown "$_LIEN_PG_OWNER": "$_LIEN_PG_DIR"; then
        _lien_pg_log "cannot chown $_LIEN_PG_DIR to $_LIEN_PG_OWNER"
        return 1
    fi
    log="$_LIEN_PG_DIR/server.log"

    # -U postgres: the superuser is called postgres whoever runs initdb, so the URL is the same
    # locally and in CI. Trust authentication: see the top of this file.
    if ! _lien_pg_as_owner "$bin/initdb" -D "$_LIEN_PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale \
        --no-sync >"$_LIEN_PG_DIR/initdb.log" 2>&1; then
        _lien_pg_log "initdb failed:"
        sed 's/^/    /' "$_LIEN_PG_DIR/initdb.log" >&2
        return 1
    fi

    for attempt in 1 2 3; do
        port="$(_lien_pg_free_port)" || { _lien_pg_log "found no free TCP port on 127.0.0.1"; return 1; }
        # The settings go on the command line (-c), overriding postgresql.conf; -k puts the unix
        # socket in the temporary directory instead of /var/run/postgresql, which may not exist.
        rm -f -- "$log"
        if _lien_pg_as_owner "$bin/pg_ctl" start -D "$_LIEN_PG_DIR/data" -l "$log" -w -t 60 -s \
            -o "-h 127.0.0.1 -p $port -k '$_LIEN_PG_DIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            >/dev/null 2>&1; then
            _LIEN_PG_PORT="$port"
            break
        fi
        if ! grep -q "already in use" "$log" 2>/dev/null || [[ "$attempt" == 3 ]]; then
            _lien_pg_log "the server did not start (port $port); its log:"
            sed 's/^/    /' "$log" >&2 2>/dev/null
            return 1
        fi
        _lien_pg_log "port $port was taken meanwhile; trying another"
    done

    if ! "$bin/createdb" -h 127.0.0.1 -p "$_LIEN_PG_PORT" -U postgres lien_test >&2; then
        _lien_pg_log "createdb lien_test failed"
        return 1
    fi

    # Reached over TCP, exactly as the tests will reach it.
    url="postgres://postgres@127.0.0.1:$_LIEN_PG_PORT/lien_test"
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$_LIEN_PG_PORT" -d lien_test; then
        _lien_pg_log "the server started but pg_isready does not see it on 127.0.0.1:$_LIEN_PG_PORT"
        return 1
    fi
    answer="$("$bin/psql" "$url" -XAtq -c 'select 1' 2>&1)"
    if [[ "$answer" != 1 ]]; then
        _lien_pg_log "the server started but $url does not answer select 1: $answer"
        return 1
    fi
    export LIEN_TEST_POSTGRES_URL="$url"
    _lien_pg_log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') up;" \
        "LIEN_TEST_POSTGRES_URL=$LIEN_TEST_POSTGRES_URL"
}

if ! _lien_pg_start; then
    _lien_pg_log "error: no PostgreSQL for the tests; failing rather than skipping the PostgreSQL suite"
    _lien_pg_cleanup
    unset LIEN_TEST_POSTGRES_URL
    return 1
fi
