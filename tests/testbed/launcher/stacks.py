"""CloudFormation's stack operations, replacing moto's (which creates every resource at once,
completes ECS services at once and updates by template text). Each behaviour with its source:

- Order: a resource is created once every resource it depends on (DependsOn, Ref, Fn::GetAtt,
  Fn::Sub, Fn::If branches included) is complete, and resources that do not depend on each
  other are created in parallel ("DependsOn attribute", CloudFormation user guide). A custom
  resource is complete only on its SUCCESS answer.
- ECS: an AWS::ECS::Service is complete only when stable; CloudFormation waits up to three
  hours, or fails with the circuit breaker's message (aws-toolkit-visual-studio #293,
  containers-roadmap #1369; see ``ecs``).
- Failure: at the first failure, resources still in progress are cancelled ("Resource creation
  cancelled"); a cancelled custom resource gets its Delete at once, with the id it answered or
  one CloudFormation generated, and its late answer is ignored (aws-cdk #26139,
  cloudformation-coverage-roadmap #1730). The rollback deletes what was created in reverse
  dependency order and ends ROLLBACK_COMPLETE (ROLLBACK_FAILED if a Delete fails).
- Update: resources are visited in dependency order and updated only when their resolved
  properties changed (a new task definition revision changes what refers to it); a custom
  resource answering a new PhysicalResourceId was replaced, and the old id gets its Delete in
  UPDATE_COMPLETE_CLEANUP_IN_PROGRESS, as do resources the new template removed ("Monitor the
  progress of a stack update"; architect/deploy #398). A failure rolls back: updated resources
  get their old properties again (the failed one too), replacements go back to the old id and
  the new id is deleted in UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS with what the update
  added; template, parameters, resources and outputs are those from before.
- Delete: every resource in reverse dependency order, in parallel where independent;
  DeletionPolicy Retain skips a resource (DELETE_SKIPPED); a failed Delete keeps that resource
  and what it depends on, deletes the rest, and the stack ends DELETE_FAILED.
- Outputs and exports exist once an operation completes, not while it runs.
"""

import copy
import json
import logging
import threading

from moto.cloudformation import cloudformation_backends
from moto.cloudformation.models import Event, Stack
from moto.cloudformation.parsing import (
    OutputMap,
    ResourceMap,
    clean_json,
    parse_and_create_resource,
    parse_and_update_resource,
)
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.ec2 import models as ec2_models
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.vpcs import VPCEndPoint
from moto.ecs.models import Service as EcsService

from . import ecs, timing
from .custom_resources import CustomResource, Request, generated_physical_id, is_custom

log = logging.getLogger("moto_launcher.stacks")

# moto's backends are not made for threads: the bed's own calls into them take turns.
MOTO_LOCK = threading.RLock()
# How long CloudFormation waits for an ECS service to stabilize (scaled).
ECS_STABILIZATION_SECONDS = 3 * 3600

COMPLETE, FAILED, CANCELLED = "COMPLETE", "FAILED", "CANCELLED"


# ---------------------------------------------------------------- the dependency graph


def references(node, found=None):
    """Logical ids named by Ref, Fn::GetAtt and Fn::Sub anywhere in `node`."""
    found = set() if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text, local = (value[0], value[1]) if isinstance(value, list) else (value, {})
                names = {part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]}
                found.update(names - set(local))
                if isinstance(value, list):
                    references(value[1], found)
                continue
            references(value, found)
    elif isinstance(node, list):
        for item in node:
            references(item, found)
    return found


def graph(template, resource_map):
    """The template's resources whose condition holds, and each one's direct dependencies."""
    resources = {}
    for name, definition in (template.get("Resources") or {}).items():
        condition = definition.get("Condition")
        if condition is None or resource_map.lazy_condition_map[condition]:
            resources[name] = definition
    dependencies = {}
    for name, definition in resources.items():
        depends_on = definition.get("DependsOn", [])
        named = set([depends_on] if isinstance(depends_on, str) else depends_on)
        named |= references(definition.get("Properties", {}))
        dependencies[name] = named & resources.keys()
    return resources, dependencies


