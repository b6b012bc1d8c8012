#!/usr/bin/env bash
# AWS Control Tower proactive-control rules (cfn-guard, from the npm package
# @cdklabs/cdk-validator-cfnguard) against every template. Findings listed in
# cfn/guard-accepted.txt (with their justification) pass; any other fails.
# `make lint` installs the package into .venv-lint/guard when npm is available;
# without it this check is skipped. Prints "N passed, M failed".
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/guard.bash"
cd "$ROOT"
RULES=${GUARD_RULES:-$PKG/rules/control-tower/cfn-guard}
ACCEPTED=cfn/guard-accepted.txt

if [ ! -x "$GUARD" ] || [ ! -d "$RULES" ]; then
  echo "guard: cfn-guard or its Control Tower rules not installed (needs npm) - skipped"
  exit 0
fi
echo "guard: $("$GUARD" --version), $(find "$RULES" -name '*.guard' | wc -l) rules"

passed=0
failed=0
for template in cfn/aws-*.yaml; do
  name=$(basename "$template")
  findings=$("$GUARD" validate --rules "$RULES" --data "$template" --show-summary fail 2>&1 |
    sed -n 's|^ct-[a-z0-9-]*\.guard/\([a-z0-9_]*\) *FAIL$|\1|p' | sort -u)
  for rule in $findings; do
    if grep -Eq "^$name $rule " "$ACCEPTED"; then
      passed=$((passed + 1))
      echo "ok   - $name $rule (accepted: $(grep -E "^$name $rule " "$ACCEPTED" | sed 's/^[^ ]* [^ ]*  *//'))"
    else
      failed=$((failed + 1))
      echo "FAIL - $name $rule: fix it, or justify it in $ACCEPTED"
    fi
  done
  # An accepted finding that no longer occurs is stale: drop it from the list.
  for rule in $(sed -n "s/^$name \([a-z0-9_]*\) .*/\1/p" "$ACCEPTED"); do
    if ! grep -qx "$rule" <<<"$findings"; then
      failed=$((failed + 1))
      echo "FAIL - $name $rule is listed in $ACCEPTED but no longer found: remove it"
    fi
  done
  if [ -z "$findings" ]; then
    passed=$((passed + 1))
    echo "ok   - $name: no findings"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
