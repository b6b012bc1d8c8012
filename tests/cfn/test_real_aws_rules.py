"""AWS rules the emulator does not enforce that Guard cannot express (dependency paths, memory
arithmetic), checked on the templates themselves. The Guard ones are in rules/real_aws.guard."""

import json
import math
import os

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !GetAtt, !Sub ...) as their long forms."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def load(name):
    with open(os.path.join(ROOT, "cfn", name)) as file:
        return yaml.load(file, Loader=TemplateLoader)


def references(node, found=None):
    found = set() if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(p.split("}")[0].split(".")[0] for p in text.split("${")[1:])
            references(value, found)
    elif isinstance(node, list):
        for item in node:
            references(item, found)
    return found


def dependencies(template, name):
    """Everything `name` waits for before CloudFormation creates it (DependsOn, Ref, GetAtt, Sub)."""
    resources = template["Resources"]
    seen, pending = set(), [name]
    while pending:
        definition = resources[pending.pop()]
        depends_on = definition.get("DependsOn", [])
        direct = set([depends_on] if isinstance(depends_on, str) else depends_on)
        direct |= references(definition.get("Properties", {})) | references(definition.get("Metadata", {}))
        for found in (direct & resources.keys()) - seen:
            seen.add(found)
            pending.append(found)
    return seen


DEPLOY = load("aws-deploy.yaml")
RESOURCES = DEPLOY["Resources"]


def of_type(resource_type):
    return [name for name, d in RESOURCES.items() if d["Type"] == resource_type]


def test_health_waits_run_beside_the_services_not_after_them():
    # CloudFormation completes an ECS service only once it is stable (hours on failing tasks:
    # cloudformation-coverage-roadmap #150): a wait that depends on a service never fails fast.
    services = set(of_type("AWS::ECS::Service"))
    waits = of_type("Custom::ServicesHealthy")
    assert waits, "the template has health waits"
    for wait in waits:
        assert not dependencies(DEPLOY, wait) & services, f"{wait} waits for {dependencies(DEPLOY, wait) & services}"
        assert all(isinstance(s, dict) and "Fn::Sub" in s for s in RESOURCES[wait]["Properties"]["Services"]), wait
        assert "MissingServiceGrace" in RESOURCES[wait]["Properties"], f"{wait} waits for services not created yet"
    for service in services:
        name = RESOURCES[service]["Properties"].get("ServiceName")
        assert name, f"{service} has a fixed name, which the waits use"


def test_the_app_starts_only_after_a_healthy_database():
    # The services-stable rule (running == desired) ignores health checks (ECS health, REFERENCE.md).
    gate = RESOURCES["DatabaseHealthy"]["Properties"]
    assert gate["Services"] == [{"Fn::Sub": "${AWS::StackName}-mysql"}]
    assert "DatabaseHealthy" in dependencies(DEPLOY, "AppService")


# Installed memory; ECS registers less ("Reserving Amazon ECS Linux container instance memory":
# an m4.large's 8 GiB is not 8192 MiB for tasks). 90% is the margin the sizing note assumes.
INSTALLED_MIB = {"m5.large": 8192}
REGISTERED_SHARE = 0.9


def test_a_rolling_deployment_fits_the_default_instances():
    # Task memory is the placement reservation; MaximumPercent 200 runs old and new tasks at once.
    parameters = DEPLOY["Parameters"]
    capacity = INSTALLED_MIB[parameters["InstanceType"]["Default"]] * REGISTERED_SHARE * parameters["InstanceCount"]["Default"]
    peak = 0
    for service in of_type("AWS::ECS::Service"):
        properties = RESOURCES[service]["Properties"]
        task = RESOURCES[properties["TaskDefinition"]["Ref"]]["Properties"]
        desired = properties["DesiredCount"]
        desired = parameters[desired["Ref"]]["Default"] if isinstance(desired, dict) else desired
        maximum = properties["DeploymentConfiguration"]["MaximumPercent"]
        peak += int(task["Memory"]) * math.ceil(desired * maximum / 100)
    assert peak <= capacity, f"the deployment peak needs {peak} MiB, the default instances register about {capacity:.0f}"


