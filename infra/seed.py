#!/usr/bin/env python3
"""Seed, inspect and reset the local AWS API emulator for the ChaoSlingr lab.

Run it with the lab's Python, which has boto3 (it comes with moto):

    infra/.venv/bin/python infra/seed.py seed    [--endpoint URL] [--region us-east-1]
    infra/.venv/bin/python infra/seed.py receive [--endpoint URL] --queue-url URL [--wait 5] [--save DIR]
    infra/.venv/bin/python infra/seed.py reset   [--endpoint URL]
    infra/.venv/bin/python infra/seed.py history [--endpoint URL] --archive s3://BUCKET/PREFIX
                                                 [--count 400] [--weeks 8] [--seed 7] [--add DIR]

--endpoint defaults to the emulator started by infra/emulator.sh (infra/.run/emulator.port).
Only loopback endpoints are accepted, and only the dummy credentials testing/testing are
used: this script never reads real AWS credentials and never reaches AWS.
"""

import argparse
import ipaddress
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

DUMMY_CREDENTIAL = "testing"
DEFAULT_REGION = "us-east-1"
OPT_IN_TAG = "chaoslingr:opt-in"
VPC_NAME = "chaoslingr-demo"
VPC_CIDR = "10.42.0.0/16"
TOPIC_NAME = "chaoslingr-outcomes"
QUEUE_NAME = "chaoslingr-outcomes-inbox"
PORT_FILE = Path(__file__).resolve().parent / ".run" / "emulator.port"

# name -> (opt-in tag value or None for no tag, [(protocol, from, to, cidr, description)])
SECURITY_GROUPS = {
    "web": (
        "true",
        [
            ("tcp", 443, 443, "0.0.0.0/0", "HTTPS from anywhere"),
            ("tcp", 22, 22, "10.0.0.0/8", "SSH from the internal network"),
        ],
    ),
    "api": ("True", [("tcp", 8080, 8080, "10.0.0.0/8", "API from the internal network")]),
    "batch": ("TRUE", []),
    "legacy": ("false", []),
    "shared": (None, []),
}


# name -> (opt-in tag value or None for no tag, inbound entries, outbound entries); an entry
# is (rule number, protocol number, from port, to port, cidr), allowed. Everything else is
# denied by the default entries (rule 32767).
NETWORK_ACLS = {
    "chaoslingr-demo-acl": (
        "true",
        [(100, "6", 443, 443, "0.0.0.0/0")],
        [(100, "-1", None, None, "0.0.0.0/0")],
    ),
    "chaoslingr-demo-acl-internal": (
        "false",
        [(100, "6", 22, 22, "10.0.0.0/8")],
        [(100, "-1", None, None, "0.0.0.0/0")],
    ),
}
# AWS gives every custom network ACL these entries, which cannot be changed; the emulator
# creates none, so the seed adds them for the ACLs to read as they do in AWS.
DEFAULT_DENY_RULE = 32767


def isolate_from_real_aws():
    """Forget every AWS setting of the caller; use dummy credentials only.

    Runs before boto3 is imported, so no profile, credential file, SSO cache, instance
    metadata or endpoint override of the real environment can take part.
    """
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


def fail(message):
    print(f"seed.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def loopback_endpoint(url):
    """The endpoint, normalised; refuses anything but http on a loopback address."""
    if url is None:
        try:
            port = int(PORT_FILE.read_text().strip())
        except (OSError, ValueError):
            fail("no --endpoint given and no emulator running (start it: infra/emulator.sh start)")
        url = f"http://127.0.0.1:{port}"
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    try:
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if parsed.scheme != "http" or not is_loopback or parsed.port is None:
        fail(f"refusing endpoint {url!r}: only http://127.0.0.1:PORT (the local emulator) is allowed")
    return f"http://{parsed.netloc}"


def clients(endpoint, region, *services):
    import boto3  # after isolate_from_real_aws()

    session = boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIAL,
        aws_secret_access_key=DUMMY_CREDENTIAL,
        region_name=region,
    )
    return [session.client(s, endpoint_url=endpoint) for s in services]


