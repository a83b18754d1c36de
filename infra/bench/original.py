#!/usr/bin/env python3
"""The original ChaoSlingr's port-change experiment, re-created in Python for comparison.

Optum's ChaoSlingr (2017, Python 2 on AWS Lambda with boto3) ran one experiment as:

  1. one DescribeSecurityGroups call, without pagination;
  2. keep the groups whose tags opt them in, filtered on the client;
  3. pick one of them at random;
  4. pick tcp or udp, and a random port range starting between 10000 and 65000 that is
     up to 6 ports wide;
  5. AuthorizeSecurityGroupIngress of that range from 0.0.0.0/0.

It never closed the port again. This re-creation does (6) RevokeSecurityGroupIngress of
the same permission right after, so that it opens and closes one port as ChaoSlingr for
Rust does, and the emulator is left as it was. Nothing else is added: no tags on the
rule, no re-check, no record, no retries beyond boto3's defaults.

It exists only so that `cargo xtask bench` can measure the old algorithm against the new
one on the same emulator (see BENCHMARKS.md); it is not part of the product.

Run it with the lab's Python (boto3 comes with moto), pointed at a loopback endpoint:

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_REGION=us-east-1 \\
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
        infra/.venv/bin/python infra/bench/original.py

It prints one JSON line saying what it opened and closed. It refuses any endpoint that
is not http on a loopback address, so it can never touch an AWS account.
"""

import ipaddress
import json
import os
import random
import sys
import urllib.parse

OPT_IN_TAG = "chaoslingr:opt-in"
OPT_IN_VALUE = "true"
PORT_LOW, PORT_HIGH = 10000, 65000
MAX_EXTRA_PORTS = 5
CIDR = "0.0.0.0/0"


def loopback_only():
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    parsed = urllib.parse.urlsplit(endpoint)
    try:
        loopback = ipaddress.ip_address(parsed.hostname or "").is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    if parsed.scheme != "http" or not loopback:
        sys.exit(f"original.py: refusing AWS_ENDPOINT_URL={endpoint!r}: only http://127.0.0.1:PORT is allowed")


def opted_in(group):
    return any(
        tag.get("Key") == OPT_IN_TAG and tag.get("Value", "").lower() == OPT_IN_VALUE
        for tag in group.get("Tags", [])
    )


def main():
    loopback_only()
    import boto3  # after the endpoint check: nothing is created for a non-loopback endpoint

    ec2 = boto3.client("ec2")

    # 1-3: one unpaginated listing, a client-side filter, a random pick.
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"] if opted_in(g)]
    if not groups:
        print(json.dumps({"opened": None, "reason": "no opted-in security group"}))
        return
    group = random.choice(groups)

    # 4: tcp or udp, from 10000-65000, 1 to 6 ports.
    protocol = random.choice(["tcp", "udp"])
    extra = random.randint(0, MAX_EXTRA_PORTS)
    from_port = random.randint(PORT_LOW, PORT_HIGH - extra)
    to_port = from_port + extra
    permission = {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port, "IpRanges": [{"CidrIp": CIDR}]}

    # 5: open it.
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[permission])
    # 6: close it again (the original left it open).
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[permission])

    print(
        json.dumps(
            {
                "opened": group["GroupId"],
                "protocol": protocol,
                "from_port": from_port,
                "to_port": to_port,
                "cidr": CIDR,
                "listed": len(groups),
                "reverted": True,
            }
        )
    )


if __name__ == "__main__":
    main()
