"""Lambda invocations, run by the cargo-lambda runtime emulator at ``$QA_LAMBDA_INVOKE_URL``,
where the real binary polls for them (moto would run the code in Docker).

Asynchronous invocations (``Event``, as CloudFormation invokes a custom resource's function)
are retried as Lambda retries them: "If the function returns an error, by default Lambda
attempts to run it two more times, with a one-minute wait between the first two attempts, and
two minutes between the second and third attempts" (Lambda developer guide, "How Lambda
handles errors and retries with asynchronous invocation"). The waits are scaled (``timing``).
"""

import json
import logging
import os
import time
import urllib.error
import urllib.request

from moto.awslambda.models import LambdaFunction

from . import timing

log = logging.getLogger("moto_launcher.lambda")

INVOKE_URL = os.environ.get("QA_LAMBDA_INVOKE_URL", "")
# Lambda's longest function timeout; the emulator answers sooner.
LONGEST_INVOCATION_SECONDS = 900
ASYNC_RETRY_DELAYS_SECONDS = (60, 120)


def invoke_emulator(event):
    """Runs one invocation in the emulator; returns (payload, errored)."""
    request = urllib.request.Request(INVOKE_URL, data=json.dumps(event).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=LONGEST_INVOCATION_SECONDS) as response:
            payload = response.read().decode()
    except urllib.error.HTTPError as error:  # the emulator's answer to a function error
        return error.read().decode(errors="replace") or str(error), True
    except Exception as error:  # no emulator, or it broke off
        log.error("invocation failed: %s", error)
        return json.dumps({"errorMessage": str(error)}), True
    try:
        errored = isinstance(json.loads(payload), dict) and "errorType" in json.loads(payload)
    except ValueError:
        errored = False
    return payload, errored


def invoke_async(event):
    """An ``Event`` invocation: the first attempt now, then Lambda's two retries of an error."""

    def attempts():
        for delay in (0, *ASYNC_RETRY_DELAYS_SECONDS):
            time.sleep(timing.scaled(delay))
            payload, errored = invoke_emulator(event)
            if not errored:
                return
            log.warning("asynchronous invocation errored (%s); Lambda retries it", payload[:300])

    timing.in_background(attempts)


def invoke(self, body, request_headers, response_headers):
    event = json.loads(body) if body else {}
    invocation_type = request_headers.get("x-amz-invocation-type", request_headers.get("X-Amz-Invocation-Type"))
    if invocation_type == "Event":
        invoke_async(event)
        return b""
    payload, errored = invoke_emulator(event)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload.encode()


LambdaFunction.invoke = invoke