def error_code(err):
    return getattr(err, "response", {}).get("Error", {}).get("Code", "")


# --- seed -----------------------------------------------------------------------------


def ensure_vpc(ec2):
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [VPC_NAME]}])["Vpcs"]
    if found:
        return found[0]["VpcId"]
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": VPC_NAME}])
    return vpc_id


def ensure_group(ec2, vpc_id, name, opt_in, rules):
    from botocore.exceptions import ClientError

    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [name]},
        ]
    )["SecurityGroups"]
    if found:
        group_id = found[0]["GroupId"]
    else:
        optin = "not opted in" if opt_in is None else f"{OPT_IN_TAG}={opt_in}"
        group_id = ec2.create_security_group(
            GroupName=name,
            Description=f"ChaoSlingr demo group {name} ({optin})",
            VpcId=vpc_id,
        )["GroupId"]
    if opt_in is not None:
        ec2.create_tags(Resources=[group_id], Tags=[{"Key": OPT_IN_TAG, "Value": opt_in}])
    for protocol, from_port, to_port, cidr, description in rules:
        try:
            ec2.authorize_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[
                    {
                        "IpProtocol": protocol,
                        "FromPort": from_port,
                        "ToPort": to_port,
                        "IpRanges": [{"CidrIp": cidr, "Description": description}],
                    }
                ],
            )
        except ClientError as err:
            if error_code(err) != "InvalidPermission.Duplicate":
                raise
    return group_id


def ensure_network_acl(ec2, vpc_id, name, opt_in, inbound, outbound):
    from botocore.exceptions import ClientError

    found = ec2.describe_network_acls(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "tag:Name", "Values": [name]},
        ]
    )["NetworkAcls"]
    if found:
        acl_id = found[0]["NetworkAclId"]
    else:
        acl_id = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]["NetworkAclId"]
    tags = [{"Key": "Name", "Value": name}]
    if opt_in is not None:
        tags.append({"Key": OPT_IN_TAG, "Value": opt_in})
    ec2.create_tags(Resources=[acl_id], Tags=tags)
    entries = [(False, e, "allow") for e in inbound] + [(True, e, "allow") for e in outbound]
    entries += [(egress, (DEFAULT_DENY_RULE, "-1", None, None, "0.0.0.0/0"), "deny") for egress in (False, True)]
    for egress, (rule_number, protocol, from_port, to_port, cidr), action in entries:
        entry = {
            "NetworkAclId": acl_id,
            "RuleNumber": rule_number,
            "Protocol": protocol,
            "RuleAction": action,
            "Egress": egress,
            "CidrBlock": cidr,
        }
        if from_port is not None:
            entry["PortRange"] = {"From": from_port, "To": to_port}
        try:
            ec2.create_network_acl_entry(**entry)
        except ClientError as err:
            if error_code(err) != "NetworkAclEntryAlreadyExists":
                raise
    return acl_id


def default_network_acl(ec2, vpc_id):
    found = ec2.describe_network_acls(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default", "Values": ["true"]}]
    )["NetworkAcls"]
    return found[0]["NetworkAclId"] if found else None


def ensure_outcome_inbox(sns, sqs):
    topic_arn = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowChaoSlingrOutcomesTopic",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})

    subscription_arn = None
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page["Subscriptions"]:
            if sub["Protocol"] == "sqs" and sub["Endpoint"] == queue_arn:
                subscription_arn = sub["SubscriptionArn"]
    if subscription_arn is None:
        subscription_arn = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    else:
        sns.set_subscription_attributes(
            SubscriptionArn=subscription_arn,
            AttributeName="RawMessageDelivery",
            AttributeValue="true",
        )
    return topic_arn, queue_url, queue_arn, subscription_arn


