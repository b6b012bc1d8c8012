#!/usr/bin/env bash
# The documented prerequisites commands, run against moto (a local AWS emulator):
#   aws cloudformation create-stack --stack-name lookup-prerequisites \
#     --template-body file://cfn/aws-prerequisites.yaml --parameters file://<params>
# then describe-stacks / describe-access-points / delete-stack, and registering
# cfn/task-definition.json once its placeholders are filled.
#
# moto facts this test relies on or works around (see shared REFERENCE.md):
#  - it skips AWS::S3::BucketPolicy (listed at the end from its log);
#  - it ignores the bucket's PublicAccessBlock/Versioning properties and security
#    group egress rules, so those are not asserted here (cfn-lint/checkov cover them);
#  - !Ref of an AWS::EFS::AccessPoint yields a Python object's text, so the access
#    point id/ARN outputs are only checked for presence; ids come from describe-access-points;
#  - with DeletionPolicy Retain it keeps the bucket and the file system, as AWS does.
# Prints "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/moto.bash"

STACK=lookup-prerequisites
BUCKET=qa-lookup-moto-test

start_moto
make_network

expected_keys="AWSVpcId,EFSAuthoritiesAccessPoint,EFSChartsAccessPoint,EFSDatabaseAccessPoint,EFSName,S3BucketName,SubnetIds"
same "prerequisites.env.example names exactly the template's parameters" \
  "$(python3 -c 'import json,sys; print(",".join(sorted(p["ParameterKey"] for p in json.load(open(sys.argv[1])))))' cfn/prerequisites.env.example)" \
  "$expected_keys"
for t in cfn/aws-prerequisites.yaml cfn/aws-deploy.yaml; do
  check "validate-template accepts $t" quiet awsm cloudformation validate-template --template-body "file://$t"
  check "$t is at most 51200 bytes ($(wc -c <"$t"))" test "$(wc -c <"$t")" -le 51200
done

# --- the documented command -------------------------------------------------
create_prerequisites "$STACK" "$BUCKET"
STACK_ID=$PREREQ_ID
same "describe-stacks by name works" "$(out cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].StackStatus')" CREATE_COMPLETE

output() { stack_output "$STACK" "$1"; }
for key in BucketName BucketArn FileSystemId FileSystemArn DatabaseAccessPointId DatabaseAccessPointArn \
  AuthoritiesAccessPointId AuthoritiesAccessPointArn ChartsAccessPointId ChartsAccessPointArn \
  EFSClientSecurityGroupId VpcId SubnetIds MountTargetIds; do
  value=$(output "$key")
  check "output $key is set and exported" test -n "$value" -a "$value" != None -a \
    "$(out cloudformation list-exports --query "Exports[?Name=='$STACK-$key'].Name | [0]")" = "$STACK-$key"
done
same "output BucketName is the parameter" "$(output BucketName)" "$BUCKET"
same "output VpcId is the VPC" "$(output VpcId)" "$VPC"
same "output SubnetIds are both subnets" "$(output SubnetIds)" "$SUBNET1,$SUBNET2"

FS=$(output FileSystemId)
same "the file system exists, encrypted, named by EFSName" \
  "$(out efs describe-file-systems --file-system-id "$FS" --query 'FileSystems[0].[Encrypted,Name]')" "True	qa-lookup"
same "output FileSystemArn names the file system" \
  "$(output FileSystemArn)" "arn:aws:elasticfilesystem:$REGION:$ACCOUNT:file-system/$FS"
same "one mount target in each subnet" \
  "$(out efs describe-mount-targets --file-system-id "$FS" --query 'sort(MountTargets[].SubnetId) | join(`,`, @)')" \
  "$(printf '%s\n' "$SUBNET1" "$SUBNET2" | sort | paste -sd,)"

APS=$(out efs describe-access-points --file-system-id "$FS" \
  --query 'AccessPoints[].[RootDirectory.Path,PosixUser.Uid,PosixUser.Gid,Name,AccessPointId]' | sort)
echo "$APS" | sed 's/^/    /'
same "three access points exist" "$(echo "$APS" | grep -c fsap-)" 3
check "database access point: /mariadb as MariaDB's 999:999" grep -q "^/mariadb	999	999	qa-database	fsap-" <<<"$APS"
check "authorities access point: /authorities" grep -q "^/authorities	1000	1000	qa-authorities	fsap-" <<<"$APS"
check "charts access point: /charts" grep -q "^/charts	1000	1000	qa-charts	fsap-" <<<"$APS"
same "every access point root has CreationInfo" "$(out efs describe-access-points --file-system-id "$FS" \
  --query 'length(AccessPoints[?RootDirectory.CreationInfo.OwnerUid != null])')" 3

