"""The bed's CloudFormation against CloudFormation's documented behaviour, one test per behaviour
(sources in ``launcher/stacks.py`` and ``launcher/custom_resources.py``; live sync's in
``launcher/s3_eventbridge.py`` and ``launcher/sqs_event_source.py``)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

SETTLE_WITHIN = 60
REGION = "us-east-1"


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def custom(bed, behaviour="", depends_on=None, **properties):
    resource = {
        "Type": "Custom::StandIn",
        "Properties": {"ServiceToken": bed.token, "Behaviour": behaviour, **properties},
    }
    if depends_on:
        resource["DependsOn"] = depends_on
    return resource


def template(resources, parameters=None, outputs=None):
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    if parameters:
        body["Parameters"] = {key: {"Type": "String"} for key in parameters}
    if outputs:
        body["Outputs"] = outputs
    return json.dumps(body)


def as_parameters(values):
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in (values or {}).items()]


class Run:
    """A stack operation's outcome: its final status and its events, oldest first."""

    def __init__(self, status, events, took):
        self.status, self.events, self.took = status, events, took

    def index(self, logical_id, status):
        for i, e in enumerate(self.events):
            if e["LogicalResourceId"] == logical_id and e["ResourceStatus"] == status:
                return i
        raise AssertionError(f"no {status} event for {logical_id}: {self.show()}")

    def has(self, logical_id, status):
        return any(e["LogicalResourceId"] == logical_id and e["ResourceStatus"] == status for e in self.events)

    def reason(self, logical_id, status):
        return self.events[self.index(logical_id, status)].get("ResourceStatusReason", "")

    def show(self):
        return "\n".join(
            f"  {e['LogicalResourceId']} {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}" for e in self.events
        )


def settle(bed, stack_id, earlier=0):
    started = time.monotonic()
    while True:
        status = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            events = bed.cfn.describe_stack_events(StackName=stack_id)["StackEvents"][::-1]
            return Run(status, events[earlier:], time.monotonic() - started)
        assert time.monotonic() - started < SETTLE_WITHIN, f"{stack_id} still {status}"
        time.sleep(0.05)


def create(bed, body, parameters=None):
    stack_id = bed.cfn.create_stack(StackName=name("bed"), TemplateBody=body, Parameters=as_parameters(parameters))[
        "StackId"
    ]
    return stack_id, settle(bed, stack_id)


def update(bed, stack_id, body, parameters=None):
    earlier = len(bed.cfn.describe_stack_events(StackName=stack_id)["StackEvents"])
    bed.cfn.update_stack(StackName=stack_id, TemplateBody=body, Parameters=as_parameters(parameters))
    return settle(bed, stack_id, earlier)


def delete(bed, stack_id):
    earlier = len(bed.cfn.describe_stack_events(StackName=stack_id)["StackEvents"])
    bed.cfn.delete_stack(StackName=stack_id)
    return settle(bed, stack_id, earlier)


# ---------------------------------------------------------------- 1. dependency order


def test_every_resource_waits_for_its_dependencies_and_independent_ones_run_in_parallel(bed):
    body = template(
        {
            "Slow": custom(bed, "wait:1", Echo="slow"),
            "AlsoSlow": custom(bed, "wait:1"),
            "AfterSlow": custom(bed, depends_on="Slow"),
            # A resource moto creates, named after the custom resource's answer.
            "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::Sub": "g-${Slow.Echo}-x"}}},
        }
    )
    stack_id, run = create(bed, body)

    assert run.status == "CREATE_COMPLETE", run.show()
    assert run.index("AfterSlow", "CREATE_IN_PROGRESS") > run.index("Slow", "CREATE_COMPLETE"), run.show()
    assert run.index("Group", "CREATE_IN_PROGRESS") > run.index("Slow", "CREATE_COMPLETE"), run.show()
    assert run.index("AlsoSlow", "CREATE_IN_PROGRESS") < run.index("Slow", "CREATE_COMPLETE"), run.show()
    assert run.took < 2.5, f"the two slow resources ran side by side: {run.took:.1f} s"
    groups = bed.client("logs").describe_log_groups(logGroupNamePrefix="g-slow-x")["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["g-slow-x"], "Fn::Sub saw the answer's Data"


def test_a_resource_that_depends_on_a_failed_custom_resource_is_never_created(bed):
    group_name = name("never")
    body = template(
        {
            "Check": custom(bed, "fail"),
            "Group": {"Type": "AWS::Logs::LogGroup", "DependsOn": "Check", "Properties": {"LogGroupName": group_name}},
        }
    )
    _, run = create(bed, body)

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    assert not run.has("Group", "CREATE_IN_PROGRESS"), run.show()
    assert bed.client("logs").describe_log_groups(logGroupNamePrefix=group_name)["logGroups"] == []


# ---------------------------------------------------------------- 2. ECS stabilization


def ecs_template(family, breaker=True):
    return template(
        {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
            "Tasks": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": family,
                    "ContainerDefinitions": [{"Name": "web", "Image": "nginx", "Memory": 128, "Essential": True}],
                },
            },
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "Cluster": {"Ref": "Cluster"},
                    "TaskDefinition": {"Ref": "Tasks"},
                    "DesiredCount": 2,
                    "LaunchType": "EC2",
                    "DeploymentConfiguration": {"DeploymentCircuitBreaker": {"Enable": breaker, "Rollback": True}},
                },
            },
            "AfterService": custom(bed_token_holder[0], depends_on="Service"),
        },
        outputs={"ServiceName": {"Value": {"Fn::GetAtt": ["Service", "Name"]}}},
    )