def test_every_in_vpc_function_reaches_s3_and_never_answers_cloudformation_itself():
    # Lambda network interfaces never get public IPs (crhelper #34): an in-VPC function reaches
    # S3 and the response URL only through NAT or an endpoint. The seeding function runs the seed;
    # the function outside the VPC checks its routes and answers CloudFormation.
    in_vpc = [n for n in of_type("AWS::Lambda::Function") if "VpcConfig" in RESOURCES[n]["Properties"]]
    assert in_vpc
    for name, definition in RESOURCES.items():
        token = definition.get("Properties", {}).get("ServiceToken") if definition["Type"].startswith("Custom::") else None
        if token:
            assert references(token).isdisjoint(in_vpc), f"{name} is answered from inside the VPC"
    seed = RESOURCES["SeedAuthorities"]
    assert references(seed["Properties"]["WorkerFunction"]) == set(in_vpc)
    assert "S3GatewayEndpoint" in dependencies(DEPLOY, "SeedAuthorities")
    endpoint = RESOURCES["S3GatewayEndpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert references(endpoint["RouteTableIds"]) == {"S3EndpointRouteTableIds"}


def test_the_standalone_task_definition_publishes_no_database_port_and_fixes_the_app_settings():
    with open(os.path.join(ROOT, "cfn", "task-definition.json")) as file:
        containers = {c["name"]: c for c in json.load(file)["containerDefinitions"]}
    assert "portMappings" not in containers["qa-mariadb"], "links need no port mapping; none is published"
    environment = {e["name"]: e["value"] for e in containers["qa-server-app"]["environment"]}
    assert environment == {"ENABLE_CORS_HEADERS": "true", "RAILS_SERVE_STATIC_FILES": "true", "RAILS_LOG_TO_STDOUT": "true"}


def test_instances_are_drained_before_they_are_replaced():
    # An SSM-parameter AMI resolves again at every update (AWS::SSM::Parameter::Value types): a
    # new release replaces the instances. ECS managed instance draining stops their tasks first
    # (ECS developer guide, "Safely stop workloads ... managed instance draining"). Termination
    # protection stays off: test_aws_field_rules.py says why.
    provider = RESOURCES["CapacityProvider"]["Properties"]["AutoScalingGroupProvider"]
    assert provider["ManagedDraining"] == "ENABLED"
    assert provider["AutoScalingGroupArn"] == {"Ref": "AutoScalingGroup"}
    for service in of_type("AWS::ECS::Service"):
        strategy = RESOURCES[service]["Properties"]["CapacityProviderStrategy"]
        assert strategy == [{"CapacityProvider": {"Ref": "CapacityProvider"}, "Weight": 1}], service
        assert "LaunchType" not in RESOURCES[service]["Properties"], f"{service} would bypass the capacity provider"


def test_the_seeding_function_reaches_every_app_task_on_its_dynamic_host_port_and_may_read_the_reload_token():
    # qa_server reloads only the process that answers (REFERENCE.md, "Reload"): the in-VPC seeding
    # function calls each task on its instance's private IP and dynamic host port (bridge mode,
    # HostPort 0), so both groups must allow that range, and it reads RELOAD_TOKEN from the env file.
    app = RESOURCES["AppTaskDefinition"]["Properties"]
    assert app["NetworkMode"] == "bridge"
    assert app["ContainerDefinitions"][0]["PortMappings"][0]["HostPort"] == 0
    function_group = RESOURCES["SeedFunction"]["Properties"]["VpcConfig"]["SecurityGroupIds"][0]
    assert references(function_group) == {"SeedFunctionSecurityGroup"}

    def allows(resource_type, group_key, peer_key, group, peer):
        for name in of_type(resource_type):
            rule = RESOURCES[name]["Properties"]
            if references(rule[group_key]) == {group} and references(rule.get(peer_key, {})) == {peer}:
                if rule["IpProtocol"] == "tcp" and rule["FromPort"] <= 32768 and rule["ToPort"] >= 65535:
                    return True
        return False

    assert allows("AWS::EC2::SecurityGroupEgress", "GroupId", "DestinationSecurityGroupId",
                  "SeedFunctionSecurityGroup", "InstanceSecurityGroup")
    assert allows("AWS::EC2::SecurityGroupIngress", "GroupId", "SourceSecurityGroupId",
                  "InstanceSecurityGroup", "SeedFunctionSecurityGroup")
    seed = RESOURCES["SeedAuthorities"]["Properties"]
    assert references(seed["Cluster"]) == {"Cluster"} and "EnvFileKey" in references(seed["EnvFileKey"])
    statements = RESOURCES["SeedFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert any(s["Action"] == "s3:GetObject" and "EnvFileKey" in references(s["Resource"]) for s in statements)


LIVE_SYNC = load("aws-live-sync.yaml")["Resources"]


def test_live_sync_gets_the_buckets_events_batches_them_and_its_queue_outlasts_the_function():
    # S3 sends events to EventBridge only when the bucket says so (S3 user guide, "Using
    # EventBridge"); the rule may write to the queue only through the queue's policy
    # (EventBridge user guide, "Using resource-based policies for Amazon EventBridge").
    bucket = load("aws-prerequisites.yaml")["Resources"]["Bucket"]["Properties"]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    rule = LIVE_SYNC["Rule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert references(rule["EventPattern"]["detail"]["object"]["key"]) == {"AuthoritiesPrefix"}
    statement = LIVE_SYNC["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert references(statement["Condition"]) == {"Rule"}
    # AWS Lambda developer guide, "Using Lambda with Amazon SQS": a batch over 10 records needs a
    # batching window of at least 1 s; the queue's visibility timeout at least six times the
    # function's timeout; MaximumConcurrency 2 at least.
    mapping = LIVE_SYNC["EventSourceMapping"]["Properties"]
    assert mapping["BatchSize"] <= 10 or mapping["MaximumBatchingWindowInSeconds"] >= 1
    assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"]
    assert "ReportBatchItemFailures" in mapping["FunctionResponseTypes"]
    queue = LIVE_SYNC["Queue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * LIVE_SYNC["Function"]["Properties"]["Timeout"]
    assert references(queue["RedrivePolicy"]["deadLetterTargetArn"]) == {"DeadLetterQueue"}
    # The alarm watches the metric the function writes (live_sync.rs: METRIC_NAMESPACE, FAILURE_METRIC).
    alarm = LIVE_SYNC["FailureAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("QaLookupDeploy", "LiveSyncFailures")
    assert "VpcConfig" not in LIVE_SYNC["Function"]["Properties"], "it calls AWS APIs without NAT"


def test_the_lambda_zip_is_built_with_unwinding_panics():
    """lambda_runtime answers a panicking handler with an error, so CloudFormation reads FAILED at
    once; with panic = "abort" the process dies and the stack waits out its timeout. cargo-lambda's
    default release optimizations pass --config profile.release.panic="abort", which overrides
    Cargo.toml; mk/templates.mk turns them off, builds with the lambda profile, and that profile
    inherits the release profile's unwind without overriding it."""
    with open(os.path.join(ROOT, "mk", "templates.mk")) as makefile:
        recipe = makefile.read()
    assert "CARGO_LAMBDA_OPTIONS := --disable-optimizations" in recipe
    assert "lambda build --profile lambda $(CARGO_LAMBDA_OPTIONS)" in recipe
    with open(os.path.join(ROOT, "Cargo.toml")) as manifest:
        profiles = manifest.read()
    release = profiles.split("[profile.release]", 1)[1].split("\n[", 1)[0]
    assert 'panic = "unwind"' in release
    lambda_profiles = [section for section in profiles.split("\n[")[1:] if section.startswith("profile.lambda")]
    assert 'inherits = "release"' in lambda_profiles[0]
    assert not any("panic" in section for section in lambda_profiles)
    with open(os.path.join(ROOT, "README.md")) as readme:
        for line in readme:
            if "cargo lambda build" in line:
                assert "--profile lambda --disable-optimizations" in line, line
