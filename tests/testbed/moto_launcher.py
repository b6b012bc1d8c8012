"""moto_server with the parts a stack needs that moto runs in Docker or leaves out.

Run it as moto_server is run: ``python moto_launcher.py -H 127.0.0.1 -p PORT``.

- Lambda: moto runs function code in a Docker container. Here every invocation goes to
  the cargo-lambda runtime emulator at ``$QA_LAMBDA_INVOKE_URL``, where the real binary
  polls for it, as Lambda's own runtime API would hand it over.
- CloudFormation custom resources: moto sends only Create and ignores a FAILED answer.
  Here they follow CloudFormation's protocol: Create, Update (with OldResourceProperties)
  and Delete requests, each answered through its ResponseURL within ServiceTimeout; the
  outcome of each shows in describe-stack-events. A Create is sent once the custom
  resources it depends on (DependsOn, Ref, GetAtt, Sub, through any resource) succeeded,
  and cancelled if one failed. A FAILED Create rolls the stack back (Delete requests for
  the custom resources, the last created first, then moto deletes the rest); a FAILED
  Update sends the updated custom resources their old properties again and deletes those
  the update added. moto's own resources are not rolled back on a failed update.
- S3: a bucket from a template gets its Block Public Access and versioning settings,
  which moto's CloudFormation drops.
- ECS: a service starts its desired count of tasks, which stay RUNNING, and counts them
  running, as ECS's scheduler would once the tasks are up.
- AWS::ServiceDiscovery::HttpNamespace, which moto's CloudFormation skips, is created in
  moto's Cloud Map.

A stack operation (create, update, delete) creates moto's resources at once, as moto
does, and then waits in a thread for the custom resources' answers before it reaches
its final status: a stack never stays IN_PROGRESS longer than the ServiceTimeouts.
"""

import copy
import json
import logging
import os
import sys
import threading
import urllib.request
import uuid

from moto import settings
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.cloudformation import cloudformation_backends
from moto.cloudformation.custom_model import CustomModel
from moto.cloudformation.models import Event, Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.ecs.models import EC2ContainerServiceBackend
from moto.moto_api import state_manager
from moto.s3.models import FakeBucket, s3_backends
from moto.servicediscovery.models import servicediscovery_backends
from moto.utilities.utils import get_partition
from moto.server import main

log = logging.getLogger("moto_launcher")

INVOKE_URL = os.environ.get("QA_LAMBDA_INVOKE_URL", "")
# CloudFormation's limit for a custom resource that sets no ServiceTimeout.
DEFAULT_SERVICE_TIMEOUT_SECONDS = 3600


# ---------------------------------------------------------------- Lambda


def invoke_emulator(event):
    """Runs one invocation in the emulator; returns (payload, errored)."""
    request = urllib.request.Request(INVOKE_URL, data=json.dumps(event).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=DEFAULT_SERVICE_TIMEOUT_SECONDS) as response:
            return response.read().decode(), False
    except Exception as error:  # the emulator's answer to a failed invocation, or no emulator
        log.error("invocation failed: %s", error)
        return json.dumps({"errorMessage": str(error)}), True


def invoke(self, body, request_headers, response_headers):
    event = json.loads(body) if body else {}
    if request_headers.get("x-amz-invocation-type", request_headers.get("X-Amz-Invocation-Type")) == "Event":
        threading.Thread(target=invoke_emulator, args=(event,), daemon=True).start()
        return b""
    payload, errored = invoke_emulator(event)
    if errored:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload.encode()


LambdaFunction.invoke = invoke


# ---------------------------------------------------------------- custom resources

# Requests waiting for their answer, by RequestId.
PENDING = {}
PENDING_LOCK = threading.Lock()


def add_event(stack, resource, status, reason=None):
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=resource.logical_id,
            physical_resource_id=resource.physical_id or "",
            resource_type=resource.resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def add_stack_event(stack, status, reason=None):
    stack.status = status
    stack._add_stack_event(status, resource_status_reason=reason)