bed_token_holder = []


@pytest.fixture
def ecs_bed(bed):
    bed_token_holder[:] = [bed]
    yield bed
    bed.set_faults({})


def test_an_ecs_service_completes_only_once_its_tasks_run(ecs_bed):
    bed = ecs_bed
    stack_id, run = create(bed, ecs_template(name("healthy")))

    assert run.status == "CREATE_COMPLETE", run.show()
    assert run.index("AfterService", "CREATE_IN_PROGRESS") > run.index("Service", "CREATE_COMPLETE")
    assert run.took >= 0.3, "a task takes TASK_START_SECONDS (scaled) to run"
    outputs = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["Outputs"]
    cluster = bed.cfn.describe_stack_resource(StackName=stack_id, LogicalResourceId="Cluster")
    service = bed.client("ecs").describe_services(
        cluster=cluster["StackResourceDetail"]["PhysicalResourceId"], services=[outputs[0]["OutputValue"]]
    )["services"][0]
    assert (service["runningCount"], service["desiredCount"]) == (2, 2)
    assert [d["rolloutState"] for d in service["deployments"]] == ["COMPLETED"]


def test_an_ecs_service_whose_tasks_stop_fails_with_the_circuit_breaker_and_its_stopped_tasks_say_why(ecs_bed):
    bed = ecs_bed
    family = name("crashing")
    bed.set_faults({family: {"stoppedReason": "Essential container in task exited", "reason": "boom", "exitCode": 3}})
    stack_id, run = create(bed, ecs_template(family))

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    assert "ECS Deployment Circuit Breaker was triggered" in run.reason("Service", "CREATE_FAILED")
    assert not run.has("AfterService", "CREATE_IN_PROGRESS"), run.show()
    ecs = bed.client("ecs")
    clusters = ecs.list_clusters()["clusterArns"]
    stopped = []
    for cluster in clusters:
        arns = ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]
        if arns:
            described = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
            stopped += [t for t in described if family in t["taskDefinitionArn"]]
    assert len(stopped) >= 3, "the circuit breaker trips after 3 failed tasks"
    crashed = [t for t in stopped if t.get("stoppedReason") == "Essential container in task exited"]
    assert crashed and crashed[0]["containers"][0]["exitCode"] == 3, crashed[:1]
    assert crashed[0]["containers"][0]["reason"] == "boom"


# ---------------------------------------------------------------- 3. cancellation


def test_the_first_failure_cancels_what_is_in_progress_and_sends_its_delete_at_once(bed):
    body = template({"Fails": custom(bed, "wait:0.3,fail"), "Slow": custom(bed, "wait:4")})
    stack_id, run = create(bed, body)

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    assert run.reason("Slow", "CREATE_FAILED") == "Resource creation cancelled"
    rollback = next(e for e in run.events if e["ResourceStatus"] == "ROLLBACK_IN_PROGRESS")
    assert "[Fails]" in rollback["ResourceStatusReason"], "the cancelled one is not a cause"
    assert run.took < 3, f"the rollback did not wait for the slow Create ({run.took:.1f} s)"
    create_request, delete_request = [e for _, e in bed.stand_in.requests("Slow", stack_id)]
    assert delete_request["RequestType"] == "Delete"
    assert delete_request["PhysicalResourceId"].startswith(f"{stack_id.split('/')[1]}-Slow-"), "a generated id"
    time.sleep(4.2)  # the slow Create answers late
    late = [status for request_id, status in bed.stand_in.answers if request_id == create_request["RequestId"]]
    assert late == [200], "the late answer is taken and ignored"
    assert bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "ROLLBACK_COMPLETE"


# ---------------------------------------------------------------- 4. updates


def test_updates_follow_dependencies_and_resolved_properties(bed):
    body = template(
        {
            "First": custom(bed, "wait:0.3", Echo={"Ref": "Version"}),
            "Second": custom(bed, Echo={"Fn::GetAtt": ["First", "Echo"]}),
            "Unrelated": custom(bed, Echo="constant"),
        },
        parameters=["Version"],
    )
    stack_id, _ = create(bed, body, {"Version": "1"})

    run = update(bed, stack_id, body, {"Version": "2"})

    assert run.status == "UPDATE_COMPLETE", run.show()
    assert run.index("Second", "UPDATE_IN_PROGRESS") > run.index("First", "UPDATE_COMPLETE")
    assert not run.has("Unrelated", "UPDATE_IN_PROGRESS"), "same resolved properties: no Update"
    second_update = bed.stand_in.requests("Second", stack_id)[-1][1]
    assert second_update["OldResourceProperties"]["Echo"] == "1"
    assert second_update["ResourceProperties"]["Echo"] == "2", "the template text is the same, the value is not"


