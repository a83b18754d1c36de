#!/usr/bin/env python3
"""moto_server for `cargo xtask bench`, with EC2 tag lookups by resource id indexed.

moto finds the tags of one resource (every security group and rule it lists, filters or
renders) by scanning every tag in the region with a regular expression per tag. With
10,000 security groups, 1,000 of them tagged, one listing then costs about 10 million
regex matches: over 20 seconds, past the AWS SDK's per-attempt timeout, and nothing like
EC2, which answers tag filters from indexes. This wrapper answers the one query that
matters here, "the tags of resource <id>", from moto's own per-resource tag dictionary,
which returns exactly what the scan returns (the id is matched whole, and ids hold no
wildcards); every other query goes to moto unchanged. Both sides of the benchmark run
against this same server.

Usage: infra/.venv/bin/python infra/bench/emulator.py -H 127.0.0.1 -p PORT
(the arguments of moto_server).
"""

import sys

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


TagBackend.describe_tags = describe_tags

if __name__ == "__main__":
    sys.exit(main())