def reversed_graph(dependencies):
    dependents = {name: set() for name in dependencies}
    for name, needs in dependencies.items():
        for need in needs:
            dependents.setdefault(need, set()).add(name)
    return dependents


def run_ordered(names, waits_for, work, cancelled=None):
    """Runs work(name) in a thread for each of `names` once every name in waits_for[name] (among
    `names`) has COMPLETE. With `cancelled` (an Event), the first FAILED sets it and nothing new
    starts; without, the run goes on. Returns {name: outcome} for the names that ran."""
    outcomes, running = {}, set()
    changed = threading.Condition()

    def run(name):
        try:
            outcome = work(name)
        except Exception:
            log.exception("%s: the bed failed", name)
            outcome = FAILED
        with changed:
            outcomes[name] = outcome
            running.discard(name)
            if outcome == FAILED and cancelled is not None:
                cancelled.set()
            changed.notify_all()

    with changed:
        while True:
            if cancelled is None or not cancelled.is_set():
                for name in names:
                    needs = waits_for.get(name, set()) & set(names)
                    if name not in outcomes and name not in running and all(outcomes.get(n) == COMPLETE for n in needs):
                        running.add(name)
                        timing.in_background(run, name)
            if not running:
                return outcomes
            changed.wait(0.1)


# ---------------------------------------------------------------- events and helpers


def add_event(stack, logical_id, resource_type, physical_id, status, reason=None):
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=physical_id or "",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def set_status(stack, status, reason=None):
    stack.status = status
    stack._add_stack_event(status, resource_status_reason=reason)


def physical_id_of(instance):
    try:
        return getattr(instance, "physical_resource_id", "") or ""
    except Exception:
        return ""


def resolve(definition, resource_map):
    with MOTO_LOCK:
        return clean_json(copy.deepcopy(definition.get("Properties", {})), resource_map)


def fingerprint(properties):
    return json.dumps(properties, sort_keys=True, default=str)


def backend_of(stack):
    return cloudformation_backends[stack.account_id][stack.region_name]


def lambda_backend_of(stack):
    return get_lambda_backend(stack.account_id, stack.region_name)


def snapshot_outputs(stack, resource_map, template):
    """Outputs and exports as describe-stacks shows them once the operation is complete."""
    outputs, exports = [], []
    output_map = OutputMap(resource_map, template, stack.stack_id)
    with MOTO_LOCK:
        try:
            for name in output_map.outputs:
                output = output_map[name]
                if output:
                    outputs.append({"OutputKey": output.key, "OutputValue": output.value,
                                    "Description": output.description, "ExportName": None})
            exports = output_map.exports
        except Exception:
            log.exception("stack %s: its outputs could not be resolved", stack.name)
    for export in exports:
        for output in outputs:
            if output["OutputValue"] == export.value:
                output["ExportName"] = export.name
    stack.qa_outputs, stack.qa_exports = outputs or None, exports


def publish_exports(stack):
    backend = backend_of(stack)
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        backend.exports.pop(name)
    for export in stack.qa_exports:
        backend.exports[export.name] = export


Stack.outputs = property(lambda self: getattr(self, "qa_outputs", None))
Stack.exports = property(lambda self: getattr(self, "qa_exports", []))
# Only what exists: moto's lazy map would create every resource when listed.
Stack.stack_resources = property(
    lambda self: [
        instance
        for name, instance in self.resource_map._parsed_resources.items()
        if name in self.resource_map._resource_json_map and instance is not None and not isinstance(instance, str)
    ]
)


# ---------------------------------------------------------------- one resource