class Request:
    """One custom-resource request, sent to the function and answered through its ResponseURL."""

    def __init__(self, stack, resource, request_type, properties, old_properties=None, after=()):
        self.resource = resource
        self.after = after
        self.request_type = request_type
        self.answered = threading.Event()
        self.answer = None
        request_id = str(uuid.uuid4())
        host = f"http://127.0.0.1:{settings.moto_server_port()}"
        self.event = {
            "RequestType": request_type,
            "ServiceToken": properties["ServiceToken"],
            "ResponseURL": f"{host}/cloudformation_{stack.region_name}/cfnresponse?stack={stack.stack_id}",
            "StackId": stack.stack_id,
            "RequestId": request_id,
            "LogicalResourceId": resource.logical_id,
            "ResourceType": resource.resource_type,
            "ResourceProperties": properties,
        }
        if resource.physical_id:
            self.event["PhysicalResourceId"] = resource.physical_id
        if old_properties is not None:
            self.event["OldResourceProperties"] = old_properties
        self.timeout = int(properties.get("ServiceTimeout", DEFAULT_SERVICE_TIMEOUT_SECONDS))
        resource.lambda_backend.get_function(properties["ServiceToken"])  # raises if there is no such function
        self.stack = stack
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for earlier in self.after:
            if earlier.outcome()[0] != "SUCCESS":
                self.resource.never_started = True
                self.answer = {"Status": "FAILED", "Reason": "Resource creation cancelled"}
                return
        with PENDING_LOCK:
            PENDING[self.event["RequestId"]] = self
        add_event(self.stack, self.resource, f"{self.request_type.upper()}_IN_PROGRESS")
        # CloudFormation invokes the function asynchronously and waits for the answer, not the invocation.
        threading.Thread(target=invoke_emulator, args=(self.event,), daemon=True).start()
        if not self.answered.wait(self.timeout):
            with PENDING_LOCK:
                PENDING.pop(self.event["RequestId"], None)
            self.answer = {
                "Status": "FAILED",
                "Reason": f"CloudFormation did not receive a response from your Custom Resource within "
                f"its ServiceTimeout ({self.timeout} s). Check the function's logs.",
            }
        status = self.answer["Status"]
        if self.answer.get("PhysicalResourceId"):
            self.resource.physical_id = self.answer["PhysicalResourceId"]
        if status == "SUCCESS" and self.request_type != "Delete":
            self.resource.set_data(self.answer.get("Data") or {})
        if status == "SUCCESS":
            add_event(self.stack, self.resource, f"{self.request_type.upper()}_COMPLETE")
        else:
            add_event(self.stack, self.resource, f"{self.request_type.upper()}_FAILED", self.answer.get("Reason"))

    def outcome(self):
        """Waits for the answer (at most ServiceTimeout): the answer's Status and Reason."""
        self.thread.join()
        return self.answer["Status"], self.answer.get("Reason") or ""


def accept_answer(self):
    """CloudFormation's end of the ResponseURL: takes the answer to one pending request."""
    try:
        answer = json.loads(self.body)
    except ValueError:
        return 400, {}, "the answer is not JSON"
    if answer.get("Status") not in ("SUCCESS", "FAILED"):
        return 400, {}, f"Status must be SUCCESS or FAILED, not {answer.get('Status')!r}"
    with PENDING_LOCK:
        request = PENDING.pop(answer.get("RequestId"), None)
    if request is None:
        log.warning("an answer for no pending request: %s", answer.get("RequestId"))
        return 200, {}, ""
    request.answer = answer
    request.answered.set()
    return 200, {}, ""


CloudFormationResponse.process_cfn_response = accept_answer


@classmethod
def create_custom_resource(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    stack = cloudformation_backends[account_id][region_name].get_stack(kwargs["StackId"])
    resource = cls(region_name, None, kwargs["LogicalId"], resource_name)
    resource.resource_type = kwargs["ResourceType"]
    resource.physical_id = None
    resource.properties = cloudformation_json["Properties"]
    resource.lambda_backend = get_lambda_backend(account_id, region_name)
    resource.stack = stack
    resource.deleted = False
    resource.never_started = False
    resource.added_by_update = stack.status == "UPDATE_IN_PROGRESS"
    after = [
        stack.custom_resources[name].request
        for name in dependencies(stack, resource.logical_id)
        if name in stack.custom_resources
    ]
    stack.add_custom_resource(resource)
    resource.request = Request(stack, resource, "Create", resource.properties, after=after)
    stack.requests.append(resource.request)
    return resource


def dependencies(stack, logical_id):
    """Every resource `logical_id` depends on, directly or not: DependsOn, Ref, Fn::GetAtt, Fn::Sub."""
    resources = stack.template_dict.get("Resources", {})

    def direct(name):
        definition = resources.get(name, {})
        depends_on = definition.get("DependsOn", [])
        found = set([depends_on] if isinstance(depends_on, str) else depends_on)

        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "Ref" and isinstance(value, str):
                        found.add(value)
                    elif key == "Fn::GetAtt":
                        found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
                    elif key == "Fn::Sub":
                        text = value[0] if isinstance(value, list) else value
                        found.update(part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:])
                    walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(definition.get("Properties", {}))
        return found & resources.keys()

    seen, pending = set(), [logical_id]
    while pending:
        for name in direct(pending.pop()) - seen:
            seen.add(name)
            pending.append(name)
    return seen


