#!/usr/bin/env python3
"""Measuring instruments for `cargo xtask bench` (see BENCHMARKS.md).

Each command measures one thing and prints its figures as `name value` lines on stdout
(values never contain spaces), for crates/xtask/src/bench.rs to read:

  seed    --endpoint URL --from A --to B [--vpc-id VPC] [--opt-in-every 10]
          creates security groups bench-A .. bench-(B-1) in one VPC (created when not
          given), every tenth opted in (tag chaoslingr:opt-in=true), straight on the
          emulator with raw query-API calls on one kept-alive connection. moto is not safe
          under concurrent CreateSecurityGroup calls, so they are sequential.
  setup   --endpoint URL
          the SNS topic the outcomes go to, and the SSM parameter holding the loopback
          Slack webhook URL the notify function reads.
  spawn   [--env K=V]... [--interrupt-on TEXT] [--stdout FILE] -- PROGRAM ARGS...
          runs a program to its end and reports wall time (fork to reaped), CPU time
          (ru_utime + ru_stime) and peak RSS (ru_maxrss) from os.wait4, and the exit code,
          forked from a minimal interpreter (spawn.py) so that ru_maxrss does not start at
          this process's own size. With --interrupt-on, sends SIGINT once a stderr line
          contains TEXT.
  lambda  --bin PATH [--env K=V]... [--event JSON]... [--webhook-port PORT]
          serves a loopback Lambda Runtime API (2018-06-01) for one function process:
          the cold start is spawn to its first GET /runtime/invocation/next; then each
          event is invoked in turn. Peak RSS is VmHWM from /proc/PID/status, read after
          each answer (the function then idles waiting for the next event, so the mark
          is final); then the process is killed (Lambda would freeze it) and reaped
          with os.wait4 for its CPU time. (Its ru_maxrss is not used: it would include
          this process's own size from before the exec.)
          --webhook-port serves a loopback Slack webhook there that answers every post
          with 200 (`webhook-url` picks the port and prints the URL for `setup`).
  trace   --upstream URL --log FILE --port-file FILE [--hold-ms 50]
          a loopback proxy in front of URL that appends one JSON line per call (access
          key, action, and when it arrived and was answered): the order and overlap of a
          run's calls, i.e. which of them went out together. Every answer is held back
          --hold-ms, so that calls sent together always overlap, however fast the
          emulator answers one of them. Runs until killed; only for unmeasured runs.

Children get a clean environment: no AWS_*, CHAOSLINGR_* or RUST_LOG of the caller, only
what --env gives. Every endpoint must be http on a loopback address.
"""

import argparse
import http.client
import http.server
import ipaddress
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

OPT_IN_TAG = "chaoslingr:opt-in"
REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC_NAME = "chaoslingr-bench-outcomes"
WEBHOOK_PARAMETER = "/chaoslingr/bench/slack-webhook"
# The query API needs a SigV4 credential scope for the region; moto does not verify the
# signature itself.
SEED_AUTH = f"AWS4-HMAC-SHA256 Credential=BENCHSEED/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0"


def fail(message):
    print(f"probe.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def emit(name, value):
    print(f"{name} {value}", flush=True)


def loopback(url):
    parsed = urllib.parse.urlsplit(url)
    try:
        ok = ipaddress.ip_address(parsed.hostname or "").is_loopback
    except ValueError:
        ok = False
    if parsed.scheme != "http" or not ok or parsed.port is None:
        fail(f"refusing endpoint {url!r}: only http://127.0.0.1:PORT is allowed")
    return parsed


def child_env(pairs):
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AWS_") or k.startswith("CHAOSLINGR_") or k == "RUST_LOG")
    }
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    for key in ("AWS_ENDPOINT_URL", "CHAOSLINGR_LAB_UPSTREAM"):
        if key in env:
            loopback(env[key])
    return env


# --- seed -------------------------------------------------------------------------------


