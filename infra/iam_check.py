"""Compares the IAM actions the Terraform module grants each function with the AWS
operations that function's code was seen calling, and fails when either side has one
the other lacks.

The code side comes from the detection lab's call log (`--record-calls`): the end-to-end
tests run the real function binaries through the lab, each with its own access key id
(AKIDINJECT, AKIDJUDGE, AKIDNOTIFY), so every call is attributed to its function. The
IAM side is read from the `data "aws_iam_policy_document"` blocks named after the
functions in terraform/*.tf (every statement, including `dynamic` ones).

Some granted actions are never called by the code itself, and some calls are rare paths
the tests do not always reach. Both lists are below, each entry with its reason; an entry
that stops being true (the grant or the call disappears) fails the check too.

Usage: python infra/iam_check.py --calls CALLS.jsonl [--terraform terraform]
"""

import argparse
import collections
import json
import pathlib
import sys

import hcl2

FUNCTIONS = {"AKIDINJECT": "inject", "AKIDJUDGE": "judge", "AKIDNOTIFY": "notify"}

# Granted, but used by AWS on the function's behalf rather than called by its code.
IMPLICIT = {
    "logs:CreateLogStream": "Lambda writes the function's logs with the execution role",
    "logs:PutLogEvents": "Lambda writes the function's logs with the execution role",
    "sqs:SendMessage": "Lambda sends failed asynchronous invocations to the dead-letter queue",
    "xray:PutTraceSegments": "Lambda sends traces when X-Ray tracing is enabled",
    "xray:PutTelemetryRecords": "Lambda sends traces when X-Ray tracing is enabled",
    "kms:Decrypt": "KMS is called by SNS, SSM or Secrets Manager on the caller's behalf",
    "kms:GenerateDataKey": "SNS encrypts published messages with the topic's KMS key on the caller's behalf",
}

# Called by the code on paths the end-to-end tests reach only by chance, per function.
RARE = {
    "inject": {
        "ec2:DeleteTags": "removes the group marker when an inject steps back after marking failed",
        "ec2:RevokeSecurityGroupIngress": "a stepped-back inject reverts its own rule (reached when two injects race)",
    },
    "notify": {
        "secretsmanager:GetSecretValue": "the webhook stored in Secrets Manager instead of SSM (tested with mocks)",
    },
}


def actions_in(node, out):
    """Every string in every `actions` list under `node` (statements and dynamic blocks)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "actions":
                for item in value:
                    for action in item if isinstance(item, list) else [item]:
                        out.add(action)
            else:
                actions_in(value, out)
    elif isinstance(node, list):
        for item in node:
            actions_in(item, out)
    return out


def granted(terraform_dir):
    found = {}
    for path in sorted(pathlib.Path(terraform_dir).glob("*.tf")):
        with open(path) as f:
            doc = hcl2.load(f)
        for data in doc.get("data", []):
            for name, block in data.get("aws_iam_policy_document", {}).items():
                if name in FUNCTIONS.values():
                    if name in found:
                        sys.exit(f"iam_check: two policy documents named `{name}`")
                    found[name] = actions_in(block, set())
    missing = set(FUNCTIONS.values()) - set(found)
    if missing:
        sys.exit(f"iam_check: no `data \"aws_iam_policy_document\"` named {', '.join(sorted(missing))} in {terraform_dir}")
    return found


def called(calls_path):
    seen = collections.defaultdict(set)
    with open(calls_path) as f:
        for line in f:
            entry = json.loads(line)
            function = FUNCTIONS.get(entry["access_key"])
            if function:
                seen[function].add(entry["action"])
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", required=True, help="the lab's call log written during the end-to-end tests")
    parser.add_argument("--terraform", default="terraform", help="the module directory")
    args = parser.parse_args()
    if not pathlib.Path(args.calls).is_file():
        sys.exit(f"iam_check: {args.calls} does not exist: run the end-to-end tests (cargo xtask test) first")

    grants, calls = granted(args.terraform), called(args.calls)
    problems = []
    for function in sorted(FUNCTIONS.values()):
        grant, call, rare = grants[function], calls.get(function, set()), RARE.get(function, {})
        if not call:
            problems.append(f"{function}: no calls recorded; did its end-to-end tests run?")
            continue
        for action in sorted(call - grant):
            problems.append(f"{function}: the code calls {action}, which the module does not grant")
        for action in sorted(grant - call - set(IMPLICIT) - set(rare)):
            problems.append(f"{function}: the module grants {action}, which the code was never seen calling")
        for action in sorted(set(rare) - grant):
            problems.append(f"{function}: {action} is listed as a rare path ({rare[action]}) but is not granted")
        for action in sorted(grant):
            if "*" in action:
                problems.append(f"{function}: wildcard action {action}")
        print(f"{function}: {len(grant)} actions granted, {len(call)} called; "
              f"{len(grant & set(IMPLICIT))} used by AWS on the function's behalf, {len(set(rare) & grant - call)} rare paths not reached this run")
    if problems:
        print("\nIAM and code disagree:")
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)
    print("IAM grants match what each function's code calls.")


if __name__ == "__main__":
    main()
