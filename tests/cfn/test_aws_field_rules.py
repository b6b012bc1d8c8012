"""Classes of defect that moto, the bed and cfn-lint let through and AWS refuses, checked over
every template: the characters a field may hold, keys a delivering service can use, what a
delete needs to finish, and the parameters' patterns against the values they must take or
refuse. Each rule cites its source (docs/aws-facts.md gathers them)."""

import re

import pytest

from test_real_aws_rules import dependencies, load

TEMPLATES = {name: load(name) for name in ("aws-prerequisites.yaml", "aws-deploy.yaml", "aws-live-sync.yaml")}

# EC2 API reference, UserIdGroupPair/IpRange/IpV6Range/PrefixListId "Description" and
# CreateSecurityGroup "GroupDescription": at most 255 characters, a-z, A-Z, 0-9, spaces and
# ._-:/()#,@[]+=;{}!$* (and & for CIDR rules, IpRange only); anything else is "InvalidParameterValue:
# Invalid rule description" (cfn-lint #173, terraform-provider-aws #18874).
EC2_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}$")
EC2_CIDR_RULE_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*&]{0,255}$")


def literal_text(value):
    """The text CloudFormation sends, with ${...} substitutions (stack and resource names:
    letters, digits, hyphens) standing as one letter; None for a value only known on AWS."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"][0] if isinstance(value["Fn::Sub"], list) else value["Fn::Sub"]
        return re.sub(r"\$\{[^}]*\}", "x", text)
    return None


def security_group_descriptions(template):
    """(where, text, allowed) of every security group and rule description sent to EC2."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            yield f"{name}.GroupDescription", literal_text(properties.get("GroupDescription")), EC2_DESCRIPTION
            for direction in ("SecurityGroupIngress", "SecurityGroupEgress"):
                for n, rule in enumerate(properties.get(direction, [])):
                    if "Description" in rule:
                        yield f"{name}.{direction}[{n}].Description", literal_text(rule["Description"]), allowed(rule)
        elif resource["Type"] in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            if "Description" in properties:
                yield f"{name}.Description", literal_text(properties["Description"]), allowed(properties)


def allowed(rule):
    cidr = "CidrIp" in rule or "CidrIpv6" in rule
    return EC2_CIDR_RULE_DESCRIPTION if cidr else EC2_DESCRIPTION


def refused_descriptions(template):
    return [
        (where, text)
        for where, text, pattern in security_group_descriptions(template)
        if text is not None and not pattern.match(text)
    ]


@pytest.mark.parametrize("name", TEMPLATES)
def test_security_group_descriptions_use_only_what_ec2_accepts(name):
    assert refused_descriptions(TEMPLATES[name]) == []


def test_an_apostrophe_in_a_rule_description_is_caught():
    planted = {"Resources": {"Rule": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"Description": "The app's port"}}}}
    assert refused_descriptions(planted) == [("Rule.Description", "The app's port")]
    ampersand = {"Resources": {"Rule": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {"Description": "A & B", "SourceSecurityGroupId": "sg-1"}}}}
    assert refused_descriptions(ampersand) == [("Rule.Description", "A & B")], "& only for CIDR rules"
    every_group = [where for t in TEMPLATES.values() for where, _, _ in security_group_descriptions(t)]
    assert len(every_group) >= 8, f"the walk finds the templates' descriptions: {every_group}"