class Query:
    """EC2 query-API calls on one kept-alive loopback connection."""

    def __init__(self, endpoint):
        parsed = loopback(endpoint)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)

    def call(self, params):
        body = urllib.parse.urlencode(dict(params, Version="2016-11-15"))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": SEED_AUTH}
        self.conn.request("POST", "/", body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        if response.status != 200:
            fail(f"{params['Action']} answered HTTP {response.status}: {text[:300]}")
        return text


def cmd_seed(args):
    ec2 = Query(args.endpoint)
    started = time.monotonic()
    vpc = args.vpc_id
    if not vpc:
        out = ec2.call({"Action": "CreateVpc", "CidrBlock": "10.77.0.0/16"})
        vpc = re.search(r"<vpcId>(vpc-[0-9a-f]+)</vpcId>", out).group(1)
    opted = 0
    for i in range(args.from_, args.to):
        params = {
            "Action": "CreateSecurityGroup",
            "GroupName": f"bench-{i:05d}",
            "GroupDescription": "chaoslingr bench",
            "VpcId": vpc,
        }
        if i % args.opt_in_every == 0:
            opted += 1
            params.update(
                {
                    "TagSpecification.1.ResourceType": "security-group",
                    "TagSpecification.1.Tag.1.Key": OPT_IN_TAG,
                    "TagSpecification.1.Tag.1.Value": "true",
                }
            )
        ec2.call(params)
        done = i + 1 - args.from_
        if done % 1000 == 0 and i + 1 < args.to:
            print(f"  seeding: {done} of {args.to - args.from_} groups, {time.monotonic() - started:.0f} s", file=sys.stderr)
    emit("vpc_id", vpc)
    emit("created", args.to - args.from_)
    emit("opted_in", opted)
    emit("seconds", f"{time.monotonic() - started:.1f}")


def boto_clients(endpoint, *services):
    loopback(endpoint)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="BENCHSETUP", aws_secret_access_key="testing", region_name=REGION
    )
    return [session.client(s, endpoint_url=endpoint) for s in services]


def cmd_setup(args):
    sns, ssm = boto_clients(args.endpoint, "sns", "ssm")
    emit("topic_arn", sns.create_topic(Name=TOPIC_NAME)["TopicArn"])
    if args.webhook_url:
        loopback(args.webhook_url)
        ssm.put_parameter(Name=WEBHOOK_PARAMETER, Value=args.webhook_url, Type="SecureString", Overwrite=True)
        emit("webhook_parameter", WEBHOOK_PARAMETER)


# --- spawn ------------------------------------------------------------------------------


def cmd_spawn(args):
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        fail("spawn needs a program after --")
    env = child_env(args.env)
    spawner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawn.py")
    argv = [sys.executable, "-I", "-S", spawner]
    if args.interrupt_on:
        argv += ["--interrupt-on", args.interrupt_on]
    if args.stdout:
        argv += ["--stdout", args.stdout]
    sys.stdout.flush()
    # Replaced by a minimal interpreter, so that the child's peak RSS does not start at
    # this process's (see spawn.py).
    os.execve(sys.executable, argv + ["--"] + program, env)


# --- lambda -----------------------------------------------------------------------------

RUNTIME = "/2018-06-01/runtime/"


