"""Reads the detection lab's call log from the end-to-end tests, where IAM was enforced
(`chaoslingr-lab --enforce-iam` with the function policies rendered from
terraform/modules/function-policies), and fails when a call of a function was denied.

The function binaries run through the lab with their own access key ids (AKIDINJECT,
AKIDJUDGE, AKIDNOTIFY, AKIDARCHIVE), so each call is attributed to its function and
evaluated against that function's policy. A hub deployment's inject and judge (the root
module's policies when `targets` is set: sts:AssumeRole on the target roles, metrics and
the topic, no EC2 or detector permission) run with AKIDHUBINJECT and AKIDHUBJUDGE and
are checked as the functions `hub-inject` and `hub-judge`, like the others: a denied
call fails, and so does having no calls. A denied call means the deployed role would
refuse what the code does. The only denials expected there are a service control
policy's explicit Deny: a test playing a preventive control (`--scp`), where `prevented`
is the outcome under test. Tests that expect the functions' own policies to deny
(tests/e2e/iam.rs) keep their own call log and never write to this one.

Every function call must also have been evaluated: a call with `allowed: null` came from
a lab without enforcement, which would make this check vacuous.

Many accounts: a call signed with credentials an `sts:AssumeRole` through the lab handed
out carries the `role_arn` it acts as; all such calls, whatever the account and
whichever function assumed the role (a hub's inject and judge do), are attributed to one
function, `target-role`, and checked like the functions' against the role's rendered
policy (the policies file's role ARN keys). It must have calls when the policies name a
role. An `AssumeRole` the lab itself refused (`--deny-assume-role`, a test playing a
role missing in one account; `lab_denied_assume_role: true`) is expected, not a failure;
its `iam_allowed` tells whether IAM enforcement evaluated it first.

Per function it reports the distinct actions called and allowed and, given the rendered
policies, the granted actions no test exercised (information, not a failure: some are
used by AWS on the function's behalf, such as logs, the dead-letter queue and X-Ray).

Usage: python infra/iam_check.py --calls CALLS.jsonl [--policies POLICIES.json]
"""

import argparse
import collections
import json
import pathlib
import sys

FUNCTIONS = {
    "AKIDINJECT": "inject",
    "AKIDJUDGE": "judge",
    "AKIDNOTIFY": "notify",
    "AKIDARCHIVE": "archive",
    # A hub deployment's (targets set): their own calls are sts:AssumeRole, metrics and SNS.
    "AKIDHUBINJECT": "hub-inject",
    "AKIDHUBJUDGE": "hub-judge",
}
# Calls made with assumed-role credentials (any account) are this function's.
TARGET_ROLE = "target-role"


def function_of(entry):
    """The function a call is attributed to: the target role for assumed-role credentials,
    else the function whose access key signed it (None: not a function's call)."""
    if entry.get("role_arn"):
        return TARGET_ROLE
    return FUNCTIONS.get(entry.get("access_key"))


def is_role_arn(key):
    return key.startswith("arn:") and ":role/" in key


def expected_denial(entry):
    """A service control policy's explicit Deny: a preventive control under test."""
    return entry.get("explicit_deny") is True and any(
        str(m.get("policy", "")).startswith("scp") for m in entry.get("matched") or []
    )


def granted_actions(policy):
    actions = set()
    for statement in policy.get("Statement", []):
        if statement.get("Effect") == "Allow":
            action = statement.get("Action", [])
            actions.update([action] if isinstance(action, str) else action)
    return actions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", required=True, help="the lab's call log written during the end-to-end tests")
    parser.add_argument("--policies", help="the rendered function policies (infra/terraform.sh policies)")
    args = parser.parse_args()
    calls_path = pathlib.Path(args.calls)
    if not calls_path.is_file():
        sys.exit(f"iam_check: {args.calls} does not exist: run the end-to-end tests (cargo xtask test) first")
    policies = json.loads(pathlib.Path(args.policies).read_text()) if args.policies else {}

    called = collections.defaultdict(set)
    allowed = collections.defaultdict(set)
    counts = collections.Counter()
    problems = []
    prevented = 0
    refused_assume_role = 0
    for number, line in enumerate(calls_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"iam_check: {calls_path}:{number} is not one JSON call ({e}): {line[:120]}")
        function = function_of(entry)
        if not function:
            continue
        action = entry["action"]
        if entry.get("lab_denied_assume_role"):
            # The lab refused it (--deny-assume-role): a test playing a missing role.
            if "iam_allowed" in entry and entry["iam_allowed"] is None:
                problems.append(f"{function}: {action} (line {number}) was not evaluated: the lab ran without --enforce-iam")
            else:
                refused_assume_role += 1
            continue
        called[function].add(action)
        counts[function] += 1
        if entry.get("allowed") is None:
            problems.append(f"{function}: {action} (line {number}) was not evaluated: the lab ran without --enforce-iam")
        elif entry.get("denied"):
            if expected_denial(entry):
                prevented += 1
                continue
            resources = ", ".join(entry.get("resources") or [])
            what = entry.get("denied_action", action)
            kind = "explicitly denied" if entry.get("explicit_deny") else "not allowed"
            problems.append(f"{function}: {what} on {resources} (line {number}) was {kind} by its policy")
        else:
            allowed[function].add(action)

    role_policies = [p for k, p in policies.items() if is_role_arn(k)]
    checked = sorted(FUNCTIONS.values())
    if role_policies or counts[TARGET_ROLE]:
        checked.append(TARGET_ROLE)
    for function in checked:
        if not counts[function]:
            problems.append(f"{function}: no calls recorded; did its end-to-end tests run?")
            continue
        line = (f"{function}: {counts[function]} calls, {len(called[function])} distinct actions called, "
                f"{len(allowed[function])} allowed")
        if function == TARGET_ROLE:
            granted = set().union(*(granted_actions(p) for p in role_policies)) if role_policies else None
        else:
            key = next(k for k, f in FUNCTIONS.items() if f == function)
            granted = granted_actions(policies[key]) if key in policies else None
        if granted is not None:
            unused = sorted(granted - called[function])
            line += f"; granted but not called in these tests: {', '.join(unused) if unused else 'none'}"
        print(line)
        for action in sorted(called[function]):
            print(f"    {'allowed' if action in allowed[function] else 'DENIED '} {action}")
    if prevented:
        print(f"{prevented} calls explicitly denied by a test's service control policy (expected: `prevented`)")
    if refused_assume_role:
        print(f"{refused_assume_role} AssumeRole calls refused by the lab's --deny-assume-role (expected: a missing role)")
    if problems:
        print("\nIAM refused what the functions do:")
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)
    print("Every call of the functions was evaluated against its policy and allowed.")


if __name__ == "__main__":
    main()
