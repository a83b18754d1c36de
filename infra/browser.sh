#!/usr/bin/env bash
# The real-browser check of `chaoslingr report --format html` files: Debian's Chromium
# (/usr/bin/chromium, package `chromium`) driven by playwright-core from npm (pinned in
# infra/browser/package.json and package-lock.json; Playwright's own browser downloads are
# never used), run by infra/browser/check-report.mjs with Node 20 or newer. playwright-core
# is installed into infra/.browser (ignored by git, safe to delete), only when missing or
# when the lock file changed.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$INFRA_DIR/browser"
NODE_DIR="$INFRA_DIR/.browser"
WITNESS="$NODE_DIR/node_modules/playwright-core/package.json"
DEFAULT_CHROMIUM=/usr/bin/chromium
CHROMIUM="${CHAOSLINGR_CHROMIUM:-$DEFAULT_CHROMIUM}"
NODE="${CHAOSLINGR_NODE:-node}"
NPM="${CHAOSLINGR_NPM:-npm}"
# shellcheck source=infra/node.sh
source "$INFRA_DIR/node.sh"

usage() {
    cat <<USAGE
Usage: infra/browser.sh COMMAND

Commands:
  install     install Debian's chromium package if $DEFAULT_CHROMIUM is missing (apt-get,
              as root or with sudo), and infra/browser/package-lock.json (playwright-core)
              into infra/.browser with \`npm ci\` (only when missing or when the lock changed)
  check FILE.html [--charts a,b,c] [--screenshot OUT.png] [--width N] [--max-height N]
              install if needed, then check the report in headless Chromium, loaded once
              with JavaScript off and once on: no request besides the file itself, no
              console or page errors, no <script>, each chart (default: every
              <svg data-chart> in the page) present once, visible, at least 200x100 px, with
              a <title> and a drawn .mark, and a <table data-table="gaps">. Prints one line
              of JSON; exits 0 when the report passes, 1 when it fails (reasons on stderr),
              2 on bad usage, 3 when the browser cannot run
              --charts a,b,c        the charts that must be there
              --screenshot OUT.png  full-page screenshot (JavaScript off)
              --width N             viewport width in CSS px (default 1100)
              --max-height N        cut the screenshot N CSS px from the top
  help        show this text

Environment:
  CHAOSLINGR_CHROMIUM   Chromium used (default: $DEFAULT_CHROMIUM; only the default is
                        installed by \`install\`)
  CHAOSLINGR_NODE       Node.js used (default: node; version 20 or newer)
  CHAOSLINGR_NPM        npm used (default: npm)
  CHAOSLINGR_BROWSER_TIMEOUT
                        seconds before a check run is given up (default 60)
USAGE
}

log() { printf '%s\n' "browser: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

chromium_version() {
    # Debian's launcher script may print shell noise on stderr; the version is on stdout.
    "$CHROMIUM" --version 2>/dev/null | head -n 1
}

# apt-get as root, or through sudo (non-interactive unless there is a terminal to ask on).
apt_get() {
    local -a run=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    if ((EUID == 0)); then
        "${run[@]}" "$@"
    elif [[ -t 0 ]]; then
        sudo "${run[@]}" "$@"
    else
        sudo -n "${run[@]}" "$@"
    fi
}

install_chromium() {
    if [[ -x "$CHROMIUM" ]]; then
        log "chromium present: $CHROMIUM ($(chromium_version || true))"
        return 0
    fi
    local advice="install Debian's chromium package (apt-get install chromium) as root, or set CHAOSLINGR_CHROMIUM to a Chromium executable"
    [[ "$CHROMIUM" == "$DEFAULT_CHROMIUM" ]] ||
        die "CHAOSLINGR_CHROMIUM=$CHROMIUM is not an executable file; point it at Chromium or unset it to use $DEFAULT_CHROMIUM"
    command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM is missing and there is no apt-get here; $advice"
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "$CHROMIUM is missing and this is not root and there is no sudo; $advice"
        [[ -t 0 ]] || sudo -n true 2>/dev/null ||
            die "$CHROMIUM is missing and sudo needs a password (no terminal to ask on); $advice"
    fi
    log "installing Debian's chromium package (apt-get install chromium)"
    local out status=0
    out="$(mktemp)"
    apt_get install -y --no-install-recommends chromium 2>&1 | tee "$out" >&2 || status=$?
    if ((status != 0)) && grep -Eq 'Unable to locate package|has no installation candidate|404 +Not Found|Failed to fetch' "$out"; then
        log "the package lists are missing or stale; running apt-get update and trying again"
        status=0
        apt_get update 2>&1 | tee "$out" >&2 || status=$?
        ((status == 0)) || {
            rm -f "$out"
            die "apt-get update failed (see above); $advice"
        }
        apt_get install -y --no-install-recommends chromium 2>&1 | tee "$out" >&2 || status=$?
    fi
    rm -f "$out"
    ((status == 0)) || die "apt-get install chromium failed (see above); $advice"
    [[ -x "$CHROMIUM" ]] || die "$CHROMIUM is still missing after installing the chromium package; $advice"
    log "installed chromium: $CHROMIUM ($(chromium_version || true))"
}

install_node_modules() {
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 ensure_node_modules "$SOURCE" "$NODE_DIR" "$WITNESS"
}

cmd_install() {
    install_chromium
    install_node_modules
}

cmd_check() {
    if (($# == 0)); then
        log "error: check needs a report file"
        usage >&2
        exit 2
    fi
    cmd_install
    export CHAOSLINGR_CHROMIUM="$CHROMIUM"
    export CHAOSLINGR_BROWSER_NODE_DIR="$NODE_DIR"
    local status=0
    # check-report.mjs has its own timeout; this one only catches a wedged Node.js.
    local timeout=$((${CHAOSLINGR_BROWSER_TIMEOUT:-60} + 30))
    if command -v timeout >/dev/null 2>&1; then
        timeout --kill-after=10 "$timeout" "$NODE" "$SOURCE/check-report.mjs" "$@" || status=$?
        if ((status == 124 || status == 137)); then
            log "error: the check did not finish in $timeout s"
            status=1
        fi
    else
        "$NODE" "$SOURCE/check-report.mjs" "$@" || status=$?
    fi
    return "$status"
}

case "${1:-help}" in
install) cmd_install ;;
check)
    shift
    cmd_check "$@"
    ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
