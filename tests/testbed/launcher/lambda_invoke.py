"""Lambda invocations, run by the cargo-lambda runtime emulator at ``$QA_LAMBDA_INVOKE_URL``,
where the real binary polls for them (moto would run the code in Docker).

Asynchronous invocations (``Event``, as CloudFormation invokes a custom resource's function)
are retried as Lambda retries them: "If the function returns an error, by default Lambda
attempts to run it two more times, with a one-minute wait between the first two attempts, and
two minutes between the second and third attempts" (Lambda developer guide, "How Lambda
handles errors and retries with asynchronous invocation"). The waits are scaled (``timing``).

Each invocation tells the bed which function it is for (``X-Qa-Function-Name``) and that
function's log group (``X-Qa-Log-Group``): its ``LoggingConfig.LogGroup``, else Lambda's default
``/aws/lambda/<function name>`` (Lambda developer guide, "Configuring CloudWatch log groups").
One pool of function processes serves every function here, so the bed, which reads their output,
ships each invocation's lines to CloudWatch Logs in that group, as Lambda does. moto keeps no
``LoggingConfig``; it is kept here and answered by get-function-configuration.
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


def log_group(function):
    """The function's log group, as Lambda writes to it."""
    configured = (getattr(function, "qa_logging_config", None) or {}).get("LogGroup")
    return configured or f"/aws/lambda/{function.function_name}"


def invoke_emulator(function, event):
    """Runs one invocation in the emulator; returns (payload, errored)."""
    headers = {"X-Qa-Function-Name": function.function_name, "X-Qa-Log-Group": log_group(function)}
    request = urllib.request.Request(INVOKE_URL, data=json.dumps(event).encode(), headers=headers, method="POST")
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


def invoke_async(function, event):
    """An ``Event`` invocation: the first attempt now, then Lambda's two retries of an error."""

    def attempts():
        for delay in (0, *ASYNC_RETRY_DELAYS_SECONDS):
            time.sleep(timing.scaled(delay))
            payload, errored = invoke_emulator(function, event)
            if not errored:
                return
            log.warning("asynchronous invocation errored (%s); Lambda retries it", payload[:300])

    timing.in_background(attempts)


def invoke(self, body, request_headers, response_headers):
    event = json.loads(body) if body else {}
    invocation_type = request_headers.get("x-amz-invocation-type", request_headers.get("X-Amz-Invocation-Type"))
    if invocation_type == "Event":
        invoke_async(self, event)
        return b""
    payload, errored = invoke_emulator(self, event)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload.encode()


LambdaFunction.invoke = invoke

original_create_from_cloudformation_json = LambdaFunction.create_from_cloudformation_json.__func__
original_get_configuration = LambdaFunction.get_configuration


@classmethod
def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    function = original_create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    function.qa_logging_config = cloudformation_json.get("Properties", {}).get("LoggingConfig")
    return function


def get_configuration(self, *args, **kwargs):
    """moto's configuration with Lambda's ``LoggingConfig`` (format and group, the default included)."""
    config = original_get_configuration(self, *args, **kwargs)
    logging_config = getattr(self, "qa_logging_config", None) or {}
    config["LoggingConfig"] = {"LogFormat": logging_config.get("LogFormat", "Text"), "LogGroup": log_group(self)}
    return config


LambdaFunction.create_from_cloudformation_json = create_from_cloudformation_json
LambdaFunction.get_configuration = get_configuration