@classmethod
def update_custom_resource(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    resource = original_resource
    stack = resource.stack
    old_properties = resource.properties
    resource.properties = cloudformation_json["Properties"]
    resource.updated_from = (old_properties, resource.physical_id)
    resource.request = Request(stack, resource, "Update", resource.properties, old_properties)
    stack.requests.append(resource.request)
    return resource


def delete_custom_resource(self, account_id, region_name):
    """Sends Delete and waits for the answer; raises if it FAILED (moto then keeps the stack's resources)."""
    if self.deleted or self.never_started:
        self.deleted = True
        return
    status, reason = Request(self.stack, self, "Delete", self.properties).outcome()
    if status != "SUCCESS":
        raise RuntimeError(reason)
    self.deleted = True


CustomModel.create_from_cloudformation_json = create_custom_resource
CustomModel.update_from_cloudformation_json = update_custom_resource
CustomModel.delete = delete_custom_resource
CustomModel.physical_resource_id = property(lambda self: self.physical_id or self.resource_name)


def delete_resources(stack):
    """Deletes the stack's custom resources, the last created first, then (if they all went) moto's
    resources; returns the failures."""
    failures = []
    for resource in reversed(list(stack.custom_resources.values())):
        try:
            resource.delete(stack.account_id, stack.region_name)
        except RuntimeError as error:
            failures.append(f"{resource.logical_id}: {error}")
    if not failures:
        try:
            stack.resource_map.delete()
        except Exception as error:
            failures.append(str(error))
    return failures


def end_operation(stack, operation, failures):
    """`operation`_COMPLETE, or _FAILED with the failures as its reason."""
    if failures:
        add_stack_event(stack, f"{operation}_FAILED", "; ".join(failures))
    else:
        add_stack_event(stack, f"{operation}_COMPLETE")


def in_background(stack, work):
    """Runs a stack operation's remaining work in a thread; an error in it ends the operation FAILED."""

    def run():
        try:
            work()
        except Exception as error:
            log.exception("stack %s: the operation failed", stack.name)
            operation = stack.status.removesuffix("_IN_PROGRESS")
            add_stack_event(stack, f"{operation}_FAILED", f"moto_launcher: {error!r}")

    threading.Thread(target=run, daemon=True).start()


def finish_operation(stack, finish):
    """Runs `finish` once the custom-resource requests of this operation are answered."""

    def run():
        requests, stack.requests = stack.requests, []
        outcomes = [(request, *request.outcome()) for request in requests]
        failed = [(request.resource, reason) for request, status, reason in outcomes if status != "SUCCESS"]
        # Cancelled requests were never sent: they are not why the operation failed.
        finish([(resource, reason) for resource, reason in failed if not resource.never_started] or failed)

    if stack.requests:
        in_background(stack, run)
    else:
        finish([])


def drop_exports(stack):
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    for name in [name for name, export in backend.exports.items() if export.exporting_stack_id == stack.stack_id]:
        backend.exports.pop(name)


def create_resources(self):
    self.requests = []
    self.status = "CREATE_IN_PROGRESS"
    self.resource_map.create(self.template_dict)
    self.description = self.template_dict.get("Description")

    def finish(failed):
        if not failed:
            add_stack_event(self, "CREATE_COMPLETE")
            return
        names = ", ".join(resource.logical_id for resource, _ in failed)
        add_stack_event(
            self,
            "ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to create: [{names}]. Rollback requested by user.",
        )
        failures = delete_resources(self)
        drop_exports(self)
        end_operation(self, "ROLLBACK", failures)

    finish_operation(self, finish)


Stack.create_resources = create_resources
# moto's own readiness check would complete the stack on the first SUCCESS; the operation decides.
Stack.verify_readiness = lambda self: None

original_update = Stack.update


def update(self, template, role_arn=None, parameters=None, tags=None):
    self.requests = []
    before = (self.template, dict(self.parameters))
    self.status = "UPDATE_IN_PROGRESS"
    original_update(self, template, role_arn, parameters, tags)
    if not self.requests:
        return
    self.events.pop()  # moto's UPDATE_COMPLETE: the answers decide
    self.status = "UPDATE_IN_PROGRESS"

    def finish(failed):
        if not failed:
            # A new PhysicalResourceId means the resource was replaced: the old one gets a Delete.
            replaced = [
                r
                for r in self.custom_resources.values()
                if getattr(r, "updated_from", (None, None))[1] not in (None, r.physical_id)
            ]
            if replaced:
                add_stack_event(self, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                for resource in replaced:
                    old = copy.copy(resource)
                    old.properties, old.physical_id = resource.updated_from
                    try:
                        old.delete(self.account_id, self.region_name)
                    except RuntimeError:
                        pass  # CloudFormation also finishes the update when a cleanup Delete fails
            for resource in self.custom_resources.values():
                resource.updated_from, resource.added_by_update = (None, None), False
            add_stack_event(self, "UPDATE_COMPLETE")
            return
        names = ", ".join(resource.logical_id for resource, _ in failed)
        add_stack_event(self, "UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{names}].")
        for resource in self.custom_resources.values():
            old_properties = getattr(resource, "updated_from", (None, None))[0]
            if old_properties is not None:
                new_properties, resource.properties = resource.properties, old_properties
                self.requests.append(Request(self, resource, "Update", old_properties, new_properties))
                resource.updated_from = (None, None)
        for resource in self.custom_resources.values():
            if resource.added_by_update:
                self.requests.append(Request(self, resource, "Delete", resource.properties))
        self.template, self.parameters = before

        finish_operation(self, lambda failed: end_operation(self, "UPDATE_ROLLBACK", [reason for _, reason in failed]))

    finish_operation(self, finish)


Stack.update = update


def delete(self):
    add_stack_event(self, "DELETE_IN_PROGRESS", "User Initiated")

    in_background(self, lambda: end_operation(self, "DELETE", delete_resources(self)))


Stack.delete = delete


# ---------------------------------------------------------------- S3


original_create_bucket = FakeBucket.create_from_cloudformation_json.__func__


@classmethod
def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's bucket plus the template's Block Public Access and versioning settings."""
    bucket = original_create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    backend = s3_backends[account_id][get_partition(region_name)]
    if "PublicAccessBlockConfiguration" in properties:
        settings_on = {key: str(value).lower() for key, value in properties["PublicAccessBlockConfiguration"].items()}
        backend.put_public_access_block(bucket.name, settings_on)
    if "VersioningConfiguration" in properties:
        backend.put_bucket_versioning(bucket.name, properties["VersioningConfiguration"]["Status"])
    return bucket


FakeBucket.create_from_cloudformation_json = create_bucket


# ---------------------------------------------------------------- ECS


original_create_service = EC2ContainerServiceBackend.create_service


def create_service(self, cluster_str, service_name, desired_count, task_definition_str=None, *args, **kwargs):
    service = original_create_service(self, cluster_str, service_name, desired_count, task_definition_str, *args, **kwargs)
    if service.desired_count and service.task_definition:
        deployment = service.deployments[0] if service.deployments else {"id": "ecs-svc/moto"}
        self.run_task(
            cluster_str,
            service.task_definition,
            service.desired_count,
            None,
            started_by=deployment["id"],
            tags=None,
            launch_type="FARGATE",
            group=f"service:{service.name}",
        )
        service.running_count, service.pending_count = service.desired_count, 0
        deployment.update(runningCount=service.desired_count, pendingCount=0, rolloutState="COMPLETED")
    return service


EC2ContainerServiceBackend.create_service = create_service
state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 1_000_000})


# ---------------------------------------------------------------- Cloud Map


class HttpNamespace(CloudFormationModel):
    __module__ = "moto.servicediscovery.models"  # moto files its models under the service in the module name

    def __init__(self, namespace):
        self.namespace = namespace

    @staticmethod
    def cloudformation_type():
        return "AWS::ServiceDiscovery::HttpNamespace"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = servicediscovery_backends[account_id][region_name]
        properties = cloudformation_json["Properties"]
        name = properties.get("Name", resource_name)
        backend.create_http_namespace(name, str(uuid.uuid4()), properties.get("Description", ""), [])
        namespace = next(ns for ns in backend.namespaces.values() if ns.name == name)
        return cls(namespace)

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("Arn", "Id")

    def get_cfn_attribute(self, attribute_name):
        return {"Arn": self.namespace.arn, "Id": self.namespace.id}[attribute_name]

    @property
    def physical_resource_id(self):
        return self.namespace.id

    def delete(self, account_id, region_name):
        servicediscovery_backends[account_id][region_name].delete_namespace(self.namespace.id)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    if not INVOKE_URL:
        sys.exit("moto_launcher: set QA_LAMBDA_INVOKE_URL to the runtime emulator's invocation URL")
    sys.exit(main())
