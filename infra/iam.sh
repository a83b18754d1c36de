#!/usr/bin/env bash
# The IAM evaluator the detection lab uses for --enforce-iam: @cloud-copilot/iam-simulate
# from npm (pinned in infra/iam/package.json and package-lock.json), run by
# infra/iam/evaluate.mjs with Node 20 or newer. Installed into infra/.node (ignored by
# git, safe to delete), only when missing or when the lock file changed.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$INFRA_DIR/iam"
NODE_DIR="$INFRA_DIR/.node"
STAMP="$NODE_DIR/.chaoslingr-lock.sha256"
WITNESS="$NODE_DIR/node_modules/@cloud-copilot/iam-simulate/package.json"
NODE="${CHAOSLINGR_NODE:-node}"
NPM="${CHAOSLINGR_NPM:-npm}"

usage() {
    cat <<USAGE
Usage: infra/iam.sh COMMAND

Commands:
  install     install infra/iam/package-lock.json into infra/.node with \`npm ci\`
              (only when missing or when the lock file changed)
  evaluator   install if needed, then print the path of the evaluator program
              (infra/iam/evaluate.mjs) that \`chaoslingr-lab --enforce-iam\` runs
  help        show this text

Environment:
  CHAOSLINGR_NODE   Node.js used (default: node; version 20 or newer)
  CHAOSLINGR_NPM    npm used (default: npm)
USAGE
}

log() { printf '%s\n' "iam: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

sha() {
    "$NODE" -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync(process.argv[1])).digest("hex"))' "$1"
}

cmd_install() {
    command -v "$NODE" >/dev/null 2>&1 || die "$NODE not found; Node.js 20 or newer is required"
    command -v "$NPM" >/dev/null 2>&1 || die "$NPM not found; it comes with Node.js"
    local major
    major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
    ((major >= 20)) || die "Node.js $("$NODE" --version) is too old; version 20 or newer is required"
    local want have=""
    want="$(sha "$SOURCE/package-lock.json")"
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ "$want" == "$have" && -f "$WITNESS" ]]; then
        log "up to date (infra/.node matches infra/iam/package-lock.json)"
        return 0
    fi
    mkdir -p "$NODE_DIR"
    cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$NODE_DIR/"
    (cd "$NODE_DIR" && "$NPM" ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
        die "npm ci in infra/.node failed (see above)"
    [[ -f "$WITNESS" ]] || die "$WITNESS is missing after npm ci"
    printf '%s\n' "$want" >"$STAMP"
    log "installed @cloud-copilot/iam-simulate $("$NODE" -p "require('$WITNESS').version") into infra/.node"
}

case "${1:-help}" in
install) cmd_install ;;
evaluator)
    cmd_install
    printf '%s\n' "$SOURCE/evaluate.mjs"
    ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
