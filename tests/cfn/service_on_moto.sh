#!/usr/bin/env bash
# The service template (cfn/aws-deploy.yaml) created on moto on top of the
# prerequisites stack, as documented: create-stack with a parameters file made from
# cfn/deploy.env.example and --capabilities CAPABILITY_IAM. It checks the wiring
# (imports, references, names) and the properties of what gets created.
#
# What moto cannot do, and how this test deals with it:
#  - no AWS::ServiceDiscovery support, so `!GetAtt ServiceConnectNamespace.Arn` is
#    replaced by a fixed ARN in a temporary copy (exactly 3 uses; counted below);
#  - no Lambda runtime here: for each Custom:: resource moto waits for a response PUT
#    to its ResponseURL; this test sends SUCCESS, standing in for the Rust function;
#  - it creates resources in its own order (DependsOn is not honoured), so the
#    ordering of the custom resources around the services is not checked here;
#  - on delete-stack it does not send Delete events to custom resources.
# This is plain moto_server on purpose: the template's wiring on moto as it is. The
# lifecycle with the real function answering (moto started from
# tests/testbed/moto_launcher.py) is tests/stack_lifecycle.rs and `make demo`.
# Prints "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/moto.bash"

PREREQ=lookup-prerequisites
STACK=lookup-service
BUCKET=qa-lookup-moto-service
ZIP_KEY=lambda/custom-resources-arm64-test.zip

start_moto
make_network
create_prerequisites "$PREREQ" "$BUCKET"

# What a user uploads first: the env file, the authority files and the Lambda zip.
check "cfn/.env.example is a valid ECS env file (VAR=VALUE lines, no quotes)" python3 - cfn/.env.example <<'EOF'
import re, sys
ok = True
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\"' ]*", line):
        print(f"    line {n}: {line}"); ok = False
sys.exit(0 if ok else 1)
EOF
check "cfn/.env.example defines every key the stack requires by default" python3 - cfn/.env.example cfn/aws-deploy.yaml <<'EOF'
import re, sys
env = {l.split("=", 1)[0] for l in open(sys.argv[1]) if re.match(r"[A-Z]", l)}
template = open(sys.argv[2]).read()
required = re.search(r"RequiredEnvKeys:\n(?:.*\n)*?    Default: (\S+)", template).group(1).split(",")
missing = sorted(set(required) - env)
print(f"    required: {len(required)}, missing: {missing}")
sys.exit(1 if missing else 0)
EOF
quiet awsm s3 cp cfn/.env.example "s3://$BUCKET/production.env"
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], "w"); z.writestr("bootstrap", "#!/bin/sh\n"); z.close()' "$WORK/bootstrap.zip"
check "the Lambda zip is uploaded" quiet awsm s3 cp "$WORK/bootstrap.zip" "s3://$BUCKET/$ZIP_KEY"

# The moto-only copy of the template (see the header).
sed 's|!GetAtt ServiceConnectNamespace.Arn|arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-moto|' \
  cfn/aws-deploy.yaml >"$WORK/aws-deploy.yaml"
same "the moto copy differs only in the 3 namespace references" \
  "$(diff cfn/aws-deploy.yaml "$WORK/aws-deploy.yaml" | grep -c '^>')" 3

params_from cfn/deploy.env.example "$WORK/deploy.env" \
  "PrerequisitesStackName=$PREREQ" "LambdaCodeBucket=$BUCKET" "LambdaCodeKey=$ZIP_KEY"
STACK_ID=$(awsm cloudformation create-stack --stack-name "$STACK" \
  --template-body "file://$WORK/aws-deploy.yaml" --parameters "file://$WORK/deploy.env" \
  --capabilities CAPABILITY_IAM --query StackId --output text 2>>"$WORK/aws.err")
check "create-stack $STACK returns a stack id" test -n "$STACK_ID"

