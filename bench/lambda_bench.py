#!/usr/bin/env python3
"""`make bench`, the Lambda part: what one cold invocation of the custom-resource function costs.

The function's `bootstrap` (the release build from the zip) runs against a Lambda Runtime API
served here, which notes when each request arrives, with moto as AWS. For each resource type, a
fresh process answers one Create: the milliseconds from process start to its first request for
an event (cold start), from process start to its answer (client set-up included), and the
process's peak RSS. Median of --runs cold starts each. Everything listens on 127.0.0.1 only."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
from botocore.config import Config

from seed_bench import CREDENTIALS, ROOT, VENV_BIN, free_port, wait_for

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/bench/00000000-0000-0000-0000-000000000000"
ENV_FILE = ("RAILS_ENV=production\nSECRET_KEY_BASE=Zq7-secret-key-base-41f\nRELOAD_TOKEN=Zq7-reload-token-88a\n"
            "MYSQL_HOST=qa-mariadb\nMYSQL_PORT=3306\nMYSQL_DATABASE=qa_server\nMYSQL_DATABASE_NAME_PREFIX=qa_server\n"
            "MYSQL_USER=qa_server\nMYSQL_PASSWORD=Zq7-db-password-13c\nMYSQL_ROOT_PASSWORD=Zq7-root-password-6d2\n")


class RuntimeApi:
    """The three calls of the Lambda Runtime API a function makes, for one event at a time."""

    def __init__(self):
        self.event = None
        self.first_next = threading.Event()
        self.answered = threading.Event()
        self.times = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/invocation/next") or api.first_next.is_set():
                    time.sleep(3600)  # a second poll waits, as in Lambda, until the process is stopped
                    return
                api.times["next"] = time.perf_counter()
                api.first_next.set()
                body = json.dumps(api.event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 300_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:qa-lookup-custom-resources")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.times["answer"] = time.perf_counter()
                api.answer_path = self.path
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                api.answered.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


def cold_invocation(bootstrap, api, event, env):
    """(ms to the first request for an event, ms to the answer, peak RSS in MB) of a new process."""
    api.event, api.times = event, {}
    api.first_next.clear()
    api.answered.clear()
    started = time.perf_counter()
    process = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not api.answered.wait(120):
            sys.exit(f"no answer from {bootstrap} within 120 s")
        with open(f"/proc/{process.pid}/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    finally:
        process.kill()
        process.wait()
    if "/error" in api.answer_path:
        sys.exit(f"the function reported an error: {process.stderr.read().decode()[-2000:]}")
    return (api.times["next"] - started) * 1000, (api.times["answer"] - started) * 1000, peak_kb / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    size = os.path.getsize(args.bootstrap)
    print(f"(bootstrap: {args.bootstrap}, {size:,} bytes)", flush=True)

    with tempfile.TemporaryDirectory(prefix="qa-lambda-bench-") as scratch:
        port = free_port()
        moto = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            endpoint = f"http://127.0.0.1:{port}"
            wait_for(port, moto)
            session = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
            s3 = boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
                              **session)
            for bucket in ["responses", "config", "authorities"]:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket="config", Key="production.env", Body=ENV_FILE.encode())
            s3.put_public_access_block(Bucket="config", PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            real = ROOT.parent / "shared" / "fixtures" / "qa_server_config" / "authorities"
            if not real.is_dir():
                real = ROOT / "tests" / "fixtures" / "authorities"
            for path in sorted(real.rglob("*")):
                if path.is_file():
                    s3.upload_file(str(path), "authorities", "authorities/" + path.relative_to(real).as_posix())
            role = "arn:aws:iam::123456789012:role/lookup-task-execution"

            api = RuntimeApi()
            mount = Path(scratch)
            # The variables Lambda documents for a function ("Defined runtime environment variables",
            # Lambda Developer Guide), not this machine's: its SSL_CERT_DIR, for one, is not Lambda's.
            env = dict(**CREDENTIALS, AWS_DEFAULT_REGION="us-east-1", AWS_SESSION_TOKEN="testing",
                       AWS_ENDPOINT_URL=endpoint, AWS_LAMBDA_RUNTIME_API=api.address, _HANDLER="bootstrap",
                       AWS_LAMBDA_FUNCTION_NAME="qa-lookup-custom-resources", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                       AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_LOG_GROUP_NAME="bench",
                       AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
                       LAMBDA_TASK_ROOT=str(Path(args.bootstrap).parent), LAMBDA_RUNTIME_DIR="/var/runtime",
                       TZ=":UTC", LANG="en_US.UTF-8", PATH="/usr/local/bin:/usr/bin/:/bin:/opt/bin",
                       LD_LIBRARY_PATH="/lib64:/usr/lib64", AUTHORITIES_MOUNT_PATH=str(mount))

            def create(resource_type, properties):
                request_id = str(uuid.uuid4())
                url = s3.generate_presigned_url("put_object", Params={"Bucket": "responses", "Key": request_id},
                                                ExpiresIn=7200)
                return {"RequestType": "Create", "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:x",
                        "ResponseURL": url, "StackId": STACK_ID, "RequestId": request_id,
                        "LogicalResourceId": "Bench", "ResourceType": resource_type,
                        "ResourceProperties": dict(properties, ServiceToken="x")}

            cases = {
                "env_file_check": ("Custom::EnvFileCheck",
                                   {"Bucket": "config", "Key": "production.env", "ExecutionRoleArn": role}),
                "seed_authorities": ("Custom::SeedAuthorities", {"Bucket": "authorities", "Prefix": "authorities/"}),
                # A missing service fails at once: the ECS client's set-up and one DescribeServices.
                "services_healthy": ("Custom::ServicesHealthy", {"Cluster": "qa", "Services": "app"}),
            }
            for name, (resource_type, properties) in cases.items():
                starts, answers, peaks, statuses = [], [], [], set()
                for _ in range(args.runs):
                    for child in mount.iterdir():
                        subprocess.run(["rm", "-rf", str(child)], check=True)
                    event = create(resource_type, properties)
                    start_ms, answer_ms, peak_mb = cold_invocation(args.bootstrap, api, event, env)
                    starts.append(start_ms)
                    answers.append(answer_ms)
                    peaks.append(peak_mb)
                    response = json.loads(s3.get_object(Bucket="responses", Key=event["RequestId"])["Body"].read())
                    statuses.add(response["Status"])
                    if response["Status"] == "FAILED" and name != "services_healthy":
                        print(f"({name}: {response.get('Reason')})", flush=True)
                print(f"bench lambda_{name} cold_start_ms={statistics.median(starts):.1f} "
                      f"create_answer_ms={statistics.median(answers):.1f} peak_rss_mb={max(peaks):.1f} "
                      f"status={'/'.join(sorted(statuses))}", flush=True)
        finally:
            moto.terminate()
            moto.wait()


if __name__ == "__main__":
    main()
