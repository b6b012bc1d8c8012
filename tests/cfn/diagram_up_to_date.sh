#!/usr/bin/env bash
# docs/architecture.svg (shown in the README) is what tools/diagram.py draws from the two
# templates now: it is drawn again into a temporary file and compared byte for byte, and a
# second drawing must be identical to the first (no timestamps, no unsorted iteration).
# Installs Graphviz through tools/ensure-graphviz.sh when `dot` is missing (apt-get, as
# root), or fails saying how to install it. Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SVG=docs/architecture.svg
TEMPLATES=(cfn/aws-prerequisites.yaml cfn/aws-deploy.yaml)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

if bash tools/ensure-graphviz.sh; then
  ok "Graphviz: $(dot -V 2>&1)"
else
  fail "Graphviz (dot) is not installed and could not be installed (see above): apt-get install -y graphviz fonts-dejavu-core"
  finish
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if "$PY" tools/diagram.py "${TEMPLATES[@]}" -o "$tmp/first.svg" 2>"$tmp/stderr"; then
  ok "tools/diagram.py draws both templates ($("$PY" --version 2>&1))"
  [ -s "$tmp/stderr" ] && sed 's/^/     /' "$tmp/stderr"
else
  sed 's/^/     /' "$tmp/stderr"
  fail "tools/diagram.py failed on ${TEMPLATES[*]}"
  finish
fi

if [ ! -f "$SVG" ]; then
  fail "$SVG is missing: run make diagram and commit $SVG"
elif cmp -s "$tmp/first.svg" "$SVG"; then
  ok "$SVG is what the templates draw now"
else
  fail "$SVG differs from what the templates draw now: run make diagram and commit $SVG"
  # The nodes and edges that came or went (nothing listed: only the layout moved).
  echo "     nodes and edges (< only in $SVG, > only in what the templates draw now):"
  diff <(grep -o '<title>[^<]*</title>' "$SVG") <(grep -o '<title>[^<]*</title>' "$tmp/first.svg") |
    sed -n 's/^\([<>]\) <title>\(.*\)<\/title>$/     \1 \2/p' | sed 's/&#45;&gt;/ -> /g' | head -20
fi

if "$PY" tools/diagram.py "${TEMPLATES[@]}" -o "$tmp/second.svg" 2>/dev/null && cmp -s "$tmp/first.svg" "$tmp/second.svg"; then
  ok "drawing it twice gives identical bytes"
else
  fail "drawing it twice gives different SVGs: the output is not deterministic"
fi

if grep -q '](docs/architecture.svg)' README.md; then
  ok "README.md shows $SVG"
else
  fail "README.md does not show $SVG"
fi

finish