def test_a_failed_update_restores_resources_parameters_and_outputs_and_deletes_the_new_id(bed):
    body = template(
        {
            "Replaced": custom(bed, "new-id", Echo={"Ref": "Version"}),
            "Failing": custom(bed, {"Fn::If": ["Break", "fail", ""]}, depends_on="Replaced", Echo={"Ref": "Version"}),
        },
        parameters=["Version", "Broken"],
        outputs={"Echo": {"Value": {"Fn::GetAtt": ["Replaced", "Id"]}}},
    )
    body = json.loads(body)
    body["Conditions"] = {"Break": {"Fn::Equals": [{"Ref": "Broken"}, "yes"]}}
    body = json.dumps(body)
    stack_id, created = create(bed, body, {"Version": "1", "Broken": "no"})
    assert created.status == "CREATE_COMPLETE", created.show()
    before = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    old_id = before["Outputs"][0]["OutputValue"]

    run = update(bed, stack_id, body, {"Version": "2", "Broken": "yes"})

    assert run.status == "UPDATE_ROLLBACK_COMPLETE", run.show()
    after = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    assert after["Outputs"] == before["Outputs"], "outputs as before"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in after["Parameters"]} == {"Version": "1", "Broken": "no"}
    requests = [e for _, e in bed.stand_in.requests("Replaced", stack_id)]
    assert [r["RequestType"] for r in requests] == ["Create", "Update", "Delete"], run.show()
    deleted = requests[-1]
    assert deleted["PhysicalResourceId"] != old_id, "the replacement's new id is deleted"
    assert run.index("Replaced", "DELETE_COMPLETE") > run.events.index(
        next(e for e in run.events if e["ResourceStatus"] == "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    )
    failing = [e["RequestType"] for _, e in bed.stand_in.requests("Failing", stack_id)]
    assert failing == ["Create", "Update", "Update"], "the failed resource gets its old properties back"


def test_removed_resources_and_replaced_ids_are_deleted_only_in_the_cleanup_phase(bed):
    resources = {"Kept": custom(bed, "new-id", Echo={"Ref": "Version"}), "Removed": custom(bed)}
    outputs = {"Id": {"Value": {"Fn::GetAtt": ["Kept", "Id"]}}}
    stack_id, _ = create(bed, template(resources, ["Version"], outputs), {"Version": "1"})
    old_id = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["Outputs"][0]["OutputValue"]
    del resources["Removed"]

    run = update(bed, stack_id, template(resources, ["Version"], outputs), {"Version": "2"})

    assert run.status == "UPDATE_COMPLETE", run.show()
    cleanup = [i for i, e in enumerate(run.events) if e["ResourceStatus"] == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"]
    assert cleanup and run.index("Removed", "DELETE_IN_PROGRESS") > cleanup[0] > run.index("Kept", "UPDATE_COMPLETE")
    kept = [e for _, e in bed.stand_in.requests("Kept", stack_id)]
    assert [r["RequestType"] for r in kept] == ["Create", "Update", "Delete"]
    assert kept[1]["PhysicalResourceId"] == kept[2]["PhysicalResourceId"] == old_id, "the old id's Delete"
    new_id = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["Outputs"][0]["OutputValue"]
    assert new_id != old_id


# ---------------------------------------------------------------- 5. answers checked


@pytest.mark.parametrize(
    "behaviour, reason",
    [("too-long", "Response object is too long."), ("no-id", "Invalid PhysicalResourceId")],
)
def test_answers_cloudformation_refuses_fail_the_resource(bed, behaviour, reason):
    _, run = create(bed, template({"Answers": custom(bed, behaviour)}))

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    assert run.reason("Answers", "CREATE_FAILED") == reason


def test_an_answer_that_is_not_a_put_is_refused_and_the_resource_times_out_with_cloudformations_message(bed):
    stack_id, run = create(bed, template({"Posts": custom(bed, "post", ServiceTimeout=1)}))

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    request = bed.stand_in.requests("Posts", stack_id)[0][1]
    assert (request["RequestId"], 403) in bed.stand_in.answers
    reason = run.reason("Posts", "CREATE_FAILED")
    assert reason.startswith("CloudFormation did not receive a response from your Custom Resource.")
    assert request["RequestId"] in reason
    delete_request = bed.stand_in.requests("Posts", stack_id)[1][1]
    assert delete_request["PhysicalResourceId"].startswith(f"{stack_id.split('/')[1]}-Posts-")


def test_every_property_scalar_reaches_the_function_as_a_string(bed):
    stack_id, run = create(
        bed, template({"Typed": custom(bed, Number=30, Flag=True, Items=[1, False, "x"], Nested={"N": 1.5})})
    )

    assert run.status == "CREATE_COMPLETE", run.show()
    properties = bed.stand_in.requests("Typed", stack_id)[0][1]["ResourceProperties"]
    assert (properties["Number"], properties["Flag"]) == ("30", "true")
    assert properties["Items"] == ["1", "false", "x"] and properties["Nested"] == {"N": "1.5"}


# ---------------------------------------------------------------- 6. deletion


def test_deletion_runs_in_reverse_dependency_order_and_honours_retain(bed):
    body = template(
        {
            "Base": custom(bed),
            "Middle": custom(bed, depends_on="Base"),
            "Top": custom(bed, depends_on="Middle"),
            "Kept": {**custom(bed), "DeletionPolicy": "Retain"},
        }
    )
    stack_id, _ = create(bed, body)

    run = delete(bed, stack_id)

    assert run.status == "DELETE_COMPLETE", run.show()
    assert run.index("Top", "DELETE_COMPLETE") < run.index("Middle", "DELETE_IN_PROGRESS")
    assert run.index("Middle", "DELETE_COMPLETE") < run.index("Base", "DELETE_IN_PROGRESS")
    assert run.has("Kept", "DELETE_SKIPPED")
    assert [e["RequestType"] for _, e in bed.stand_in.requests("Kept", stack_id)] == ["Create"]


def test_a_second_s3_gateway_endpoint_on_a_route_table_fails_and_a_deleted_one_is_gone_with_its_routes(bed):
    ec2 = bed.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]["RouteTableId"]
    endpoint = {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {
            "VpcId": vpc,
            "ServiceName": "com.amazonaws.us-east-1.s3",
            "VpcEndpointType": "Gateway",
            "RouteTableIds": [table],
        },
    }
    stack_id, created = create(bed, template({"Endpoint": endpoint}))
    assert created.status == "CREATE_COMPLETE", created.show()

    def s3_routes():
        routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
        return [r for r in routes if r.get("DestinationPrefixListId")]

    assert s3_routes()
    _, second = create(bed, template({"Endpoint": endpoint}))
    assert second.status == "ROLLBACK_COMPLETE", second.show()
    assert "RouteAlreadyExists" in second.reason("Endpoint", "CREATE_FAILED")
    assert s3_routes(), "the first endpoint's route stays"

    run = delete(bed, stack_id)

    assert run.status == "DELETE_COMPLETE", run.show()
    assert s3_routes() == []
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    assert all(e["State"].lower() == "deleted" for e in endpoints), endpoints


def test_a_failed_delete_keeps_that_resource_and_what_it_needs_and_deletes_the_rest(bed):
    body = template(
        {
            "Needed": custom(bed),
            "Stubborn": custom(bed, "fail-delete", depends_on="Needed"),
            "Other": custom(bed),
        }
    )
    stack_id, _ = create(bed, body)

    run = delete(bed, stack_id)

    assert run.status == "DELETE_FAILED", run.show()
    assert run.has("Stubborn", "DELETE_FAILED") and run.has("Other", "DELETE_COMPLETE")
    assert not run.has("Needed", "DELETE_IN_PROGRESS"), "what the failed one depends on stays"
    assert bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_FAILED"


# ---------------------------------------------------------------- 7. Lambda's retries


def test_a_function_error_on_an_asynchronous_invocation_is_retried_twice(bed):
    stack_id, run = create(bed, template({"Flaky": custom(bed, "error:2")}))

    assert run.status == "CREATE_COMPLETE", run.show()
    request_id = bed.stand_in.requests("Flaky", stack_id)[0][1]["RequestId"]
    attempts = [at for at, e in bed.stand_in.invocations if e["RequestId"] == request_id]
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.6 and attempts[2] - attempts[1] >= 1.2, "1 and 2 minutes, scaled"


def test_a_new_task_definition_revision_updates_what_refers_to_it(bed):
    body = template(
        {
            "Tasks": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": name("revised"),
                    "ContainerDefinitions": [{"Name": "web", "Image": {"Ref": "Image"}, "Memory": 128}],
                },
            },
            "Watcher": custom(bed, TaskDefinitions=[{"Ref": "Tasks"}]),
        },
        parameters=["Image"],
    )
    stack_id, _ = create(bed, body, {"Image": "nginx:1"})

    run = update(bed, stack_id, body, {"Image": "nginx:2"})

    assert run.status == "UPDATE_COMPLETE", run.show()
    watcher = [e for _, e in bed.stand_in.requests("Watcher", stack_id)]
    assert [r["RequestType"] for r in watcher] == ["Create", "Update"]
    old = watcher[1]["OldResourceProperties"]["TaskDefinitions"][0]
    new = watcher[1]["ResourceProperties"]["TaskDefinitions"][0]
    assert (old.rsplit(":", 1)[1], new.rsplit(":", 1)[1]) == ("1", "2"), (old, new)


