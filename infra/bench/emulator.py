#!/usr/bin/env python3
"""moto_server for `cargo xtask bench`, with two lookups by id indexed.

moto finds the tags of one resource (every security group and rule it lists, filters or
renders) by scanning every tag in the region with a regular expression per tag. With
10,000 security groups, 1,000 of them tagged, one listing then costs about 10 million
regex matches: over 20 seconds, past the AWS SDK's per-attempt timeout, and nothing like
EC2, which answers tag filters from indexes. Likewise it finds a security group by id by
walking every group, so creating 10,000 groups takes quadratic time.

This wrapper answers "the tags of resource <id>" from moto's own per-resource tag
dictionary, and "the security group <id>" from moto's own per-VPC dictionaries keyed by
group id. Both return exactly what the scans return (an id is matched whole, and ids hold
no wildcards); every other query goes to moto unchanged. Both sides of the benchmark run
against this same server.

Usage: infra/.venv/bin/python infra/bench/emulator.py -H 127.0.0.1 -p PORT
(the arguments of moto_server).
"""

import sys

from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.tags import TagBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.server import main

_scan = TagBackend.describe_tags


def describe_tags(self, filters=None):
    ids = (filters or {}).get("resource-id") or []
    if filters and set(filters) == {"resource-id"} and len(ids) == 1 and not any(c in ids[0] for c in "*?["):
        resource_id = ids[0]
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
            for key, value in self.tags.get(resource_id, {}).items()
        ]
    return _scan(self, filters)


def get_security_group_from_id(self, group_id):
    for groups in list(self.groups.values()):
        group = groups.get(group_id)
        if group is not None:
            return group
    return None


TagBackend.describe_tags = describe_tags
SecurityGroupBackend.get_security_group_from_id = get_security_group_from_id

if __name__ == "__main__":
    sys.exit(main())