CLIENT_SG=$(output EFSClientSecurityGroupId)
MT=$(out efs describe-mount-targets --file-system-id "$FS" --query 'MountTargets[0].MountTargetId')
EFS_SG=$(out efs describe-mount-target-security-groups --mount-target-id "$MT" --query 'SecurityGroups[0]')
same "the mount targets' group admits NFS only, from the client group" \
  "$(out ec2 describe-security-groups --group-ids "$EFS_SG" --query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,UserIdGroupPairs[0].GroupId,length(IpRanges)]')" \
  "tcp	2049	2049	$CLIENT_SG	0"
same "no security group of the VPC admits 0.0.0.0/0" \
  "$(out ec2 describe-security-groups --filters "Name=vpc-id,Values=$VPC" --query 'length(SecurityGroups[].IpPermissions[].IpRanges[?CidrIp==`0.0.0.0/0`][])')" 0
same "the bucket has default encryption (aws:kms)" \
  "$(out s3api get-bucket-encryption --bucket "$BUCKET" --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm')" aws:kms

# --- the standalone task definition, placeholders filled -----------------------
check "task-definition.json has no account id" bash -c '! grep -Eq "[0-9]{12}" cfn/task-definition.json'
trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
EXEC_ROLE=$(out iam create-role --role-name qa-task-execution --assume-role-policy-document "$trust" --query Role.Arn)
TASK_ROLE=$(out iam create-role --role-name qa-task --assume-role-policy-document "$trust" --query Role.Arn)
ap_id() { echo "$APS" | awk -v p="$1" '$1 == p { print $5 }'; }
# The placeholders documented in README.md ("The standalone task definition"); any other one fails.
EXECUTION_ROLE_ARN=$EXEC_ROLE TASK_ROLE_ARN=$TASK_ROLE \
  ENV_FILE_S3_ARN="arn:aws:s3:::$BUCKET/production.env" LOG_GROUP=/ecs/qa-server \
  AWS_REGION=$REGION APP_IMAGE_TAG=latest FILE_SYSTEM_ID=$FS \
  DATABASE_ACCESS_POINT_ID=$(ap_id /mariadb) AUTHORITIES_ACCESS_POINT_ID=$(ap_id /authorities) \
  CHARTS_ACCESS_POINT_ID=$(ap_id /charts) \
  python3 - cfn/task-definition.json "$WORK/task-definition.json" <<'EOF'
import os, re, sys
src, dst = sys.argv[1:]
documented = {"EXECUTION_ROLE_ARN", "TASK_ROLE_ARN", "ENV_FILE_S3_ARN", "LOG_GROUP", "AWS_REGION",
              "APP_IMAGE_TAG", "FILE_SYSTEM_ID", "DATABASE_ACCESS_POINT_ID",
              "AUTHORITIES_ACCESS_POINT_ID", "CHARTS_ACCESS_POINT_ID"}
text = open(src).read()
placeholder = re.compile(r"\$\{([A-Z0-9_]+)\}")
unknown = sorted(set(placeholder.findall(text)) - documented)
if unknown:
    sys.exit(f"undocumented placeholders: {unknown}")
open(dst, "w").write(placeholder.sub(lambda m: os.environ[m.group(1)], text))
EOF
check "every placeholder of task-definition.json is documented and filled" \
  bash -c '[ -s "$1" ] && ! grep -qF "\${" "$1"' _ "$WORK/task-definition.json"
TD_ARN=$(out ecs register-task-definition --cli-input-json "file://$WORK/task-definition.json" --query taskDefinition.taskDefinitionArn)
check "register-task-definition accepts it ($TD_ARN)" test -n "$TD_ARN"
same "the registered task has both containers and three encrypted EFS volumes" \
  "$(out ecs describe-task-definition --task-definition qa-server --query 'taskDefinition.[join(`,`, containerDefinitions[].name), length(volumes[?efsVolumeConfiguration.transitEncryption==`ENABLED`])]')" \
  "qa-mariadb,qa-server-app	3"
same "both containers read the env file from S3" \
  "$(out ecs describe-task-definition --task-definition qa-server --query 'join(`,`, taskDefinition.containerDefinitions[].environmentFiles[0].value)')" \
  "arn:aws:s3:::$BUCKET/production.env,arn:aws:s3:::$BUCKET/production.env"

# --- delete-stack --------------------------------------------------------------
awsm cloudformation delete-stack --stack-name "$STACK" 2>>"$WORK/aws.err"
check "delete-stack reaches DELETE_COMPLETE" wait_for "$STACK_ID" DELETE_COMPLETE
check "describe-stacks by name no longer finds it" bash -c '! "$@" >/dev/null 2>&1' _ \
  aws --endpoint-url "$ENDPOINT" cloudformation describe-stacks --stack-name "$STACK"
check "the bucket is retained (DeletionPolicy Retain)" quiet awsm s3api head-bucket --bucket "$BUCKET"
check "the file system is retained (DeletionPolicy Retain)" quiet awsm efs describe-file-systems --file-system-id "$FS"

moto_skipped_types
finish
