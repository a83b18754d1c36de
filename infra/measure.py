#!/usr/bin/env python3
"""Measure one experiment's own cost against the local emulator.

Runs `chaoslingr run` several times against a private moto server on 127.0.0.1 and
reports, from the CLI's own JSON logs (the SDK logs one event per API call attempt, the
engine one per lifecycle step):

- the experiment's own path: process start -> rule injected, and watch ended -> rule
  reverted -> outcome recorded (the detection wait itself is excluded);
- AWS API calls before the watch, per watch tick, and after it, by operation;
- peak resident memory of the process (GNU time's %M).

Usage:
  infra/.venv/bin/python infra/measure.py [--bin target/release/chaoslingr] [--runs 5]

Nothing is sent anywhere but 127.0.0.1.
"""

import argparse
import collections
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"
LOG_FILTER = (
    "warn,chaoslingr_domain=debug,chaoslingr_aws=info,"
    "aws_smithy_runtime::client::orchestrator=debug,"
    + ",".join(f"aws_sdk_{s}=debug" for s in ("ec2", "cloudwatch", "sns", "config", "securityhub"))
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    server = os.path.join(ROOT, "infra/.venv/bin/moto_server")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    sys.exit("moto did not start")


def seed(url):
    kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    for i in range(3):
        ec2.create_security_group(
            GroupName=f"m{i}", Description="measure", VpcId=vpc,
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": [{"Key": "chaoslingr:opt-in", "Value": "true"}]}])
    cw = boto3.client("cloudwatch", **kw)
    cw.put_metric_alarm(AlarmName="fw", MetricName="m", Namespace="n", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName="fw", StateValue="OK", StateReason="baseline")
    return boto3.client("sns", **kw).create_topic(Name="measure")["TopicArn"]


def ts(line):
    return dt.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def one_run(binary, url, topic, detectors, window, poll):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CHAOSLINGR_"))}
    env.update(AWS_ENDPOINT_URL=url, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true", RUST_LOG=LOG_FILTER)
    args = [binary, "run", "--window", window, "--poll-interval", poll, "--topic-arn", topic, "--json", "--log-json"]
    for d in detectors:
        args += ["--detector", d]
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.time()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + args, env=env,
                           capture_output=True, text=True)
        end = time.time()
        peak_kib = int(rss.read().strip().splitlines()[-1])
    lines = []
    for raw in p.stderr.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass
    events = {}
    calls = {"before": collections.Counter(), "watch": collections.Counter(), "after": collections.Counter()}
    phase = "before"
    ticks = 0
    for line in lines:
        msg = line.get("fields", {}).get("message")
        if msg in ("planned", "injected", "watch ended", "watch cancelled", "reverted", "concluded"):
            events.setdefault(msg, ts(line))
        if msg == "tick":
            phase = "watch"
            ticks += 1
        if msg in ("watch ended", "watch cancelled"):
            phase = "after"
        if msg and msg.startswith("beginning attempt #"):
            op = next((sp["rpc.method"] for sp in line.get("spans", []) if "rpc.method" in sp), "?")
            calls[phase][op + ("" if msg.endswith("#1") else " (retry)")] += 1
    outcome = json.loads(p.stdout)["outcome"] if p.stdout.strip() else "?"
    if "injected" not in events:
        sys.exit(f"the run did not inject (outcome {outcome}); exit {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}")
    return {
        "outcome": outcome,
        "to_injected": events["injected"] - start,
        "revert_and_record": events["concluded"] - events["watch ended"],
        "to_reverted": events["reverted"] - events["watch ended"],
        "exit": end - events["concluded"],
        "peak_kib": peak_kib,
        "ticks": ticks,
        "calls": calls,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/chaoslingr"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--window", default="10s")
    ap.add_argument("--poll-interval", default="2s")
    ap.add_argument("--detector", action="append", default=None,
                    help="detectors to watch (default: alarm:fw and securityhub)")
    a = ap.parse_args()
    detectors = a.detector if a.detector is not None else ["alarm:fw", "securityhub"]
    proc, url = start_moto()
    try:
        topic = seed(url)
        runs = [one_run(a.bin, url, topic, detectors, a.window, a.poll_interval) for _ in range(a.runs)]
    finally:
        proc.kill()
        proc.wait()
    med = lambda k: statistics.median(r[k] for r in runs)
    print(f"binary: {a.bin}")
    print(f"runs: {len(runs)}, window {a.window}, poll {a.poll_interval}, detectors: {', '.join(detectors) or 'none'}")
    print(f"outcomes: {collections.Counter(r['outcome'] for r in runs)}")
    print(f"process start -> rule injected:   median {med('to_injected') * 1000:7.1f} ms "
          f"(min {min(r['to_injected'] for r in runs) * 1000:.1f}, max {max(r['to_injected'] for r in runs) * 1000:.1f})")
    print(f"watch ended -> rule reverted:     median {med('to_reverted') * 1000:7.1f} ms")
    print(f"watch ended -> outcome recorded:  median {med('revert_and_record') * 1000:7.1f} ms")
    print(f"recorded -> process exit:         median {med('exit') * 1000:7.1f} ms")
    print(f"experiment's own path (inject + revert + record): median "
          f"{(med('to_injected') + med('revert_and_record')) * 1000:.1f} ms")
    print(f"peak RSS: median {med('peak_kib') / 1024:.1f} MiB, max {max(r['peak_kib'] for r in runs) / 1024:.1f} MiB")
    r = runs[-1]
    for phase in ("before", "watch", "after"):
        total = sum(r["calls"][phase].values())
        extra = f" over {r['ticks']} ticks = {total / max(r['ticks'], 1):.1f} per tick" if phase == "watch" else ""
        label = {"before": "before the watch", "watch": "during the watch", "after": "after the watch"}[phase]
        print(f"API calls {label}: {total}{extra}: {dict(sorted(r['calls'][phase].items()))}")


if __name__ == "__main__":
    main()
