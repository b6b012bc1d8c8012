# Shared by tests/cfn/*_on_moto.sh (sourced, not run): a private moto_server on a
# free loopback port (stopped on exit, also on failure or interrupt), dummy
# credentials, pass/fail counting, stack polling with a deadline.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT" || exit 1
[ -x "$ROOT/.venv/bin/moto_server" ] && export PATH="$ROOT/.venv/bin:$PATH"

REGION=us-east-1
ACCOUNT=123456789012 # moto's default account
DEADLINE_SECONDS=${DEADLINE_SECONDS:-180}
POLL_SECONDS=1

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }
# check NAME COMMAND...: the command's exit status decides.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# same NAME ACTUAL EXPECTED: equality, showing both on failure.
same() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1"; echo "    got:  $2"; echo "    want: $3"; fi; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

WORK=$(mktemp -d)
MOTO_PID=
cleanup() {
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null
    wait "$MOTO_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in moto_server aws python3 curl; do
  command -v "$tool" >/dev/null || { fail "missing $tool (run: make venv)"; finish; }
done

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_DEFAULT_REGION=$REGION AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE

start_moto() {
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  ENDPOINT="http://127.0.0.1:$PORT"
  local deadline=$((SECONDS + 30))
  until curl -sf "$ENDPOINT/moto-api/" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$MOTO_PID" 2>/dev/null; then
      fail "moto_server starts on 127.0.0.1:$PORT"; tail -20 "$WORK/moto.log"; finish
    fi
    sleep 0.2
  done
  pass "moto_server starts on 127.0.0.1:$PORT"
}

awsm() { aws --endpoint-url "$ENDPOINT" --region "$REGION" "$@"; }
out() { awsm "$@" --output text 2>>"$WORK/aws.err"; }
quiet() { "$@" >/dev/null 2>>"$WORK/aws.err"; }

# The network a user already has: a VPC with two subnets in two AZs.
make_network() {
  VPC=$(out ec2 create-vpc --cidr-block 10.42.0.0/16 --query Vpc.VpcId)
  SUBNET1=$(out ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.42.1.0/24 --availability-zone ${REGION}a --query Subnet.SubnetId)
  SUBNET2=$(out ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.42.2.0/24 --availability-zone ${REGION}b --query Subnet.SubnetId)
  if [[ $VPC == vpc-* && $SUBNET1 == subnet-* && $SUBNET2 == subnet-* ]]; then
    pass "a VPC and two subnets in two AZs exist ($VPC $SUBNET1 $SUBNET2)"
  else
    fail "create the VPC and subnets"; cat "$WORK/aws.err"; finish
  fi
}

# params_from EXAMPLE OUT Key=Value...: the shipped example with some values replaced.
params_from() {
  python3 - "$@" <<'PY'
import json, sys
src, dst, *pairs = sys.argv[1:]
values = dict(p.split("=", 1) for p in pairs)
params = json.load(open(src))
keys = {p["ParameterKey"] for p in params}
for p in params:
    p["ParameterValue"] = values.get(p["ParameterKey"], p["ParameterValue"])
params += [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items() if k not in keys]
json.dump(params, open(dst, "w"), indent=2)
PY
}

# wait_for STACK_ID WANTED: poll until WANTED, a terminal failure, or the deadline.
wait_for() {
  local id=$1 wanted=$2 status= deadline=$((SECONDS + DEADLINE_SECONDS))
  while [ $SECONDS -lt $deadline ]; do
    status=$(out cloudformation describe-stacks --stack-name "$id" --query 'Stacks[0].StackStatus')
    case $status in
      "$wanted") return 0 ;;
      *FAILED | *ROLLBACK_COMPLETE) break ;;
    esac
    sleep $POLL_SECONDS
  done
  echo "    status: ${status:-unknown} (wanted $wanted)"
  out cloudformation describe-stack-events --stack-name "$id" \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatusReason]' | head -10
  return 1
}

# The documented prerequisites command, with a parameters file naming moto's network.
create_prerequisites() { # STACK BUCKET
  params_from cfn/prerequisites.env.example "$WORK/prerequisites.env" \
    "AWSVpcId=$VPC" "SubnetIds=$SUBNET1,$SUBNET2" "S3BucketName=$2"
  PREREQ_ID=$(awsm cloudformation create-stack --stack-name "$1" \
    --template-body file://cfn/aws-prerequisites.yaml \
    --parameters "file://$WORK/prerequisites.env" --query StackId --output text 2>>"$WORK/aws.err")
  check "create-stack $1 returns a stack id" test -n "$PREREQ_ID"
  check "$1 reaches CREATE_COMPLETE" wait_for "$PREREQ_ID" CREATE_COMPLETE
}

stack_output() { out cloudformation describe-stacks --stack-name "$1" --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue | [0]"; }
# (list-stack-resources: moto's describe-stack-resource fails on some stacks)
physical_id() { out cloudformation list-stack-resources --stack-name "$1" --query "StackResourceSummaries[?LogicalResourceId=='$2'].PhysicalResourceId | [0]"; }

moto_skipped_types() {
  local skipped
  skipped=$(sed -n "s/.*Tried to parse \([A-Za-z0-9:]*\) but it's not supported.*/\1/p; s/^No Moto CloudFormation support for \([A-Za-z0-9:]*\).*/\1/p" "$WORK/moto.log" | sort -u | paste -sd' ')
  echo "note: resource types moto's CloudFormation skipped: ${skipped:-none}"
}