class QuietServer(http.server.ThreadingHTTPServer):
    """A threaded loopback HTTP server that does not print a client's broken pipe."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class RuntimeApi:
    """The Lambda Runtime API for one function process, on 127.0.0.1."""

    def __init__(self):
        self.events = queue.Queue()
        self.results = {}
        self.done = threading.Condition()
        self.first_next = None
        self.init_error = None
        self.closed = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle and delayed ACKs
            # add ~40 ms to an answer.
            disable_nagle_algorithm = True

            def log_message(self, *_):
                pass

            def body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != RUNTIME + "invocation/next":
                    return self.answer(404)
                if api.first_next is None:
                    api.first_next = time.perf_counter()
                while not api.closed.is_set():
                    try:
                        request_id, payload, deadline_ms = api.events.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    with api.done:
                        api.results[request_id] = {"received": time.perf_counter()}
                    return self.answer(
                        200,
                        payload,
                        [
                            ("Content-Type", "application/json"),
                            ("Lambda-Runtime-Aws-Request-Id", request_id),
                            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                            ("Lambda-Runtime-Invoked-Function-Arn", api.function_arn),
                            ("Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"),
                        ],
                    )
                self.close_connection = True
                self.answer(500)

            def do_POST(self):
                body = self.body()
                if self.path == RUNTIME + "init/error":
                    api.init_error = body.decode(errors="replace")
                    api.closed.set()
                    return self.answer(202)
                match = re.fullmatch(re.escape(RUNTIME) + r"invocation/([^/]+)/(response|error)", self.path)
                if not match:
                    return self.answer(404)
                request_id, kind = match.groups()
                with api.done:
                    entry = api.results.setdefault(request_id, {})
                    entry.update(kind=kind, body=body, finished=time.perf_counter())
                    api.done.notify_all()
                self.answer(202)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.function_arn = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, payload, timeout):
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + timeout) * 1000)
        self.events.put((request_id, payload, deadline_ms))
        end = time.perf_counter() + timeout
        with self.done:
            while "finished" not in self.results.get(request_id, {}):
                left = end - time.perf_counter()
                if left <= 0 or self.closed.is_set():
                    return None
                self.done.wait(min(left, 0.2))
            return self.results[request_id]

    def close(self):
        self.closed.set()
        self.server.shutdown()


class Webhook:
    """A loopback Slack incoming webhook: every POST is answered 200 `ok` and counted."""

    def __init__(self, port):
        self.posts = 0
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle and delayed ACKs
            # add ~40 ms to an answer.
            disable_nagle_algorithm = True

            def log_message(self, *_):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = QuietServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def lambda_env(name, api, pairs):
    env = child_env([])
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"bench/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(child_env(pairs))
    return env


def cmd_lambda(args):
    name = args.name or os.path.basename(args.bin)
    api = RuntimeApi()
    api.function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    hook = Webhook(args.webhook_port) if args.webhook_port else None
    env = lambda_env(name, api, args.env)
    log = open(args.log, "wb") if args.log else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen([args.bin], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    reaped = []  # (status, rusage) once the process is reaped
    peak = 0

    def running():
        """Whether the process lives; reaps it (keeping its rusage) once it exited."""
        if not reaped:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped.append((status, rusage))
        return not reaped

    def sample():
        nonlocal peak
        if running():
            peak = max(peak, vm_hwm_kib(proc.pid) or 0)

    try:
        deadline = started + args.timeout
        while api.first_next is None and api.init_error is None and time.perf_counter() < deadline:
            if not running():
                break
            time.sleep(0.0005)
        sample()
        if api.first_next is None:
            fail(f"{name} did not ask for an event (init error: {api.init_error}; exited: {bool(reaped)})")
        emit("init_ms", f"{(api.first_next - started) * 1000:.2f}")
        last = api.first_next
        for i, event in enumerate(args.event):
            result = api.invoke(event.encode(), args.timeout)
            sample()
            if result is None:
                fail(f"{name}: invocation {i} got no answer within {args.timeout}s")
            emit(f"invoke{i}_ms", f"{(result['finished'] - result['received']) * 1000:.1f}")
            emit(f"invoke{i}_result", result["kind"])
            if args.response_out:
                with open(f"{args.response_out}.{i}", "wb") as out:
                    out.write(result["body"])
            last = result["finished"]
        emit("wall_ms", f"{(last - started) * 1000:.1f}")
        sample()
        emit("vm_hwm_kib", peak)
    finally:
        if running():
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            reaped.append((status, rusage))
        proc.returncode = os.waitstatus_to_exitcode(reaped[0][0])
        api.close()
    rusage = reaped[0][1]
    emit("cpu_ms", f"{(rusage.ru_utime + rusage.ru_stime) * 1000:.1f}")
    if hook:
        emit("webhook_posts", hook.posts)


# --- trace ------------------------------------------------------------------------------

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


def action_of(headers, path, body):
    """The caller's access key and `<signing name>:<operation>` of an AWS request."""
    scope = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
    if not scope:
        return None, None
    key, service = scope.groups()
    target = headers.get("X-Amz-Target")
    if target:
        operation = target.rsplit(".", 1)[-1]
    else:
        form = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
        operation = form.get("Action", [f"{path}"])[0]
    return key, f"{service}:{operation}"


def cmd_trace(args):
    upstream = loopback(args.upstream)
    log = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *_):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            started = time.time()
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=600)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException):
                local.conn = conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=600)
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
            data = response.read()
            time.sleep(args.hold_ms / 1000)
            ended = time.time()
            key, action = action_of(self.headers, self.path, body)
            if key:
                with lock:
                    log.write(json.dumps({"access_key": key, "action": action, "start": started, "end": ended}) + "\n")
            self.send_response(response.status)
            for k, v in response.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    server = QuietServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


def cmd_webhook_url(_args):
    """Reserves a loopback port for `lambda --webhook` and prints the webhook URL on it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emit("port", port)
    emit("url", f"http://127.0.0.1:{port}/services/TBENCH/BBENCH/bench")


def main():
    parser = argparse.ArgumentParser(prog="probe.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="tool", required=True)

    p = sub.add_parser("seed")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--from", dest="from_", type=int, required=True)
    p.add_argument("--to", type=int, required=True)
    p.add_argument("--vpc-id")
    p.add_argument("--opt-in-every", type=int, default=10)
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("setup")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--webhook-url")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("trace")
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--hold-ms", type=float, default=50)
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("webhook-url")
    p.set_defaults(func=cmd_webhook_url)

    p = sub.add_parser("spawn")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--interrupt-on")
    p.add_argument("--stdout")
    p.add_argument("program", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_spawn)

    p = sub.add_parser("lambda")
    p.add_argument("--bin", required=True)
    p.add_argument("--name")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--event", action="append", default=[])
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--webhook-port", type=int)
    p.add_argument("--log")
    p.add_argument("--response-out")
    p.set_defaults(func=cmd_lambda)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