def alarm_topics(template):
    resources = template["Resources"]
    for alarm in (r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        for action in alarm["Properties"].get("AlarmActions", []):
            if isinstance(action, dict) and action.get("Ref") in resources:
                yield action["Ref"]


def grants(key, service, actions):
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principal = statement.get("Principal", {})
        allowed = statement.get("Action", [])
        allowed = [allowed] if isinstance(allowed, str) else allowed
        if statement["Effect"] == "Allow" and principal.get("Service") == service and set(actions) <= set(allowed):
            return True
    return False


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_topic_an_alarm_publishes_to_is_under_a_key_cloudwatch_may_use(name):
    # SNS developer guide, "Key management", compatibility with AWS services: CloudWatch alarms
    # cannot use alias/aws/sns; a customer managed key's policy grants cloudwatch.amazonaws.com
    # kms:Decrypt and kms:GenerateDataKey* (aws-cdk #11121).
    resources = TEMPLATES[name]["Resources"]
    for topic in alarm_topics(TEMPLATES[name]):
        key = resources[topic]["Properties"].get("KmsMasterKeyId")
        if key is None:
            continue
        assert isinstance(key, dict) and key.get("Ref") in resources, f"{topic} is under {key}, which alarms cannot use"
        assert resources[key["Ref"]]["Type"] == "AWS::KMS::Key"
        assert grants(resources[key["Ref"]], "cloudwatch.amazonaws.com", ["kms:Decrypt", "kms:GenerateDataKey*"]), key


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_queue_eventbridge_sends_to_is_under_a_key_eventbridge_may_use(name):
    # SQS developer guide, "Key management" (configure KMS permissions for AWS services): an
    # event source needs a customer managed key, as alias/aws/sqs's policy cannot be changed;
    # SQS-managed SSE also works.
    resources = TEMPLATES[name]["Resources"]
    for rule in (r for r in resources.values() if r["Type"] == "AWS::Events::Rule"):
        for target in rule["Properties"]["Targets"]:
            queue = target["Arn"]["Fn::GetAtt"][0]
            assert resources[queue]["Properties"].get("KmsMasterKeyId") != "alias/aws/sqs", queue


def test_a_delete_cannot_hang_on_protected_instances_and_services_go_before_their_capacity():
    deploy = TEMPLATES["aws-deploy.yaml"]
    resources = deploy["Resources"]
    # ECS CapacityProvider reference: termination protection needs every instance protected
    # from scale-in; CloudFormation deletes the group by scaling it to zero, which protected
    # instances block for hours (aws-cdk #18179, #14732; containers-roadmap #2862).
    for provider in (r for r in resources.values() if r["Type"] == "AWS::ECS::CapacityProvider"):
        settings = provider["Properties"]["AutoScalingGroupProvider"]
        assert settings.get("ManagedTerminationProtection", "DISABLED") == "DISABLED"
        assert settings["ManagedDraining"] == "ENABLED", "tasks are drained before an instance goes"
        group = resources[settings["AutoScalingGroupArn"]["Ref"]]["Properties"]
        assert not group.get("NewInstancesProtectedFromScaleIn", False)
        # aws-cdk #5507: an update that touches the group resets a DesiredCapacity ECS scaled.
        if settings.get("ManagedScaling", {}).get("Status") == "ENABLED":
            assert "DesiredCapacity" not in group, "ECS managed scaling owns the group's desired capacity"
    # containers-roadmap #631: a service deleted after its capacity provider association fails
    # with "The specified capacity provider is in use".
    associations = [n for n, r in resources.items() if r["Type"] == "AWS::ECS::ClusterCapacityProviderAssociations"]
    for service in (n for n, r in resources.items() if r["Type"] == "AWS::ECS::Service"):
        assert set(associations) <= dependencies(deploy, service), f"{service} must depend on {associations}"


def pattern(template, parameter):
    return re.compile(TEMPLATES[template]["Parameters"][parameter]["AllowedPattern"])


DIGEST = "@sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("tag", ["latest", "v8.0.1", "1.2_3", DIGEST])
def test_the_app_image_is_given_by_tag_or_pinned_by_digest(tag):
    assert pattern("aws-deploy.yaml", "AppImageTag").fullmatch(tag)
    # The image reference the task sends: repository:tag, or repository@sha256:digest.
    condition = TEMPLATES["aws-deploy.yaml"]["Conditions"]["AppImageByDigest"]
    assert condition == {"Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": ["@", {"Ref": "AppImageTag"}]}]}, ""]}
    assert (tag.split("@")[0] == "") == tag.startswith("@")


@pytest.mark.parametrize("image", ["mariadb:10.6", "public.ecr.aws/docker/library/mariadb:10.6.18", "mariadb" + DIGEST])
def test_the_database_image_is_pinned_by_tag_or_digest(image):
    assert pattern("aws-deploy.yaml", "MysqlImage").fullmatch(image)


def test_the_database_image_needs_a_tag_or_a_digest():
    assert not pattern("aws-deploy.yaml", "MysqlImage").fullmatch("mariadb")
    assert not pattern("aws-deploy.yaml", "AppImageTag").fullmatch("@sha256:short")


# The qa_server image is published for amd64 only (LD4P/qa_server_container's image build);
# on Graviton (arm64) every start fails with "exec format error".
X86 = ["m5.large", "m6i.xlarge", "m7i-flex.large", "c5n.2xlarge", "r5b.large", "t3.medium", "m6a.large", "g4dn.xlarge",
       "x2iedn.xlarge", "c7i.metal-24xl", "m7a.metal-48xl", "u-3tb1.56xlarge", "u7i-12tb.224xlarge", "p6-b200.48xlarge"]
GRAVITON = ["m6g.large", "m7g.large", "c6gn.large", "t4g.medium", "r8gd.large", "a1.large", "im4gn.large", "x2gd.large",
            "g5g.xlarge", "hpc7g.16xlarge", "c7gn.metal", "m8g.metal-48xl", "is4gen.large"]


@pytest.mark.parametrize("instance_type", X86)
def test_x86_instance_types_are_accepted(instance_type):
    assert pattern("aws-deploy.yaml", "InstanceType").fullmatch(instance_type)


@pytest.mark.parametrize("instance_type", GRAVITON)
def test_graviton_instance_types_are_refused(instance_type):
    assert not pattern("aws-deploy.yaml", "InstanceType").fullmatch(instance_type)


def test_live_sync_ignores_lifecycle_expirations():
    # S3 user guide, "Using EventBridge": Object Deleted with reason "Lifecycle Expiration".
    rule = TEMPLATES["aws-live-sync.yaml"]["Resources"]["Rule"]["Properties"]["EventPattern"]
    assert rule["detail"]["reason"] == [{"anything-but": ["Lifecycle Expiration"]}]