def cmd_seed(args):
    endpoint = loopback_endpoint(args.endpoint)
    ec2, sns, sqs = clients(endpoint, args.region, "ec2", "sns", "sqs")
    vpc_id = ensure_vpc(ec2)
    groups = {
        name: ensure_group(ec2, vpc_id, name, opt_in, rules)
        for name, (opt_in, rules) in SECURITY_GROUPS.items()
    }
    network_acls = {
        name: ensure_network_acl(ec2, vpc_id, name, opt_in, inbound, outbound)
        for name, (opt_in, inbound, outbound) in NETWORK_ACLS.items()
    }
    topic_arn, queue_url, queue_arn, subscription_arn = ensure_outcome_inbox(sns, sqs)
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "region": args.region,
                "vpc_id": vpc_id,
                "security_groups": groups,
                "opted_in": [n for n, (v, _) in SECURITY_GROUPS.items() if v and v.lower() == "true"],
                "network_acls": network_acls,
                "opted_in_network_acls": [
                    n for n, (v, _, _) in NETWORK_ACLS.items() if v and v.lower() == "true"
                ],
                "default_network_acl_id": default_network_acl(ec2, vpc_id),
                "topic_arn": topic_arn,
                "queue_url": queue_url,
                "queue_arn": queue_arn,
                "subscription_arn": subscription_arn,
            },
            indent=2,
        )
    )


# --- history --------------------------------------------------------------------------

# The detectors of the seeded history: (technique, detector, chance of detecting, typical
# seconds to detect, how many seconds slower it gets each week). Config gets slower week by
# week, the port alarm misses one change in ten, the ACL rule cannot see some changes.
HISTORY_DETECTORS = [
    ("port-change", "config:vpc-sg-open-only-to-authorized-ports", 0.9, 150.0, 12.0),
    ("port-change", "alarm:chaoslingr-lab-sg-changes", 0.97, 40.0, 0.0),
    ("nacl-entry", "config:nacl-open-only-to-authorized-ports", 0.75, 240.0, 0.0),
    ("nacl-entry", "alarm:chaoslingr-lab-nacl-changes", 0.95, 35.0, -1.0),
]


def history_outcomes(count, weeks, seed, now):
    """`count` outcome objects (chaoslingr.outcome/v1) spread over the last `weeks` weeks:
    mostly concluded experiments, some remediated, some scheduled pre-flight skips."""
    import random

    rng = random.Random(seed)
    span = weeks * 7 * 86400
    out = []
    for i in range(count):
        at = now - span + span * (i + rng.random()) / count
        week = int((at - (now - span)) // (7 * 86400))
        technique = "port-change" if rng.random() < 0.6 else "nacl-entry"
        account = rng.choice(["111111111111", "222222222222", "333333333333"])
        region = rng.choice(["us-east-1", "eu-west-1"])
        experiment_id = "cs-%s-%06x" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at)), rng.getrandbits(24))
        port = rng.randrange(1024, 65535)
        target = ("sg-" if technique == "port-change" else "acl-") + "%017x" % rng.getrandbits(68)
        base = {
            "schema": "chaoslingr.outcome/v1",
            "experiment_id": experiment_id,
            "experiment": technique,
            "account": account,
            "region": region,
            "target_type": "security-group" if technique == "port-change" else "network-acl",
            "target_id": target,
            "security_group_id": target if technique == "port-change" else None,
            "protocol": "tcp",
            "from_port": port,
            "to_port": port,
            "cidr": "0.0.0.0/0",
            "concluded_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at)),
            "dry_run": False,
            "quiet": False,
        }
        roll = rng.random()
        if roll < 0.04:
            base.update(outcome="aborted", quiet=True, reverted=True, detections=[],
                        reason="the kill switch is on (CHAOSLINGR_ENABLED=false)", target_id=None,
                        security_group_id=None, protocol=None, from_port=None, to_port=None, cidr=None)
            out.append(base)
            continue
        detections = []
        for tech, detector, chance, typical, drift in HISTORY_DETECTORS:
            if tech != technique:
                continue
            blind = detector.startswith("config:nacl") and rng.random() < 0.05
            hit = not blind and rng.random() < chance
            seconds = max(1.0, rng.lognormvariate(0, 0.35) * (typical + drift * week)) if hit else None
            detections.append({
                "detector": detector, "detected": hit,
                "seconds_to_detect": round(seconds, 1) if seconds else None,
                "evidence": "seeded history", "could_not_see": blind,
            })
        remediated = roll < 0.12
        detections.append({"detector": "remediation", "detected": remediated,
                           "seconds_to_detect": round(rng.uniform(60, 300), 1) if remediated else None,
                           "evidence": "seeded history", "could_not_see": False})
        caught = any(d["detected"] for d in detections if d["detector"] != "remediation")
        outcome = "remediated" if remediated else ("detected" if caught else "undetected")
        base.update(outcome=outcome, reverted=True, detections=detections,
                    injected_at=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at - 600)),
                    change_id=("sgr-%017x" % rng.getrandbits(68)) if technique == "port-change" else f"{target}/{rng.randrange(90, 99)}",
                    reason="seeded history")
        out.append(base)
    return out