# ---------------------------------------------------------------- 9. logs


def test_each_invocation_names_its_function_and_log_group_for_the_beds_cloudwatch_logs(bed):
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
    }
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"ZipFile": "#!/bin/sh"},
        },
    }
    logged = dict(function, Properties=dict(function["Properties"], LoggingConfig={"LogGroup": {"Ref": "Logs"}}))
    body = template(
        {
            "Role": role,
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
            "Plain": function,
            "Logged": logged,
            "ByPlain": {"Type": "Custom::StandIn", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Plain", "Arn"]}}},
            "ByLogged": {"Type": "Custom::StandIn", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Logged", "Arn"]}}},
        }
    )
    stack_id, run = create(bed, body)

    assert run.status == "CREATE_COMPLETE", run.show()
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in bed.cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
    }
    targets = {
        logical_id: bed.stand_in.targets[bed.stand_in.requests(logical_id, stack_id)[0][1]["RequestId"]]
        for logical_id in ("ByPlain", "ByLogged")
    }
    # Lambda's default group, and the LoggingConfig's (Lambda developer guide, "Configuring
    # CloudWatch log groups"); get-function-configuration answers the same.
    assert targets["ByPlain"] == (physical["Plain"], f"/aws/lambda/{physical['Plain']}")
    assert targets["ByLogged"] == (physical["Logged"], physical["Logs"])
    configuration = bed.client("lambda").get_function_configuration(FunctionName=physical["Logged"])
    assert configuration["LoggingConfig"]["LogGroup"] == physical["Logs"]


def test_a_stopped_tasks_container_lines_are_in_its_awslogs_stream(ecs_bed):
    bed = ecs_bed
    family = name("printing")
    group = name("ecs-logs")
    bed.client("logs").create_log_group(logGroupName=group)
    body = json.loads(ecs_template(family))
    container = body["Resources"]["Tasks"]["Properties"]["ContainerDefinitions"][0]
    container["LogConfiguration"] = {
        "LogDriver": "awslogs",
        "Options": {"awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"},
    }
    bed.set_faults({f"{family}:1": {"stoppedReason": "Essential container in task exited", "exitCode": 1,
                                    "logLines": ["starting", "fatal: no database"]}})
    stack_id, run = create(bed, json.dumps(body))

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    logs = bed.client("logs")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert streams, "each stopped task's container wrote its stream"
    # <awslogs-stream-prefix>/<container name>/<task id> (ECS developer guide, "Using the awslogs log driver")
    prefix, container_name, task_id = streams[0]["logStreamName"].split("/")
    assert (prefix, container_name) == ("web", "web") and task_id, streams[0]["logStreamName"]
    events = logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"])["events"]
    assert [e["message"] for e in events] == ["starting", "fatal: no database"]


# ---------------------------------------------------------------- 10. tasks on container instances


def app_on_instances_template(family, env_file_arn):
    """cfn/aws-deploy.yaml's shape: an auto scaling group whose launch template's user data joins
    the cluster, and a bridge-mode app task with a dynamic host port, an env file, the authorities mount."""
    user_data = "#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'EOF'\nECS_CLUSTER=${Cluster}\nEOF\n"
    app = {
        "Name": "qa-server-app",
        "Image": "qa_server",
        "Memory": 128,
        "Essential": True,
        "PortMappings": [{"Name": "http", "ContainerPort": 3000, "HostPort": 0, "Protocol": "tcp"}],
        "EnvironmentFiles": [{"Type": "s3", "Value": env_file_arn}],
        "MountPoints": [
            {"SourceVolume": "authorities", "ContainerPath": "/app/ld4p/qa_server-webapp/config/authorities"}
        ],
    }
    return template(
        {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {
                        "ImageId": "ami-12c6146b",
                        "InstanceType": "t3.small",
                        "UserData": {"Fn::Base64": {"Fn::Sub": user_data}},
                    }
                },
            },
            "AutoScalingGroup": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "AvailabilityZones": ["us-east-1a"],
                    "LaunchTemplate": {
                        "LaunchTemplateId": {"Ref": "LaunchTemplate"},
                        "Version": {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]},
                    },
                    "MinSize": "2",
                    "MaxSize": "2",
                    "DesiredCapacity": "2",
                },
            },
            "Tasks": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": family,
                    "NetworkMode": "bridge",
                    "RequiresCompatibilities": ["EC2"],
                    "ContainerDefinitions": [app],
                    "Volumes": [{"Name": "authorities"}],
                },
            },
            "Service": {
                "Type": "AWS::ECS::Service",
                "DependsOn": "AutoScalingGroup",
                "Properties": {
                    "Cluster": {"Ref": "Cluster"},
                    "TaskDefinition": {"Ref": "Tasks"},
                    "DesiredCount": 2,
                    "LaunchType": "EC2",
                },
            },
        },
        outputs={
            "Cluster": {"Value": {"Ref": "Cluster"}},
            "ServiceName": {"Value": {"Fn::GetAtt": ["Service", "Name"]}},
        },
    )