class Operation:
    """One stack operation on one resource map: what it did, so that a rollback can undo it."""

    def __init__(self, stack, resource_map, resources):
        self.stack = stack
        self.map = resource_map
        self.resources = resources
        self.cancelled = threading.Event()
        self.resolved = dict(getattr(stack, "qa_resolved", {}))
        self.created = set()

    def event(self, name, status, reason=None):
        instance = self.map._parsed_resources.get(name)
        add_event(self.stack, name, self.resources[name]["Type"], physical_id_of(instance), status, reason)

    def custom_request(self, name, request_type, properties, old_properties=None):
        """Sends one request and waits for it: (status, reason); status CANCELLED when cancelled."""
        resource = self.map._parsed_resources[name]
        try:
            request = Request(self.stack, resource, request_type, properties, old_properties, lambda_backend_of(self.stack))
        except Exception as error:
            return FAILED, f"The ServiceToken of {name} names no function that exists: {error}"
        status, reason = request.wait(self.cancelled if request_type != "Delete" else threading.Event())
        return {"SUCCESS": COMPLETE}.get(status, status), reason

    def wait_stable(self, service):
        deployment_id = ecs.primary_deployment_id(service)
        judged = timing.wait_until(
            lambda: ecs.stability(service, deployment_id)[0] and ecs.stability(service, deployment_id),
            timing.scaled(ECS_STABILIZATION_SECONDS),
            self.cancelled,
        )
        if judged is None:
            if self.cancelled.is_set():
                return CANCELLED, ""
            return FAILED, f"Service {service.name} did not stabilize within 3 hours."
        verdict, reason = judged
        return (COMPLETE, "") if verdict == "stable" else (FAILED, reason)

    def update_native(self, name, definition, properties):
        """moto's update of one of its resources, then, for an ECS service, its stabilization:
        (status, reason)."""
        try:
            with MOTO_LOCK:
                changed = parse_and_update_resource(
                    name, copy.deepcopy(definition), self.map, self.stack.account_id, self.stack.region_name
                )
                if changed is not None:
                    self.map._parsed_resources[name] = changed
        except Exception as error:
            log.exception("%s: moto could not update it", name)
            return FAILED, f"{type(error).__name__}: {error}"
        if isinstance(changed, EcsService):
            ecs.configure(changed, properties)
            return self.wait_stable(changed)
        return COMPLETE, ""

    def create(self, name, action="CREATE"):
        definition = self.resources[name]
        resource_type = definition["Type"]
        add_event(self.stack, name, resource_type, "", f"{action}_IN_PROGRESS")
        try:
            properties = resolve(definition, self.map)
        except Exception as error:
            self.event(name, f"{action}_FAILED", f"Template error: {error}")
            return FAILED
        if is_custom(resource_type):
            resource = CustomResource(self.stack, name, resource_type)
            self.map._parsed_resources[name] = resource
            self.created.add(name)
            self.resolved[name] = properties  # what its Delete carries, whatever the answer
            status, reason = self.custom_request(name, "Create", properties)
            if status != COMPLETE:
                resource.physical_id = resource.physical_id or generated_physical_id(self.stack, name)
                self.event(name, f"{action}_FAILED", reason if status == FAILED else "Resource creation cancelled")
                return status
        else:
            try:
                with MOTO_LOCK:
                    refuse_second_gateway_endpoint(self.stack, resource_type, properties)
                    instance = parse_and_create_resource(
                        name, copy.deepcopy(definition), self.map, self.stack.account_id, self.stack.region_name
                    )
                    if instance is not None:
                        self.map._parsed_resources[name] = instance
                        self.created.add(name)
                        tag(self.stack, name, instance, self.map)
            except Exception as error:
                log.exception("%s: moto could not create it", name)
                self.event(name, f"{action}_FAILED", f"{type(error).__name__}: {error}")
                return FAILED
            if isinstance(instance, EcsService):
                ecs.configure(instance, properties)
                status, reason = self.wait_stable(instance)
                if status != COMPLETE:
                    self.event(name, f"{action}_FAILED", reason if status == FAILED else "Resource creation cancelled")
                    return status
        self.resolved[name] = properties
        self.event(name, f"{action}_COMPLETE")
        return COMPLETE

    def delete(self, name, definition, properties):
        resource_type = definition["Type"]
        instance = self.map._parsed_resources.get(name)
        if definition.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate") and not (
            definition.get("DeletionPolicy") == "RetainExceptOnCreate" and self.stack.status == "ROLLBACK_IN_PROGRESS"
        ):
            add_event(self.stack, name, resource_type, physical_id_of(instance), "DELETE_SKIPPED")
            return COMPLETE
        add_event(self.stack, name, resource_type, physical_id_of(instance), "DELETE_IN_PROGRESS")
        if is_custom(resource_type):
            status, reason = self.custom_request(name, "Delete", properties or definition.get("Properties", {}))
            if status != COMPLETE:
                add_event(self.stack, name, resource_type, physical_id_of(instance), "DELETE_FAILED", reason)
                return FAILED
        elif instance is not None:
            try:
                with MOTO_LOCK:
                    if isinstance(instance, EcsService):
                        instance.qa_backend.delete_service(instance.cluster_name, instance.name, force=True)
                    elif isinstance(instance, VPCEndPoint):
                        # moto's model of AWS::EC2::VPCEndpoint deletes nothing; CloudFormation
                        # deletes the endpoint, and EC2 its routes in the route tables.
                        backend = ec2_models.ec2_backends[self.stack.account_id][self.stack.region_name]
                        backend.delete_vpc_endpoints([instance.id])
                    else:
                        self.map._delete_resource(instance, definition)
            except Exception as error:
                log.exception("%s: moto could not delete it", name)
                add_event(self.stack, name, resource_type, physical_id_of(instance), "DELETE_FAILED", str(error))
                return FAILED
        self.map._parsed_resources.pop(name, None)
        add_event(self.stack, name, resource_type, physical_id_of(instance), "DELETE_COMPLETE")
        return COMPLETE

    def delete_all(self, names, dependencies, definitions):
        """Deletes `names` in reverse dependency order; the names that failed."""
        dependents = reversed_graph({n: dependencies.get(n, set()) for n in names})
        outcomes = run_ordered(
            list(names), dependents, lambda n: self.delete(n, definitions[n], self.resolved.get(n))
        )
        return sorted(n for n, outcome in outcomes.items() if outcome != COMPLETE)


