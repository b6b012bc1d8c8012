# Shared by tests/cfn/guard_rules.sh and real_aws_rules.sh (sourced): where cfn-guard and the
# Control Tower rules are, as `make lint` installs them from npm. Sets ROOT, PKG and GUARD.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PKG=${GUARD_PACKAGE:-$ROOT/.venv-lint/guard/node_modules/@cdklabs/cdk-validator-cfnguard}
case $(uname -m) in
  x86_64 | amd64) ARCH=x86_64 ;;
  aarch64 | arm64) ARCH=aarch64 ;;
  *) ARCH=unknown ;;
esac
GUARD=${CFN_GUARD:-$PKG/bin/ubuntu/$ARCH/cfn-guard}
