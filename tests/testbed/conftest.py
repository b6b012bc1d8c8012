"""The test bed's own tests: moto_launcher.py on small templates, with a stand-in custom resource
instead of our function, so that the bed's fidelity to CloudFormation is checked apart from ours.

The stand-in listens where the runtime emulator would and answers each request as its
``Behaviour`` property says (see ``StandIn.answer``), through the request's real ResponseURL.
"""

import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile

import boto3
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "us-east-1"
# The bed's clock in these tests: one AWS minute is 0.6 s, a task starts in 0.3 s.
TIME_SCALE = "0.01"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandIn:
    """A custom resource's function: records every invocation and answers as told.

    Behaviour (a property, as a comma-separated list):
    - ``fail``: FAILED on Create and Update; ``fail-delete``: FAILED on Delete
    - ``wait:S``: answers after S seconds; ``hang``: never answers Create or Update
    - ``error:N``: the invocation errors N times (Lambda retries it) before answering
    - ``too-long``: a body over 4096 bytes, ``no-id``: no PhysicalResourceId ``post``: a POST (each
      but on Delete)
    - ``new-id``: a new PhysicalResourceId on every Update

    An SQS batch (an event with ``Records``, from an event source mapping) is recorded in
    ``batches`` and answered by ``batch_answers[function name](event)``: (errored, answer object);
    by default a success answering null.
    """

    def __init__(self):
        self.invocations = []
        self.targets = {}  # RequestId -> (function, log group) the launcher named
        self.answers = []  # (RequestId, HTTP status of the PUT)
        self.batches = []  # (time, function name, event) of each SQS batch
        self.batch_answers = {}
        self.in_flight = {}  # function name -> [batches being answered now, most at once]
        self.lock = threading.Lock()
        self.port = free_port()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if "Records" in event:
                    errored, answer = stand_in.batch(self.headers.get("X-Qa-Function-Name"), event)
                    self.send_response(500 if errored else 200)
                    self.end_headers()
                    self.wfile.write(
                        b'{"errorType":"Stand-in","errorMessage":"told to fail"}' if errored else json.dumps(answer).encode()
                    )
                    return
                with stand_in.lock:
                    stand_in.targets[event.get("RequestId")] = (
                        self.headers.get("X-Qa-Function-Name"),
                        self.headers.get("X-Qa-Log-Group"),
                    )
                errored = stand_in.invoked(event)
                self.send_response(500 if errored else 200)
                self.end_headers()
                self.wfile.write(b'{"errorType":"Stand-in","errorMessage":"told to fail"}' if errored else b"null")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def batch(self, function, event):
        with self.lock:
            self.batches.append((time.monotonic(), function, event))
            counts = self.in_flight.setdefault(function, [0, 0])
            counts[0] += 1
            counts[1] = max(counts)
        try:
            return self.batch_answers.get(function, lambda e: (False, None))(event)
        finally:
            with self.lock:
                counts[0] -= 1

    def batches_for(self, function):
        with self.lock:
            return [(at, event) for at, name, event in self.batches if name == function]

    def invoked(self, event):
        with self.lock:
            self.invocations.append((time.monotonic(), event))
            attempts = sum(1 for _, e in self.invocations if e["RequestId"] == event["RequestId"])
        behaviour = event["ResourceProperties"].get("Behaviour", "").split(",")
        errors = next((int(b.split(":")[1]) for b in behaviour if b.startswith("error:")), 0)
        if attempts <= errors:
            return True
        threading.Thread(target=self.answer, args=(event, behaviour), daemon=True).start()
        return False

    def answer(self, event, behaviour):
        kind = event["RequestType"]
        if "hang" in behaviour and kind != "Delete":
            return
        for b in behaviour:
            if b.startswith("wait:") and kind != "Delete":
                time.sleep(float(b.split(":")[1]))
        physical_id = event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-{uuid.uuid4().hex[:8]}"
        if kind == "Update" and "new-id" in behaviour:
            physical_id = f"{event['LogicalResourceId']}-{uuid.uuid4().hex[:8]}"
        failed = ("fail" in behaviour and kind != "Delete") or ("fail-delete" in behaviour and kind == "Delete")
        answer = {
            "Status": "FAILED" if failed else "SUCCESS",
            "Reason": f"stand-in told to fail its {kind}" if failed else "",
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {"Echo": event["ResourceProperties"].get("Echo", ""), "Id": physical_id},
        }
        if "no-id" in behaviour and kind != "Delete":
            del answer["PhysicalResourceId"]
        if "too-long" in behaviour and kind != "Delete":
            answer["Data"]["Padding"] = "x" * 5000
        body = json.dumps(answer).encode()
        method = "POST" if "post" in behaviour and kind != "Delete" else "PUT"
        request = urllib.request.Request(event["ResponseURL"], data=body, method=method, headers={"Content-Type": ""})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        with self.lock:
            self.answers.append((event["RequestId"], status))

    def requests(self, logical_id, stack_id=None):
        """The distinct requests (first attempt of each) for a logical id, in order."""
        with self.lock:
            seen, found = set(), []
            for at, event in self.invocations:
                if event["LogicalResourceId"] == logical_id and event["RequestId"] not in seen:
                    if stack_id is None or event["StackId"] == stack_id:
                        seen.add(event["RequestId"])
                        found.append((at, event))
            return found


class Bed:
    """One launcher and one stand-in for the whole session; each test uses its own stacks."""

    def __init__(self, work):
        self.work = work
        self.stand_in = StandIn()
        self.faults_file = os.path.join(work, "ecs-faults.json")
        with open(self.faults_file, "w") as f:
            f.write("{}")
        # What the app's tasks mount as config/authorities: their qa_server stand-ins list it.
        self.authorities = os.path.join(work, "authorities")
        os.makedirs(os.path.join(self.authorities, "linked_data"))
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            QA_LAMBDA_INVOKE_URL=f"http://127.0.0.1:{self.stand_in.port}/invoke",
            QA_TESTBED_TIME_SCALE=TIME_SCALE,
            QA_TESTBED_ECS_FAULTS=self.faults_file,
            QA_TESTBED_AUTHORITIES_DIR=self.authorities,
            MOTO_PORT=str(port),
        )
        self.log_path = os.path.join(work, "moto.log")
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "moto_launcher.py"), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"the launcher did not start: {open(self.log_path).read()}")
                time.sleep(0.1)
        self.cfn = self.client("cloudformation")
        iam = self.client("iam")
        role = iam.create_role(RoleName="stand-in", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n")
        function = self.client("lambda").create_function(
            FunctionName="stand-in", Runtime="provided.al2023", Role=role, Handler="bootstrap",
            Code={"ZipFile": archive.getvalue()},
        )
        self.token = function["FunctionArn"]

    def client(self, service):
        return boto3.client(
            service, region_name=REGION, endpoint_url=self.endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def set_faults(self, faults):
        with open(self.faults_file, "w") as f:
            json.dump(faults, f)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.stand_in.server.shutdown()


@pytest.fixture(scope="session")
def bed():
    with tempfile.TemporaryDirectory(prefix="qa-lookup-bed-") as work:
        started = Bed(work)
        yield started
        started.stop()