def call(method, url):
    """(status, content type, body: parsed when JSON) of an HTTP call."""
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        response = urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        kind, body = response.headers.get("Content-Type"), response.read()
        return response.status, kind, json.loads(body) if kind == "application/json" else body


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_an_app_task_on_a_container_instance_has_a_host_port_where_its_qa_server_stand_in_lists_reloads_with_the_token_and_refuses_a_wrong_one_with_401(
    bed,
):
    linked_data = os.path.join(bed.authorities, "linked_data")
    for leftover in os.listdir(linked_data):
        os.remove(os.path.join(linked_data, leftover))
    with open(os.path.join(linked_data, "a.json"), "w") as f:
        f.write("{}")
    bucket, token = name("env"), "s3cret=with#signs"
    s3 = bed.client("s3")
    s3.create_bucket(Bucket=bucket)
    env_file = f"# the app's settings\nRAILS_ENV=production\nRELOAD_TOKEN={token}\n"
    s3.put_object(Bucket=bucket, Key="qa.env", Body=env_file.encode())

    stack_id, run = create(bed, app_on_instances_template(name("app"), f"arn:aws:s3:::{bucket}/qa.env"))

    assert run.status == "CREATE_COMPLETE", run.show()
    stack = bed.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    ecs, cluster = bed.client("ecs"), outputs["Cluster"]
    arns = ecs.list_tasks(cluster=cluster)["taskArns"]
    tasks = [
        t
        for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        if t["group"] == f"service:{outputs['ServiceName']}" and t["lastStatus"] == "RUNNING"
    ]
    assert len(tasks) == 2, tasks
    instances = {t["containerInstanceArn"] for t in tasks}
    assert len(instances) == 2, "spread over the group's two instances"
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=sorted(instances))
    ec2_ids = [c["ec2InstanceId"] for c in described["containerInstances"]]
    reservations = bed.client("ec2").describe_instances(InstanceIds=ec2_ids)["Reservations"]
    assert all(i["PrivateIpAddress"] for r in reservations for i in r["Instances"]), reservations
    ports = []
    for task in tasks:
        (binding,) = task["containers"][0]["networkBindings"]
        assert (binding["bindIP"], binding["containerPort"], binding["protocol"]) == ("0.0.0.0", 3000, "tcp")
        ports.append(binding["hostPort"])
    first, second = (f"http://127.0.0.1:{port}/authorities" for port in ports)
    for task in tasks:
        task_id = task["taskArn"].rsplit("/", 1)[1]
        assert os.path.exists(os.path.join(bed.work, f"qa-server-{task_id}.log")), "beside moto.log"

    assert call("GET", f"http://127.0.0.1:{ports[0]}/")[0] == 200, "the health check path"
    listed = call("GET", f"{first}/list/linked_data/authorities")
    assert listed == (200, "application/json", ["A", "GETTY_AAC", "LOC", "OCLC_FAST"])
    wrong = call("GET", f"{first}/reload/linked_data/authorities?auth_token=guess")
    assert wrong[0] == 401 and wrong[2] == {
        "errors": "FAIL: unable to reload authorities; error_msg: Invalid token (guess) does not match expected token."
    }
    with open(os.path.join(linked_data, "b.json"), "w") as f:
        f.write("{}")
    reload_path = f"/reload/linked_data/authorities?auth_token={urllib.parse.quote(token)}"
    assert call("GET", first + reload_path)[2] == ["A", "B", "GETTY_AAC", "LOC", "OCLC_FAST"]
    assert call("GET", f"{first}/list/linked_data/authorities")[2] == ["A", "B", "GETTY_AAC", "LOC", "OCLC_FAST"]

    assert call("POST", f"http://127.0.0.1:{ports[1]}/testbed/ignore-reload")[0] == 200
    assert call("GET", second + reload_path)[:2] == (200, "application/json")
    assert call("GET", f"http://127.0.0.1:{ports[1]}/testbed/state")[2] == {
        "names": ["A", "GETTY_AAC", "LOC", "OCLC_FAST"],
        "reloads": 0,
    }, "a task that did not take the reload still serves the old set"
    with open(os.path.join(linked_data, "broken.json"), "w") as f:
        f.write("{not json")
    assert call("GET", first + reload_path)[0] == 500, "qa raises on a file that is not JSON"
    kept = call("GET", f"http://127.0.0.1:{ports[0]}/testbed/state")[2]["names"]
    assert kept == ["A", "B", "GETTY_AAC", "LOC", "OCLC_FAST"], "and keeps the set it had"

    run = delete(bed, stack_id)

    assert run.status == "DELETE_COMPLETE", run.show()
    deadline = time.monotonic() + 10
    while any(port_open(port) for port in ports):
        assert time.monotonic() < deadline, "the stand-ins stop with their tasks"
        time.sleep(0.05)


