#!/usr/bin/env bash
# AWS rules the emulator does not enforce (tests/cfn/rules/real_aws.guard, each citing its
# source) against every template with cfn-guard, which `make lint` installs; then the rules
# Guard cannot express (tests/cfn/test_real_aws_rules.py). Prints "N passed, M failed".
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/guard.bash"
cd "$ROOT"

passed=0
failed=0
if [ -x "$GUARD" ]; then
  for template in cfn/aws-*.yaml; do
    if "$GUARD" validate --rules tests/cfn/rules/real_aws.guard --data "$template" --show-summary fail >"/tmp/guard.$$" 2>&1; then
      passed=$((passed + 1))
      echo "ok   - $template: the real-AWS Guard rules hold"
    else
      failed=$((failed + 1))
      echo "FAIL - $template: a real-AWS Guard rule fails:"
      cat "/tmp/guard.$$"
    fi
  done
  rm -f "/tmp/guard.$$"
else
  failed=$((failed + 1))
  echo "FAIL - cfn-guard is not installed at $GUARD: run make lint (it installs it with npm)"
fi
if "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/cfn; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
