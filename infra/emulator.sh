#!/usr/bin/env bash
# The local AWS API emulator for ChaoSlingr: moto server, on 127.0.0.1 only.
#
# Everything lives next to this script: the Python venv in infra/.venv, the running
# server's pid, port and log in infra/.run. Both are ignored by git and safe to delete.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$INFRA_DIR/.venv"
RUN_DIR="$INFRA_DIR/.run"
REQUIREMENTS="$INFRA_DIR/requirements.txt"
PID_FILE="$RUN_DIR/emulator.pid"
PORT_FILE="$RUN_DIR/emulator.port"
LOG_FILE="$RUN_DIR/emulator.log"
HOST="127.0.0.1"
PYTHON="${CHAOSLINGR_PYTHON:-python3}"
READY_TIMEOUT="${CHAOSLINGR_EMULATOR_TIMEOUT:-30}"
# shellcheck source=infra/venv.sh
source "$INFRA_DIR/venv.sh"

usage() {
    cat <<EOF
Usage: infra/emulator.sh COMMAND

Runs the AWS API emulator (moto server, pinned in infra/requirements.txt) on
$HOST for the local lab, the demo and the tests. It never talks to AWS.

Commands:
  install   create infra/.venv and install infra/requirements.txt into it
            (only when missing or when requirements.txt changed)
  start     install if needed, start the emulator on a free port of $HOST in the
            background and wait until it answers; prints its endpoint URL
            (http://$HOST:PORT) as the last line. If it is already running,
            just prints the URL.
  stop      stop the emulator (does nothing when it is not running)
  status    say whether the emulator is running, and where; exit 0 if it is, 1 if not
  url       print the endpoint URL of the running emulator; exit 1 if none
  help      show this text

Files (ignored by git):
  infra/.venv                  the Python venv (moto, boto3)
  infra/.run/emulator.log      the server's log
  infra/.run/emulator.pid      its process id
  infra/.run/emulator.port     its port

Environment:
  CHAOSLINGR_PYTHON            Python used to create the venv (default: python3)
  CHAOSLINGR_EMULATOR_TIMEOUT  seconds to wait for readiness (default: 30)

Use it from a shell:
  export AWS_ENDPOINT_URL="\$(infra/emulator.sh start)" AWS_REGION=us-east-1 \\
         AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
EOF
}

# Progress and errors go to stderr, so that stdout carries only the data asked for.
log() { printf '%s\n' "emulator: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- install ---------------------------------------------------------------------------

cmd_install() {
    ensure_venv "$VENV" "$REQUIREMENTS" "$VENV/bin/moto_server" || return 0
    local version
    version="$("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
    log "installed moto $version from infra/requirements.txt"
}

# --- process bookkeeping ---------------------------------------------------------------

# Is PID a live process? A zombie (dead, not yet reaped) is not.
alive() {
    local pid="$1" stat
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
        stat="${stat##*) }"
        [[ "${stat%% *}" != Z ]]
    fi
}

# Is PID a live moto server process (not a zombie, not a recycled pid)?
is_emulator_pid() {
    local pid="$1"
    alive "$pid" || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        # A zombie has an empty command line; a recycled pid has another one.
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server
    elif command -v ps >/dev/null 2>&1; then
        ps -p "$pid" -o args= 2>/dev/null | grep -q moto_server
    else
        return 0
    fi
}

# Prints the pid of the running emulator; fails if there is none.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    is_emulator_pid "$pid" || return 1
    printf '%s\n' "$pid"
}

recorded_port() {
    local port
    port="$(cat "$PORT_FILE" 2>/dev/null || true)"
    [[ "$port" =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "$port"
}

# Does the emulator on PORT answer GET /moto-api/ with 200?
answers() {
    "$VENV/bin/python" - "$HOST" "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/moto-api/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# Wait until PID answers on PORT. 0: ready; 1: the process died; 2: timed out.
wait_ready() {
    local pid="$1" port="$2" deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        # Only `alive`: right after the fork the command line is still this script's.
        alive "$pid" || return 1
        answers "$port" && return 0
        sleep 0.25
    done
    answers "$port" && return 0
    return 2
}

free_port() {
    "$VENV/bin/python" - "$HOST" <<'PY'
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((sys.argv[1], 0))
    print(s.getsockname()[1])
PY
}

forget() { rm -f "$PID_FILE" "$PORT_FILE"; }

show_log_tail() {
    if [[ -s "$LOG_FILE" ]]; then
        log "last lines of $LOG_FILE:"
        tail -n 20 "$LOG_FILE" | sed 's/^/    /' >&2
    fi
}

terminate() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        alive "$pid" || return 0
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.25
}

# --- commands --------------------------------------------------------------------------

cmd_start() {
    local pid port
    if pid="$(running_pid)"; then
        if port="$(recorded_port)" && wait_ready "$pid" "$port"; then
            log "already running (pid $pid)"
            printf 'http://%s:%s\n' "$HOST" "$port"
            return 0
        fi
        log "pid $pid does not answer; restarting it"
        terminate "$pid"
    fi
    forget

    cmd_install
    mkdir -p "$RUN_DIR"

    local attempt status
    for attempt in 1 2 3; do
        port="$(free_port)"
        # Detached from this script: stdin from /dev/null and all output to the log, so
        # callers that capture this script's output are not held open by the server.
        nohup "$VENV/bin/moto_server" -H "$HOST" -p "$port" </dev/null >"$LOG_FILE" 2>&1 &
        pid=$!
        printf '%s\n' "$pid" >"$PID_FILE"
        printf '%s\n' "$port" >"$PORT_FILE"

        status=0
        wait_ready "$pid" "$port" || status=$?
        if ((status == 0)); then
            log "started moto server (pid $pid, log infra/.run/emulator.log)"
            printf 'http://%s:%s\n' "$HOST" "$port"
            return 0
        fi
        if ((status == 2)); then
            show_log_tail
            terminate "$pid"
            forget
            die "moto server (pid $pid) did not answer on port $port within ${READY_TIMEOUT}s"
        fi
        # It exited: most likely another process took the port first. Try another one.
        show_log_tail
        terminate "$pid"
        forget
        log "moto server exited on start (attempt $attempt of 3)"
    done
    die "moto server would not start; see $LOG_FILE"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        forget
        log "not running"
        return 0
    fi
    terminate "$pid"
    if alive "$pid"; then
        die "could not stop pid $pid"
    fi
    forget
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid port
    if pid="$(running_pid)" && port="$(recorded_port)"; then
        if answers "$port"; then
            printf 'running: http://%s:%s (pid %s, log %s)\n' "$HOST" "$port" "$pid" "$LOG_FILE"
            return 0
        fi
        printf 'not answering: pid %s on port %s (see %s)\n' "$pid" "$port" "$LOG_FILE"
        return 1
    fi
    printf 'not running\n'
    return 1
}

cmd_url() {
    local pid port
    if pid="$(running_pid)" && port="$(recorded_port)" && answers "$port"; then
        printf 'http://%s:%s\n' "$HOST" "$port"
        return 0
    fi
    die "not running (start it with infra/emulator.sh start)"
}

main() {
    if (($# != 1)); then
        usage >&2
        exit 2
    fi
    case "$1" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url ;;
    help | -h | --help) usage ;;
    *)
        log "unknown command: $1"
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