def test_a_qa_server_stand_in_exits_when_the_launcher_that_started_it_is_gone(tmp_path):
    (tmp_path / "linked_data").mkdir()
    # Starts the stand-in as ecs.py does, sees it answer, and exits.
    launcher = """
import os, socket, subprocess, sys, urllib.request
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
subprocess.Popen([sys.executable, sys.argv[1], str(listener.fileno()), sys.argv[2], str(os.getpid())],
                 pass_fds=[listener.fileno()], env={"RELOAD_TOKEN": "t"})
port = listener.getsockname()[1]
listener.close()
assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status == 200
print(port)
"""
    stand_in = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher", "qa_server_standin.py")
    started = subprocess.run(
        [sys.executable, "-c", launcher, stand_in, str(tmp_path)], capture_output=True, text=True, check=True
    )
    port = int(started.stdout)

    deadline = time.monotonic() + 5
    while port_open(port):
        assert time.monotonic() < deadline, "the stand-in outlived its parent"
        time.sleep(0.05)


# ---------------------------------------------------------------- 11. live sync: S3 -> EventBridge -> SQS -> Lambda
# Sources in ``launcher/s3_eventbridge.py`` and ``launcher/sqs_event_source.py``.


def eventually(condition, what, seconds=30):
    """Polls `condition` until it returns a true value (returned); fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def physical_ids(bed, stack_id):
    resources = bed.cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}


def mapping_reports(bed):
    """The bed's record of what each SQS event source mapping invoked."""
    return call("GET", f"{bed.endpoint}/moto-api/qa-testbed/event-source-mappings")[2]


