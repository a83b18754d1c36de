#!/usr/bin/env bash
# The ChaoSlingr detection lab (chaoslingr-lab) in front of the local AWS API emulator,
# on 127.0.0.1 only. The lab answers AWS Config itself, plays a firewall and an optional
# auto-remediator, and forwards every other request to the emulator.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA_DIR/.." && pwd)"
RUN_DIR="$INFRA_DIR/.run"
PID_FILE="$RUN_DIR/lab.pid"
PORT_FILE="$RUN_DIR/lab.port"
LOG_FILE="$RUN_DIR/lab.log"
HOST="127.0.0.1"
READY_TIMEOUT="${CHAOSLINGR_LAB_TIMEOUT:-30}"

usage() {
    cat <<EOF
Usage: infra/lab.sh COMMAND [LAB OPTIONS...]

Runs the detection lab (chaoslingr-lab) on a free port of $HOST, in front of the
emulator started by infra/emulator.sh. Point the CLI at the lab's URL: it serves
every service (Config from the lab, everything else from the emulator).

Commands:
  start [OPTIONS]    start the emulator if needed, then the lab with OPTIONS (see
                     \`chaoslingr-lab --help\`, e.g. --config-mode off); prints the
                     lab's endpoint URL (http://$HOST:PORT) as the last line.
                     If the lab is already running it is restarted with OPTIONS.
  stop               stop the lab (the emulator keeps running)
  status             say whether the lab is running; exit 0 if it is, 1 if not
  url                print the lab's endpoint URL; exit 1 if it is not running
  help               show this text

The binary is \$CHAOSLINGR_LAB_BIN if set, else <target>/debug/chaoslingr-lab
(<target> is \$CARGO_TARGET_DIR or ./target), built with cargo when missing.

Files (ignored by git): infra/.run/lab.log, lab.pid, lab.port

Example:
  export AWS_ENDPOINT_URL="\$(infra/lab.sh start --config-latency 5s)" AWS_REGION=us-east-1 \\
         AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  chaoslingr run --detector config:vpc-sg-open-only-to-authorized-ports \\
                 --detector alarm:chaoslingr-lab-firewall
EOF
}

log() { printf '%s\n' "lab: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

alive() {
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q chaoslingr-lab
    fi
}

running_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    alive "$pid" || return 1
    printf '%s\n' "$pid"
}

forget() { rm -f "$PID_FILE" "$PORT_FILE"; }

lab_bin() {
    if [[ -n "${CHAOSLINGR_LAB_BIN:-}" ]]; then
        [[ -x "$CHAOSLINGR_LAB_BIN" ]] || die "CHAOSLINGR_LAB_BIN=$CHAOSLINGR_LAB_BIN is not an executable"
        printf '%s\n' "$CHAOSLINGR_LAB_BIN"
        return
    fi
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target" = /* ]] || target="$ROOT/$target"
    local bin="$target/debug/chaoslingr-lab"
    if [[ ! -x "$bin" ]]; then
        log "building chaoslingr-lab (cargo build -p chaoslingr-lab)"
        (cd "$ROOT" && cargo build --quiet -p chaoslingr-lab >&2) || die "cargo build -p chaoslingr-lab failed"
    fi
    printf '%s\n' "$bin"
}

cmd_stop() {
    local pid i
    if ! pid="$(running_pid)"; then
        forget
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive "$pid" || break
        sleep 0.25
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    forget
    log "stopped (pid $pid)"
}

cmd_start() {
    local upstream bin pid deadline
    upstream="$("$INFRA_DIR/emulator.sh" start | tail -n 1)"
    [[ "$upstream" == http://$HOST:* ]] || die "the emulator did not start (got: $upstream)"
    bin="$(lab_bin)"
    running_pid >/dev/null && cmd_stop
    forget
    mkdir -p "$RUN_DIR"
    nohup "$bin" --upstream "$upstream" --port-file "$PORT_FILE" "$@" </dev/null >"$LOG_FILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            forget
            tail -n 20 "$LOG_FILE" | sed 's/^/    /' >&2
            die "chaoslingr-lab exited on start (see above, or $LOG_FILE)"
        fi
        if [[ -s "$PORT_FILE" ]] && grep -q "listening on" "$LOG_FILE" 2>/dev/null; then
            log "started (pid $pid, forwarding to $upstream, log infra/.run/lab.log)"
            grep -m1 "listening on" "$LOG_FILE" | sed 's/^/    /' >&2
            printf 'http://%s:%s\n' "$HOST" "$(cat "$PORT_FILE")"
            return 0
        fi
        sleep 0.2
    done
    kill -TERM "$pid" 2>/dev/null || true
    forget
    die "chaoslingr-lab did not start listening within ${READY_TIMEOUT}s; see $LOG_FILE"
}

cmd_status() {
    local pid
    if pid="$(running_pid)" && [[ -s "$PORT_FILE" ]]; then
        printf 'running: http://%s:%s (pid %s, log %s)\n' "$HOST" "$(cat "$PORT_FILE")" "$pid" "$LOG_FILE"
        return 0
    fi
    printf 'not running\n'
    return 1
}

cmd_url() {
    if running_pid >/dev/null && [[ -s "$PORT_FILE" ]]; then
        printf 'http://%s:%s\n' "$HOST" "$(cat "$PORT_FILE")"
        return 0
    fi
    die "not running (start it with infra/lab.sh start)"
}

main() {
    (($# >= 1)) || {
        usage >&2
        exit 2
    }
    local command="$1"
    shift
    case "$command" in
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url ;;
    help | -h | --help) usage ;;
    *)
        log "unknown command: $command"
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
