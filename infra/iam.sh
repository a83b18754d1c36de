#!/usr/bin/env bash
# The IAM evaluator the detection lab uses for --enforce-iam: @cloud-copilot/iam-simulate
# from npm (pinned in infra/iam/package.json and package-lock.json), run by
# infra/iam/evaluate.mjs with Node 20 or newer. Installed into infra/.node (ignored by
# git, safe to delete), only when missing or when the lock file changed.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$INFRA_DIR/iam"
NODE_DIR="$INFRA_DIR/.node"
WITNESS="$NODE_DIR/node_modules/@cloud-copilot/iam-simulate/package.json"
NODE="${CHAOSLINGR_NODE:-node}"
NPM="${CHAOSLINGR_NPM:-npm}"
# shellcheck source=infra/node.sh
source "$INFRA_DIR/node.sh"

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

cmd_install() {
    ensure_node_modules "$SOURCE" "$NODE_DIR" "$WITNESS"
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