def drain(sqs, queue_url):
    """Every message now in the queue, received and deleted."""
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        messages += got
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_s3_changes_under_the_prefix_reach_the_rules_queue_as_s3_documents_them_and_only_where_the_queue_policy_allows(
    bed, tmp_path
):
    bucket = name("prerequisites")
    queue_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["Changes", "Arn"]},
                "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}},
            }
        ],
    }
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": [{"Ref": "Bucket"}]}, "object": {"key": [{"prefix": "authorities/"}]}},
    }
    body = template(
        {
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": bucket,
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
                },
            },
            "Changes": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Unpermitted": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": pattern,
                    "Targets": [
                        {"Arn": {"Fn::GetAtt": ["Changes", "Arn"]}, "Id": "changes"},
                        {"Arn": {"Fn::GetAtt": ["Unpermitted", "Arn"]}, "Id": "unpermitted"},
                    ],
                },
            },
            "Policy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {"Queues": [{"Ref": "Changes"}], "PolicyDocument": queue_policy},
            },
        }
    )
    stack_id, run = create(bed, body)
    assert run.status == "CREATE_COMPLETE", run.show()
    physical = physical_ids(bed, stack_id)
    s3, sqs = bed.client("s3"), bed.client("sqs")
    rule_arn = bed.client("events").describe_rule(Name=physical["Rule"])["Arn"]

    s3.put_object(Bucket=bucket, Key="other/outside.json", Body=b"{}")
    put = s3.put_object(Bucket=bucket, Key="authorities/a.json", Body=b'{"a": 1}')
    marker = s3.delete_object(Bucket=bucket, Key="authorities/a.json")
    # Multipart, as aws s3 cp uploads a large file: one Object Created.
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (6 * 1024 * 1024))
    from boto3.s3.transfer import TransferConfig

    s3.upload_file(str(big), bucket, "authorities/big.json", Config=TransferConfig(multipart_threshold=5 * 1024 * 1024))
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "authorities/big.json"}, {"Key": "other/outside.json"}]})

    # S3 delivers within each request here: what is not in the queue now never comes.
    messages = drain(sqs, physical["Changes"])
    events = [json.loads(m["Body"]) for m in messages]
    seen = [(e["detail-type"], e["detail"]["object"]["key"], e["detail"]["reason"]) for e in events]
    assert seen == [
        ("Object Created", "authorities/a.json", "PutObject"),
        ("Object Deleted", "authorities/a.json", "DeleteObject"),
        ("Object Created", "authorities/big.json", "CompleteMultipartUpload"),
        ("Object Deleted", "authorities/big.json", "DeleteObject"),
    ], seen
    created, deleted = events[0], events[1]
    # S3 user guide, "EventBridge event message structure"
    assert set(created) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert (created["source"], created["region"], created["resources"]) == ("aws.s3", REGION, [f"arn:aws:s3:::{bucket}"])
    assert len({e["id"] for e in events}) == 4, "a UUID for every event"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["time"]), created["time"]
    obj = created["detail"]["object"]
    assert (obj["size"], obj["etag"], obj["version-id"]) == (8, put["ETag"].strip('"'), put["VersionId"])
    assert deleted["detail"]["deletion-type"] == "Delete Marker Created"
    assert deleted["detail"]["object"]["version-id"] == marker["VersionId"]
    assert deleted["detail"]["object"]["sequencer"] > obj["sequencer"], "increasing for the key"
    assert drain(sqs, physical["Unpermitted"]) == [], "no policy lets EventBridge send to it"
    assert rule_arn.endswith(f":rule/{physical['Rule']}")


def live_sync_template(mapping, queue=None, function_timeout=30):
    """A function, its queue with a dead-letter queue, and the event source mapping between them."""
    queue = queue or {
        "VisibilityTimeout": 30,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}, "maxReceiveCount": 3},
    }
    return template(
        {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
            },
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "#!/bin/sh"},
                    "Timeout": function_timeout,
                },
            },
            "DeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Changes": {"Type": "AWS::SQS::Queue", "Properties": queue},
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Changes", "Arn"]},
                    "FunctionName": {"Ref": "Function"},
                    **mapping,
                },
            },
        },
        parameters=["Enabled"] if mapping.get("Enabled") == {"Ref": "Enabled"} else None,
    )


def live_sync_stack(bed, mapping, parameters=None, **kwargs):
    stack_id, run = create(bed, live_sync_template(mapping, **kwargs), parameters)
    assert run.status == "CREATE_COMPLETE", run.show()
    return stack_id, physical_ids(bed, stack_id)


def send(bed, queue_url, bodies):
    sqs = bed.client("sqs")
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def queue_empty(bed, queue_url):
    attributes = bed.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_burst_within_the_batching_window_makes_one_invocation_with_every_record(bed):
    stack_id, physical = live_sync_stack(
        bed,
        {
            "BatchSize": 10000,
            "MaximumBatchingWindowInSeconds": 2,
            "ScalingConfig": {"MaximumConcurrency": 2},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    function, queue_url = physical["Function"], physical["Changes"]
    bodies = [json.dumps({"change": i}) for i in range(200)]

    sent_at = time.monotonic()
    send(bed, queue_url, bodies)
    sending = time.monotonic() - sent_at

    assert sending < 2, f"sending took {sending:.1f} s, longer than the window"
    eventually(lambda: queue_empty(bed, queue_url), "the batch answered and deleted")
    batches = bed.stand_in.batches_for(function)
    assert len(batches) == 1, [len(e["Records"]) for _, e in batches]
    at, event = batches[0]
    assert sorted(r["body"] for r in event["Records"]) == sorted(bodies)
    assert at - sent_at >= 1.9, f"invoked {at - sent_at:.2f} s after the first record: the window is 2 s"
    record = event["Records"][0]
    queue_arn = bed.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs", queue_arn["Attributes"]["QueueArn"], REGION,
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "1" and record["receiptHandle"]
    assert mapping_reports(bed)[physical["Mapping"]]["Invocations"][0]["Records"] == 200


def test_a_reported_item_failure_comes_back_after_the_visibility_timeout_and_goes_to_the_dead_letter_queue(bed):
    stack_id, physical = live_sync_stack(
        bed, {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]}
    )
    function, queue_url = physical["Function"], physical["Changes"]
    bed.stand_in.batch_answers[function] = lambda event: (
        False,
        {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]},
    )

    send(bed, queue_url, ["good-1", "bad", "good-2"])

    sqs = bed.client("sqs")
    dead = eventually(lambda: drain(sqs, physical["DeadLetters"]), "the failing message in the dead-letter queue")
    assert [m["Body"] for m in dead] == ["bad"]
    batches = bed.stand_in.batches_for(function)
    assert [sorted(r["body"] for r in e["Records"]) for _, e in batches] == [["bad", "good-1", "good-2"], ["bad"], ["bad"]]
    counts = [r["attributes"]["ApproximateReceiveCount"] for _, e in batches for r in e["Records"] if r["body"] == "bad"]
    assert counts == ["1", "2", "3"], "maxReceiveCount 3: the fourth receive moves it"
    gaps = [b[0] - a[0] for a, b in zip(batches, batches[1:])]
    assert all(gap >= 1.25 for gap in gaps), f"visible after 30 s (scaled: 0.3 s), then a 1 s window: {gaps}"
    assert queue_empty(bed, queue_url), "the good ones were deleted"
    report = mapping_reports(bed)[physical["Mapping"]]["Invocations"]
    assert [(i["Records"], i["Failed"]) for i in report] == [(3, 1), (1, 1), (1, 1)]