def cmd_history(args):
    endpoint = loopback_endpoint(args.endpoint)
    if not args.archive.startswith("s3://"):
        fail(f"--archive {args.archive!r}: expected s3://BUCKET or s3://BUCKET/PREFIX")
    bucket, _, prefix = args.archive[len("s3://"):].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    (s3,) = clients(endpoint, args.region, "s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except Exception as err:  # already there
        if error_code(err) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    outcomes = history_outcomes(args.count, args.weeks, args.seed, time.time())
    added = 0
    for path in sorted(Path(args.add).glob("*.json")) if args.add else []:
        body = json.loads(path.read_text())
        if isinstance(body, dict) and body.get("schema") == "chaoslingr.outcome/v1":
            outcomes.append(body)
            added += 1
    from concurrent.futures import ThreadPoolExecutor

    def put(o):
        day = o["concluded_at"][:10].replace("-", "/")
        key = f"{prefix}outcomes/v1/{day}/{o['experiment_id']}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(o).encode(), ContentType="application/json")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, outcomes))
    print(json.dumps({"archive": f"s3://{bucket}/{prefix}", "outcomes": len(outcomes), "added": added,
                      "weeks": args.weeks, "seed": args.seed}))


# --- receive --------------------------------------------------------------------------


def cmd_receive(args):
    endpoint = loopback_endpoint(args.endpoint)
    (sqs,) = clients(endpoint, args.region, "sqs")
    deadline = time.monotonic() + max(args.wait, 0)
    messages = []
    while True:
        remaining = deadline - time.monotonic()
        # Long-poll until the first message arrives; after that, only drain what is there.
        wait = 0 if messages else max(0, min(20, int(remaining + 0.999)))
        batch = sqs.receive_message(
            QueueUrl=args.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for message in batch:
            messages.append(message)
            if not args.keep:
                sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not batch and (messages or time.monotonic() >= deadline):
            break

    decoded = []
    for message in messages:
        try:
            body = json.loads(message["Body"])
        except ValueError:
            body = message["Body"]
        attributes = {
            name: value.get("StringValue", value.get("BinaryValue"))
            for name, value in message.get("MessageAttributes", {}).items()
        }
        decoded.append({"body": body, "attributes": attributes})

    if args.save:
        # One file per message body, named by experiment id when it has one: what
        # `chaoslingr report --from DIR` reads.
        save = Path(args.save)
        save.mkdir(parents=True, exist_ok=True)
        for i, message in enumerate(decoded, 1):
            body = message["body"]
            name = body.get("experiment_id") if isinstance(body, dict) else None
            schema = body.get("schema", "message").split("/")[0].split(".")[-1] if isinstance(body, dict) else "message"
            (save / f"{name or 'message-' + str(i)}.{schema}.json").write_text(
                json.dumps(body) if not isinstance(body, str) else body
            )
    if args.json:
        print(json.dumps(decoded, indent=2))
    else:
        for i, message in enumerate(decoded, 1):
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(message["attributes"].items()))
            print(f"--- message {i} of {len(decoded)}" + (f" (attributes: {attrs})" if attrs else ""))
            body = message["body"]
            print(json.dumps(body, indent=2) if not isinstance(body, str) else body)
    if not decoded:
        print(f"seed.py: no message arrived on the queue within {args.wait}s", file=sys.stderr)
        if args.require:
            sys.exit(1)


# --- reset ----------------------------------------------------------------------------


def cmd_reset(args):
    endpoint = loopback_endpoint(args.endpoint)
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            fail(f"reset answered HTTP {response.status}")
    print(f"seed.py: emulator at {endpoint} reset to empty", file=sys.stderr)


def main():
    isolate_from_real_aws()
    parser = argparse.ArgumentParser(
        prog="seed.py",
        description="Seed, inspect and reset the local AWS API emulator (moto) for the ChaoSlingr lab.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p):
        p.add_argument(
            "--endpoint",
            help="emulator URL, http://127.0.0.1:PORT (default: the one infra/emulator.sh started)",
        )
        p.add_argument("--region", default=DEFAULT_REGION, help=f"AWS region (default: {DEFAULT_REGION})")

    p = sub.add_parser(
        "seed",
        help="create the demo VPC, security groups, network ACLs, SNS topic and SQS inbox; print their ids as JSON",
        description="Idempotent: running it again reuses what exists.",
    )
    common(p)
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("receive", help="print the messages waiting on an SQS queue (and delete them)")
    common(p)
    p.add_argument("--queue-url", required=True, help="the queue (seed prints it as queue_url)")
    p.add_argument("--wait", type=int, default=5, help="seconds to wait for a first message (default: 5)")
    p.add_argument("--keep", action="store_true", help="leave the messages on the queue")
    p.add_argument("--json", action="store_true", help="print one JSON array of {body, attributes}")
    p.add_argument("--require", action="store_true", help="exit 1 when no message arrived")
    p.add_argument("--save", metavar="DIR", help="also write each message body to DIR as <experiment id>.<kind>.json")
    p.set_defaults(func=cmd_receive)

    p = sub.add_parser(
        "history",
        help="write a seeded history of outcome objects into an S3 archive in the emulator",
        description="Deterministic for a given --seed and moment: outcomes spread over the last --weeks weeks, "
        "keyed as the archive function keys them (PREFIX/outcomes/v1/YYYY/MM/DD/ID.json). "
        "Creates the bucket when missing.",
    )
    common(p)
    p.add_argument("--archive", required=True, help="s3://BUCKET/PREFIX")
    p.add_argument("--count", type=int, default=400, help="outcomes to write (default: 400)")
    p.add_argument("--weeks", type=int, default=8, help="weeks back from now (default: 8)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    p.add_argument("--add", metavar="DIR", help="also archive the outcome objects saved in DIR (receive --save)")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("reset", help="forget everything the emulator holds")
    common(p)
    p.set_defaults(func=cmd_reset)

    args = parser.parse_args()
    try:
        args.func(args)
    except ImportError as err:
        fail(f"{err}; run this script with infra/.venv/bin/python (infra/emulator.sh install creates it)")
    except Exception as err:  # a short message beats a botocore traceback
        if os.environ.get("CHAOSLINGR_SEED_DEBUG"):
            raise
        fail(f"{type(err).__name__}: {err}")


if __name__ == "__main__":
    main()
