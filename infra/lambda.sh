#!/usr/bin/env bash
# Packages ChaoSlingr's Lambda functions (inject, judge, notify, archive) with
# cargo-lambda, which the project installs from PyPI (with the Zig toolchain it links
# with) into infra/.venv-lambda. Nothing is installed globally.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA_DIR/.." && pwd)"
VENV="$INFRA_DIR/.venv-lambda"
REQUIREMENTS="$INFRA_DIR/lambda-requirements.txt"
PYTHON="${CHAOSLINGR_PYTHON:-python3}"
# The functions, by binary name (target/lambda/<name>/bootstrap.zip); package_of names
# each one's cargo package.
FUNCTIONS=(inject judge notify archive)
# shellcheck source=infra/venv.sh
source "$INFRA_DIR/venv.sh"

usage() {
    # Quoted: the text is printed as is, never expanded (its `cargo ...` is not run).
    cat <<'USAGE'
Usage: infra/lambda.sh COMMAND

Commands:
  install   create infra/.venv-lambda with cargo-lambda and ziglang from
            infra/lambda-requirements.txt (only when missing or changed)
  build     install if needed, then
              cargo lambda build --release --arm64 --output-format zip \
                -p chaoslingr-inject -p chaoslingr-judge -p chaoslingr-notify \
                -p chaoslingr-archive-fn
            and list target/lambda/<function>/bootstrap.zip with their sizes.
            cargo-lambda adds the aarch64-unknown-linux-gnu target with rustup
            when it is missing. Set CHAOSLINGR_LAMBDA_ARCH=x86-64 for x86_64.
  cli       the chaoslingr CLI, built the same way (cargo lambda build --release,
            same architecture setting) and left as target/lambda/chaoslingr/bootstrap:
            sharing the functions' build settings, it reuses most of their compiled
            dependencies. `cargo xtask bench` measures this binary.
  help      show this text

The zips are what the Terraform module deploys (provided.al2023, arm64).
USAGE
}

log() { printf '%s\n' "lambda: $*" >&2; }
# chaoslingr-<function>, except archive: chaoslingr-archive is its library crate.
package_of() {
    case "$1" in
    archive) echo chaoslingr-archive-fn ;;
    *) echo "chaoslingr-$1" ;;
    esac
}
die() {
    log "error: $*"
    exit 1
}

cmd_install() {
    if ensure_venv "$VENV" "$REQUIREMENTS" "$VENV/bin/cargo-lambda"; then
        log "installed $("$VENV/bin/cargo-lambda" lambda --version 2>/dev/null || echo cargo-lambda)"
    fi
}

cmd_build() {
    cmd_install
    local arch="--${CHAOSLINGR_LAMBDA_ARCH:-arm64}"
    local packages=()
    for f in "${FUNCTIONS[@]}"; do packages+=(-p "$(package_of "$f")"); done
    (cd "$ROOT" && PATH="$VENV/bin:$PATH" cargo lambda build --release "$arch" --output-format zip "${packages[@]}") ||
        die "cargo lambda build failed"
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    for f in "${FUNCTIONS[@]}"; do
        local zip="$target/lambda/$f/bootstrap.zip"
        [[ -f "$zip" ]] || die "missing $zip"
        printf '%s\t%s bytes\n' "$zip" "$(stat -c %s "$zip")"
    done
}

cmd_cli() {
    cmd_install
    local arch="--${CHAOSLINGR_LAMBDA_ARCH:-arm64}"
    (cd "$ROOT" && PATH="$VENV/bin:$PATH" cargo lambda build --release "$arch" -p chaoslingr-cli) ||
        die "cargo lambda build of the CLI failed"
}

case "${1:-help}" in
install) cmd_install ;;
build) cmd_build ;;
cli) cmd_cli ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