def tag(stack, name, instance, resource_map):
    """The stack's tags on EC2 resources, as moto's own create does."""
    if isinstance(instance, TaggedEC2Resource):
        tags = dict(resource_map.tags, **{"aws:cloudformation:logical-id": name})
        ec2_models.ec2_backends[stack.account_id][stack.region_name].create_tags([instance.physical_resource_id], tags)


# ---------------------------------------------------------------- create


def operation_thread(stack, work):
    """Runs a stack operation in the background; an error in the bed still ends it."""

    def run():
        try:
            work()
        except Exception as error:
            log.exception("stack %s: the operation failed", stack.name)
            operation = stack.status.removesuffix("_IN_PROGRESS")
            set_status(stack, f"{operation}_FAILED", f"moto_launcher: {error!r}")

    timing.in_background(run)


def create_resources(self):
    self.status = "CREATE_IN_PROGRESS"
    self.description = self.template_dict.get("Description")
    self.resource_map.tags.update(
        {"aws:cloudformation:stack-name": self.name, "aws:cloudformation:stack-id": self.stack_id}
    )
    operation_thread(self, lambda: create_stack(self))


def create_stack(stack):
    resources, dependencies = graph(stack.template_dict, stack.resource_map)
    operation = Operation(stack, stack.resource_map, resources)
    outcomes = run_ordered(list(resources), dependencies, operation.create, operation.cancelled)
    failed = [name for name, outcome in outcomes.items() if outcome == FAILED]
    if not failed:
        stack.qa_resolved = operation.resolved
        snapshot_outputs(stack, stack.resource_map, stack.template_dict)
        publish_exports(stack)
        set_status(stack, "CREATE_COMPLETE")
        return
    set_status(
        stack,
        "ROLLBACK_IN_PROGRESS",
        f"The following resource(s) failed to create: [{', '.join(sorted(failed))}]. Rollback requested by user.",
    )
    undeletable = operation.delete_all(operation.created, dependencies, resources)
    if undeletable:
        set_status(stack, "ROLLBACK_FAILED", f"The following resource(s) failed to delete: [{', '.join(undeletable)}].")
    else:
        set_status(stack, "ROLLBACK_COMPLETE")


