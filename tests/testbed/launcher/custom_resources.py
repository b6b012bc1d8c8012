"""The custom-resource protocol as CloudFormation speaks it.

- A request goes to the ServiceToken's function as an asynchronous invocation, and
  CloudFormation waits for the answer at the ResponseURL, not for the invocation.
- Every property scalar reaches the function as a string: CloudFormation stringifies numbers
  and booleans (cloudformation-coverage-roadmap #1037, aws-cdk #15249).
- The answer is a PUT to the pre-signed ResponseURL, whose signature covers the method
  (a POST would be refused by S3). CloudFormation then reads it: a body over 4096 bytes fails
  the resource with "Response object is too long." (aws-cdk #23958; custom resource response
  reference), and an answer without a PhysicalResourceId fails it with "Invalid
  PhysicalResourceId" (remind101/empire #918). Answers to requests no longer pending (cancelled,
  timed out, answered) are ignored (aws-cdk #26139).
- No answer within ServiceTimeout (default 3600 s) fails the resource with CloudFormation's
  own message, and its later Delete carries a physical id that CloudFormation generated.
"""

import json
import logging
import threading
import uuid

from moto import settings
from moto.cloudformation.custom_model import CustomModel
from moto.cloudformation.responses import CloudFormationResponse

from . import lambda_invoke
from .timing import random_suffix

log = logging.getLogger("moto_launcher.custom")

DEFAULT_SERVICE_TIMEOUT_SECONDS = 3600
MAX_RESPONSE_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 1024

# Requests waiting for their answer, by RequestId.
PENDING = {}
PENDING_LOCK = threading.Lock()


def is_custom(resource_type):
    return resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource"


def as_strings(value):
    """The properties as the function receives them: every scalar a string."""
    if isinstance(value, dict):
        return {key: as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_strings(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def generated_physical_id(stack, logical_id):
    """The id CloudFormation makes up for a resource that never answered with one."""
    return f"{stack.name}-{logical_id}-{random_suffix()}"


def timeout_reason(request_id):
    return (
        "CloudFormation did not receive a response from your Custom Resource. Please check your logs for "
        f"requestId [{request_id}]. If you are using the Python cfn-response module, you may need to update "
        "your Lambda function code so that CloudFormation can attach the updated version."
    )


class CustomResource(CustomModel):
    """What the stack's resource map holds for a custom resource: its physical id and its Data."""

    def __init__(self, stack, logical_id, resource_type):
        super().__init__(stack.region_name, None, logical_id, logical_id)
        self.resource_type = resource_type
        self.physical_id = None
        self.logical_resource_id = logical_id
        self.cf_resource_type = resource_type

    @property
    def physical_resource_id(self):
        return self.physical_id or ""


class Request:
    """One request, sent at once; ``outcome`` waits for its answer, its timeout or its cancellation."""

    def __init__(self, stack, resource, request_type, properties, old_properties=None, lambda_backend=None):
        self.stack = stack
        self.resource = resource
        self.request_type = request_type
        self.answered = threading.Event()
        self.answer = None
        self.request_id = str(uuid.uuid4())
        self.timeout = int(properties.get("ServiceTimeout") or DEFAULT_SERVICE_TIMEOUT_SECONDS)
        host = f"http://127.0.0.1:{settings.moto_server_port()}"
        self.event = {
            "RequestType": request_type,
            "ServiceToken": properties["ServiceToken"],
            # moto's response path; the request's own query parameter stands for the per-request
            # signature of CloudFormation's pre-signed URL.
            "ResponseURL": f"{host}/cloudformation_{stack.region_name}/cfnresponse?stack={stack.stack_id}"
            f"&request={self.request_id}",
            "StackId": stack.stack_id,
            "RequestId": self.request_id,
            "LogicalResourceId": resource.logical_id,
            "ResourceType": resource.resource_type,
            "ResourceProperties": as_strings(properties),
        }
        if resource.physical_id:
            self.event["PhysicalResourceId"] = resource.physical_id
        if old_properties is not None:
            self.event["OldResourceProperties"] = as_strings(old_properties)
        function = lambda_backend.get_function(properties["ServiceToken"])  # raises if there is no such function
        with PENDING_LOCK:
            PENDING[self.request_id] = self
        lambda_invoke.invoke_async(function, self.event)

    def wait(self, cancelled):
        """Waits for the answer: ("SUCCESS" | "FAILED", reason), or ("CANCELLED", "") once
        `cancelled` is set. Sets the resource's physical id and Data from the answer."""
        answered = False
        waited = 0.0
        while waited < self.timeout:
            if self.answered.wait(0.05):
                answered = True
                break
            waited += 0.05
            if cancelled.is_set():
                self.forget()
                return "CANCELLED", ""
        self.forget()
        if not answered:
            return "FAILED", timeout_reason(self.request_id)
        answer = self.answer
        if answer.get("PhysicalResourceId"):
            self.resource.physical_id = answer["PhysicalResourceId"]
        if answer["Status"] == "SUCCESS" and self.request_type != "Delete":
            self.resource.set_data(answer.get("Data") or {})
        return answer["Status"], answer.get("Reason") or ""

    def forget(self):
        with PENDING_LOCK:
            PENDING.pop(self.request_id, None)


def checked_answer(body):
    """(answer, None) when CloudFormation would accept `body`, else (None, why it fails the resource)."""
    if len(body) > MAX_RESPONSE_BYTES:
        return None, "Response object is too long."
    try:
        answer = json.loads(body)
    except ValueError:
        return None, "Response is not valid JSON"
    if not isinstance(answer, dict) or answer.get("Status") not in ("SUCCESS", "FAILED"):
        return None, "Invalid Status in the response object"
    physical_id = answer.get("PhysicalResourceId")
    if not isinstance(physical_id, str) or not physical_id or len(physical_id.encode()) > MAX_PHYSICAL_ID_BYTES:
        return None, "Invalid PhysicalResourceId"
    return answer, None


def accept_answer(self):
    """CloudFormation's end of the ResponseURL: the answer to one pending request."""
    if self.method != "PUT":
        # The URL is pre-signed for a PUT: S3 refuses any other method.
        return 403, {"status": 403}, "SignatureDoesNotMatch: the ResponseURL is signed for PUT"
    body = self.body if isinstance(self.body, bytes) else (self.body or "").encode()
    request_id = (self.querystring.get("request") or [None])[0]
    with PENDING_LOCK:
        request = PENDING.pop(request_id, None)
    if request is None:
        log.warning("an answer for no pending request (%s): ignored", request_id)
        return 200, {}, ""
    answer, refused = checked_answer(body)
    if refused:
        physical_id = request.resource.physical_id or generated_physical_id(request.stack, request.resource.logical_id)
        answer = {"Status": "FAILED", "Reason": refused, "PhysicalResourceId": physical_id}
    request.answer = answer
    request.answered.set()
    return 200, {}, ""


CloudFormationResponse.process_cfn_response = accept_answer