# Stand in for the custom-resource function: answer each request with SUCCESS.
respond() { # LOGICAL_ID
  local deadline=$((SECONDS + DEADLINE_SECONDS))
  until [ "$(out cloudformation list-stack-resources --stack-name "$STACK_ID" \
    --query "length(StackResourceSummaries[?LogicalResourceId=='$1'])")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep $POLL_SECONDS
  done
  curl -sf -X PUT -H 'Content-Type:' "$ENDPOINT/cloudformation_$REGION/cfnresponse?stack=$STACK_ID" \
    --data "{\"Status\": \"SUCCESS\", \"StackId\": \"$STACK_ID\", \"RequestId\": \"moto\", \"LogicalResourceId\": \"$1\", \"PhysicalResourceId\": \"$1-moto\", \"Data\": {}}" >/dev/null
}
for resource in EnvFileCheck SeedAuthorities DatabaseHealthy ServicesHealthy; do
  check "custom resource $resource is requested and answered" respond "$resource"
done
check "$STACK reaches CREATE_COMPLETE" wait_for "$STACK_ID" CREATE_COMPLETE

output() { stack_output "$STACK" "$1"; }
check "output ServiceUrl is the load balancer over HTTP (no certificate)" \
  test "$(output ServiceUrl)" = "http://$(output LoadBalancerDNSName)/"
for key in ClusterName AppServiceName MysqlServiceName LogGroupName FunctionLogGroups; do
  check "output $key is set" test -n "$(output "$key")" -a "$(output "$key")" != None
done

CLUSTER=$(output ClusterName)
same "both services run in the cluster, one task each" \
  "$(out ecs describe-services --cluster "$CLUSTER" --services "$(output AppServiceName)" "$(output MysqlServiceName)" \
    --query 'services[].[status,desiredCount]' | sort -u)" "ACTIVE	1"

td() { out ecs describe-task-definition --task-definition "$(physical_id "$STACK" "$1")" --query "taskDefinition.$2"; }
same "app: the qa_server image on port 3000, bridge network" \
  "$(td AppTaskDefinition '[networkMode, containerDefinitions[0].image, containerDefinitions[0].portMappings[0].containerPort]')" \
  "bridge	public.ecr.aws/u8a1v5x2/ld4p/qa_authority_lookup:latest	3000"
same "app: authorities (read-only) and charts mounted where qa_server reads them" \
  "$(td AppTaskDefinition 'containerDefinitions[0].mountPoints[].[containerPath, readOnly]')" \
  "/app/ld4p/qa_server-webapp/config/authorities	True
/app/ld4p/qa_server-webapp/public/qa_server/charts	False"
same "app and mysql read the env file from the prerequisites bucket" \
  "$(td AppTaskDefinition 'containerDefinitions[0].environmentFiles[0].value') $(td MysqlTaskDefinition 'containerDefinitions[0].environmentFiles[0].value')" \
  "arn:aws:s3:::$BUCKET/production.env arn:aws:s3:::$BUCKET/production.env"
check "app: a container health check on the home page" \
  grep -q 'http://127.0.0.1:3000/' <<<"$(td AppTaskDefinition 'containerDefinitions[0].healthCheck.command')"
same "mysql: pinned mariadb:10.6, data at /var/lib/mysql, port 3306" \
  "$(td MysqlTaskDefinition '[containerDefinitions[0].image, containerDefinitions[0].mountPoints[0].containerPath, containerDefinitions[0].portMappings[0].containerPort]')" \
  "mariadb:10.6	/var/lib/mysql	3306"
check "mysql: a container health check" \
  grep -q 'mariadb-admin ping' <<<"$(td MysqlTaskDefinition 'containerDefinitions[0].healthCheck.command')"
same "app: volumes authorities and charts; mysql: database" \
  "$(td AppTaskDefinition 'join(`,`, volumes[].name)') $(td MysqlTaskDefinition 'join(`,`, volumes[].name)')" "authorities,charts database"
# (moto drops efsVolumeConfiguration, FileSystemConfigs and Architectures from a
# template; TLS/IAM on the volumes is checked on the standalone task definition in
# prerequisites_on_moto.sh and by checkov CKV_AWS_97.)

fn() { out lambda get-function-configuration --function-name "$(physical_id "$STACK" "$1")" --query "$2"; }
same "SeedFunction: provided.al2023/bootstrap, 900 s" \
  "$(fn SeedFunction '[Runtime, Handler, Timeout]')" "provided.al2023	bootstrap	900"
same "SeedFunction: in both subnets with two security groups, AUTHORITIES_MOUNT_PATH=/mnt/authorities" \
  "$(fn SeedFunction '[length(VpcConfig.SubnetIds), length(VpcConfig.SecurityGroupIds), Environment.Variables.AUTHORITIES_MOUNT_PATH]')" \
  "2	2	/mnt/authorities"
same "CheckAndWaitFunction: same code, outside the VPC, 900 s" \
  "$(fn CheckAndWaitFunction '[Runtime, Handler, Timeout, length(VpcConfig.SubnetIds || `[]`)]')" "provided.al2023	bootstrap	900	0"

# Inline policies of the stack's roles as JSON lines {"role":..., "statements": [...]}
# (moto returns an inline role policy from a template as a Python literal string).
for role in TaskExecutionRole AppTaskRole MysqlTaskRole SeedFunctionRole CheckAndWaitFunctionRole; do
  name=$(physical_id "$STACK" "$role")
  for policy in $(out iam list-role-policies --role-name "$name" --query PolicyNames); do
    awsm iam get-role-policy --role-name "$name" --policy-name "$policy" --query PolicyDocument --output json |
      python3 -c 'import ast, json, sys; doc = json.load(sys.stdin); doc = ast.literal_eval(doc) if isinstance(doc, str) else doc; print(json.dumps({"role": sys.argv[1], "statements": doc["Statement"]}))' "$role"
  done
done >"$WORK/policies.jsonl"
check "execution role: s3:GetObject on exactly the env file, GetBucketLocation on the bucket" \
  python3 - "$WORK/policies.jsonl" "arn:aws:s3:::$BUCKET" <<'EOF'
import json, sys
policies = [json.loads(l) for l in open(sys.argv[1])]
bucket = sys.argv[2]
grants = {str(s["Action"]): s["Resource"] for p in policies if p["role"] == "TaskExecutionRole" for s in p["statements"]}
assert grants["s3:GetObject"] == bucket + "/production.env", grants
assert grants["s3:GetBucketLocation"] == bucket, grants
EOF
check "no role grants an action on every resource, except read-only ones and ECR's token (which takes no resource ARN)" \
  python3 - "$WORK/policies.jsonl" <<'EOF'
import json, sys
readonly = {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeInstances", "ec2:DescribeRouteTables", "ec2:DescribePrefixLists",
            "s3:GetAccountPublicAccessBlock", "ecs:ListTasks", "ecs:DescribeTaskDefinition", "ecr:GetAuthorizationToken"}
policies = [json.loads(l) for l in open(sys.argv[1])]
assert len({p["role"] for p in policies}) == 5, policies
for p in policies:
    for s in p["statements"]:
        actions = {s["Action"]} if isinstance(s["Action"], str) else set(s["Action"])
        assert s["Resource"] != "*" or actions <= readonly, (p["role"], actions)
EOF

# (moto does not apply LoadBalancerAttributes from a template: drop_invalid_header_fields
# is left to checkov's CKV_AWS_131.)
same "the target group checks the home page for 200" \
  "$(out elbv2 describe-target-groups --target-group-arns "$(physical_id "$STACK" TargetGroup)" --query 'TargetGroups[0].[HealthCheckPath, Matcher.HttpCode, Port]')" \
  "/	200	3000"
same "only the load balancer's group admits 0.0.0.0/0, on port 80 only" \
  "$(out ec2 describe-security-groups --filters "Name=vpc-id,Values=$VPC" \
    --query 'SecurityGroups[?IpPermissions[?IpRanges[?CidrIp==`0.0.0.0/0`]]].[GroupId, IpPermissions[0].FromPort, length(IpPermissions)]')" \
  "$(physical_id "$STACK" LoadBalancerSecurityGroup)	80	1"

LT=$(physical_id "$STACK" LaunchTemplate)
same "launch template: IMDSv2 required, hop limit 1, encrypted root volume" \
  "$(out ec2 describe-launch-template-versions --launch-template-id "$LT" \
    --query 'LaunchTemplateVersions[0].LaunchTemplateData.[MetadataOptions.HttpTokens, MetadataOptions.HttpPutResponseHopLimit, BlockDeviceMappings[0].Ebs.Encrypted]')" \
  "required	1	True"
same "launch template: the ECS-optimized AMI from AWS's public SSM parameter" \
  "$(out ec2 describe-launch-template-versions --launch-template-id "$LT" --query 'LaunchTemplateVersions[0].LaunchTemplateData.ImageId')" \
  "$(out ssm get-parameter --name /aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id --query Parameter.Value)"
same "the auto scaling group launches from the template into both subnets" \
  "$(out autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$(physical_id "$STACK" AutoScalingGroup)" \
    --query 'AutoScalingGroups[0].[LaunchTemplate.LaunchTemplateId, VPCZoneIdentifier]')" "$LT	$SUBNET1,$SUBNET2"
same "log groups keep 90 days" \
  "$(out logs describe-log-groups --log-group-name-prefix "$(output LogGroupName)" --query 'logGroups[0].retentionInDays')" 90

awsm cloudformation delete-stack --stack-name "$STACK" 2>>"$WORK/aws.err"
check "delete-stack $STACK reaches DELETE_COMPLETE" wait_for "$STACK_ID" DELETE_COMPLETE
awsm cloudformation delete-stack --stack-name "$PREREQ" 2>>"$WORK/aws.err"
check "then delete-stack $PREREQ reaches DELETE_COMPLETE" wait_for "$PREREQ_ID" DELETE_COMPLETE

moto_skipped_types
finish