Stack.create_resources = create_resources
# moto's readiness check would complete the stack on the first SUCCESS; the operation decides.
Stack.verify_readiness = lambda self: None


# ---------------------------------------------------------------- update


def update(self, template, role_arn=None, parameters=None, tags=None):
    set_status(self, "UPDATE_IN_PROGRESS", "User Initiated")
    new_template = self.parse_template(template)
    new_map = ResourceMap(
        self.stack_id,
        self.name,
        parameters if parameters is not None else self.parameters,
        self.tags,
        region_name=self.region_name,
        account_id=self.account_id,
        template=new_template,
        cross_stack_resources=backend_of(self).exports,
    )
    new_map.load()
    new_map.tags.update(self.resource_map.tags)
    operation_thread(self, lambda: update_stack(self, template, new_template, new_map, parameters, role_arn, tags))


def update_stack(stack, template, new_template, new_map, parameters, role_arn, tags):
    old_map = stack.resource_map
    old_resources, old_dependencies = graph(stack.template_dict, old_map)
    new_resources, new_dependencies = graph(new_template, new_map)
    for name in new_resources.keys() & old_resources.keys():
        if name in old_map._parsed_resources:
            new_map._parsed_resources[name] = old_map._parsed_resources[name]
    operation = Operation(stack, new_map, new_resources)
    updated = {}  # name -> (old properties, old physical id, old instance)
    replaced = []  # (name, old physical id, old properties)

    def visit(name):
        if name not in old_resources:
            return operation.create(name)
        definition = new_resources[name]
        properties = resolve(definition, new_map)
        old_properties = operation.resolved.get(name, {})
        if fingerprint(properties) == fingerprint(old_properties):
            return COMPLETE
        instance = new_map._parsed_resources.get(name)
        updated[name] = (old_properties, getattr(instance, "physical_id", None), instance)
        operation.event(name, "UPDATE_IN_PROGRESS")
        if is_custom(definition["Type"]):
            old_id = instance.physical_id
            status, reason = operation.custom_request(name, "Update", properties, old_properties)
            if status != COMPLETE:
                instance.physical_id = old_id
                operation.event(name, "UPDATE_FAILED", reason if status == FAILED else "Resource update cancelled")
                return status
            if instance.physical_id != old_id:
                replaced.append((name, old_id, old_properties))
        else:
            status, reason = operation.update_native(name, definition, properties)
            if status != COMPLETE:
                operation.event(name, "UPDATE_FAILED", reason if status == FAILED else "Resource update cancelled")
                return status
        operation.resolved[name] = properties
        operation.event(name, "UPDATE_COMPLETE")
        return COMPLETE

    outcomes = run_ordered(list(new_resources), new_dependencies, visit, operation.cancelled)
    failed = [name for name, outcome in outcomes.items() if outcome == FAILED]
    added = [name for name in outcomes if name not in old_resources and name in operation.created]
    if not failed:
        set_status(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        cleanup = Operation(stack, old_map, old_resources)
        cleanup.resolved = dict(getattr(stack, "qa_resolved", {}))
        removed = [name for name in old_resources if name not in new_resources and name in old_map._parsed_resources]
        cleanup.delete_all(removed, old_dependencies, old_resources)
        delete_replaced(stack, operation, replaced, new_resources)
        stack.resource_map = new_map
        stack.template, stack.template_dict = template, new_template
        if parameters is not None:
            stack.parameters = parameters
        stack.role_arn = role_arn
        if tags is not None:
            stack.tags = tags
        stack.qa_resolved = {n: p for n, p in operation.resolved.items() if n in new_resources}
        stack.output_map = OutputMap(new_map, new_template, stack.stack_id)
        snapshot_outputs(stack, new_map, new_template)
        publish_exports(stack)
        set_status(stack, "UPDATE_COMPLETE")
        return
    set_status(
        stack, "UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{', '.join(sorted(failed))}]."
    )
    rollback = Operation(stack, old_map, old_resources)
    rollback.resolved = dict(getattr(stack, "qa_resolved", {}))
    replaced_names = {name for name, _, _ in replaced}

    def restore(name):
        if name not in updated:
            return COMPLETE
        old_properties, old_id, instance = updated[name]
        definition = old_resources[name]
        if name in replaced_names:
            # The old resource was never deleted: CloudFormation points back at it.
            new_id = instance.physical_id
            instance.physical_id = old_id
            replaced_back.append((name, new_id, operation.resolved.get(name)))
            return COMPLETE
        rollback.event(name, "UPDATE_IN_PROGRESS")
        if is_custom(definition["Type"]):
            attempted = operation.resolved.get(name) or resolve(new_resources[name], new_map)
            status, reason = rollback.custom_request(name, "Update", old_properties, attempted)
            if status != COMPLETE:
                rollback.event(name, "UPDATE_FAILED", reason)
                return FAILED
        else:
            status, reason = rollback.update_native(name, definition, resolve(definition, old_map))
            if status != COMPLETE:
                rollback.event(name, "UPDATE_FAILED", reason)
                return FAILED
        rollback.event(name, "UPDATE_COMPLETE")
        return COMPLETE

    replaced_back = []
    outcomes = run_ordered(list(old_resources), old_dependencies, restore)
    not_restored = sorted(n for n, outcome in outcomes.items() if outcome != COMPLETE)
    set_status(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    operation.delete_all(added, new_dependencies, new_resources)
    delete_replaced(stack, operation, replaced_back, new_resources)
    if not_restored:
        set_status(stack, "UPDATE_ROLLBACK_FAILED", f"The following resource(s) failed to update: [{', '.join(not_restored)}].")
    else:
        set_status(stack, "UPDATE_ROLLBACK_COMPLETE")


def refuse_second_gateway_endpoint(stack, resource_type, properties):
    """EC2 refuses a gateway endpoint on a route table that already routes that service's prefix
    list through another endpoint (a route table carries one such route: AWS MDAA docs,
    S3ImageLayerEndpointProps.external); moto creates it and later loses both endpoints' route."""
    if resource_type != "AWS::EC2::VPCEndpoint" or properties.get("VpcEndpointType", "Gateway") != "Gateway":
        return
    backend = ec2_models.ec2_backends[stack.account_id][stack.region_name]
    service = properties.get("ServiceName", "")
    for endpoint in backend.vpc_end_points.values():
        if endpoint.service_name != service or str(endpoint.state).lower() == "deleted":
            continue
        for table in set(endpoint.route_table_ids or []) & set(properties.get("RouteTableIds") or []):
            raise ValueError(
                f"RouteAlreadyExists: route table {table} already has a route to {service} through {endpoint.id}"
            )


def delete_replaced(stack, operation, replaced, definitions):
    """Delete requests for the physical ids a replacement left behind (failures do not fail the stack)."""
    for name, physical_id, properties in replaced:
        instance = operation.map._parsed_resources[name]
        leftover = CustomResource(stack, name, instance.resource_type)
        leftover.physical_id = physical_id
        cleanup = Operation(stack, ResourceMapView({name: leftover}), {name: definitions[name]})
        cleanup.resolved[name] = properties
        cleanup.delete(name, definitions[name], properties)


class ResourceMapView:
    """Just enough of a resource map for one Delete of a leftover physical id."""

    def __init__(self, parsed):
        self._parsed_resources = parsed


Stack.update = update


# ---------------------------------------------------------------- delete


def delete(self):
    set_status(self, "DELETE_IN_PROGRESS", "User Initiated")
    operation_thread(self, lambda: delete_stack(self))


def delete_stack(stack):
    resources, dependencies = graph(stack.template_dict, stack.resource_map)
    operation = Operation(stack, stack.resource_map, resources)
    present = [name for name in resources if name in stack.resource_map._parsed_resources]
    failed = operation.delete_all(present, dependencies, resources)
    if failed:
        # The stack stays, DELETE_FAILED, with what could not go and what that needs.
        backend = backend_of(stack)
        backend.deleted_stacks.pop(stack.stack_id, None)
        backend.stacks[stack.stack_id] = stack
        set_status(stack, "DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(failed)}].")
    else:
        set_status(stack, "DELETE_COMPLETE")


Stack.delete = delete