def test_without_item_failure_reports_an_error_returns_the_whole_batch_and_any_answer_deletes_it(bed):
    stack_id, physical = live_sync_stack(bed, {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 1})
    function, queue_url = physical["Function"], physical["Changes"]
    answers = iter([(True, None), (False, {"batchItemFailures": [{"itemIdentifier": "ignored"}]})])
    bed.stand_in.batch_answers[function] = lambda event: next(answers)

    send(bed, queue_url, ["one", "two"])

    eventually(lambda: len(bed.stand_in.batches_for(function)) == 2 and queue_empty(bed, queue_url), "two batches")
    (first_at, first), (second_at, second) = bed.stand_in.batches_for(function)
    assert [r["messageId"] for r in first["Records"]] == [r["messageId"] for r in second["Records"]]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in second["Records"]} == {"2"}
    assert second_at - first_at >= 1.25, "the visibility timeout (scaled) and the window"
    assert [i["FunctionError"] for i in mapping_reports(bed)[physical["Mapping"]]["Invocations"]] == [True, False]


@pytest.mark.parametrize(
    "answer, failed",
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b"}),
        ({"batchItemFailures": [{"messageId": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"a", "b"}),
        ("not json", {"a", "b"}),
    ],
)
def test_partial_batch_answers_are_read_as_lambda_documents_them(answer, failed):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from launcher.sqs_event_source import failed_ids

    payload = answer if isinstance(answer, str) else json.dumps(answer)
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert failed_ids(records, payload, False, True) == failed
    assert failed_ids(records, payload, True, True) == {"a", "b"}, "a function error fails the batch"
    assert failed_ids(records, payload, False, False) == set(), "without ReportBatchItemFailures"


def test_maximum_concurrency_caps_the_invocations_at_once(bed):
    stack_id, physical = live_sync_stack(bed, {"BatchSize": 1, "ScalingConfig": {"MaximumConcurrency": 2}})
    function, queue_url = physical["Function"], physical["Changes"]

    def slow(event):
        time.sleep(0.4)
        return False, None

    bed.stand_in.batch_answers[function] = slow

    send(bed, queue_url, [f"m{i}" for i in range(6)])

    eventually(lambda: len(bed.stand_in.batches_for(function)) == 6 and queue_empty(bed, queue_url), "six batches")
    assert bed.stand_in.in_flight[function][1] == 2


def test_a_disabled_mapping_reads_nothing_and_a_deleted_stacks_mapping_stops(bed):
    sqs = bed.client("sqs")
    queue_url = sqs.create_queue(QueueName=name("outliving"), Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = {"BatchSize": 10, "Enabled": {"Ref": "Enabled"}}
    body = live_sync_template(mapping, queue={})
    body = json.loads(body)
    body["Resources"]["Mapping"]["Properties"]["EventSourceArn"] = queue_arn
    del body["Resources"]["Changes"]
    body = json.dumps(body)
    stack_id, run = create(bed, body, {"Enabled": "false"})
    assert run.status == "CREATE_COMPLETE", run.show()
    physical = physical_ids(bed, stack_id)
    function = physical["Function"]
    assert mapping_reports(bed)[physical["Mapping"]]["State"] == "Disabled"

    sqs.send_message(QueueUrl=queue_url, MessageBody="while disabled")
    assert bed.stand_in.batches_for(function) == []
    run = update(bed, stack_id, body, {"Enabled": "true"})
    assert run.status == "UPDATE_COMPLETE", run.show()

    (_, event), = eventually(lambda: bed.stand_in.batches_for(function), "the enabled mapping's batch")
    (record,) = event["Records"]
    assert record["body"] == "while disabled"
    assert record["attributes"]["ApproximateReceiveCount"] == "1", "the disabled mapping never received it"

    run = delete(bed, stack_id)
    assert run.status == "DELETE_COMPLETE", run.show()
    eventually(lambda: mapping_reports(bed)[physical["Mapping"]]["State"] == "Deleted", "the poller stopped")
    sqs.send_message(QueueUrl=queue_url, MessageBody="after the stack")
    (left,) = drain(sqs, queue_url)
    assert (left["Body"], left["Attributes"]["ApproximateReceiveCount"]) == ("after the stack", "1")
    assert len(bed.stand_in.batches_for(function)) == 1


@pytest.mark.parametrize(
    "mapping, function_timeout, reason",
    [
        ({"BatchSize": 100}, 30, "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"),
        ({"BatchSize": 10}, 60, "Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"),
    ],
)
def test_a_mapping_lambda_refuses_fails_its_stack(bed, mapping, function_timeout, reason):
    _, run = create(bed, live_sync_template(mapping, function_timeout=function_timeout))

    assert run.status == "ROLLBACK_COMPLETE", run.show()
    assert reason in run.reason("Mapping", "CREATE_FAILED")
