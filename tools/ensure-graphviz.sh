#!/usr/bin/env bash
# Makes sure Graphviz's `dot` and the font the diagram names (DejaVu Sans) are installed:
# Debian's packages graphviz and fonts-dejavu-core, through apt-get, as root or with
# password-less sudo. Used by `make diagram` and tests/cfn/diagram_up_to_date.sh, so a
# developer's machine and CI install them the same way. The committed SVG is drawn with
# Debian 12's Graphviz (2.42); another version lays it out differently.
set -euo pipefail

if command -v dot >/dev/null && command -v fc-list >/dev/null && fc-list | grep -q 'DejaVu Sans'; then
  exit 0
fi
PACKAGES=(graphviz fonts-dejavu-core)
if ! command -v apt-get >/dev/null; then
  echo "Graphviz (dot) or the DejaVu Sans font is missing and there is no apt-get: install ${PACKAGES[*]} with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "Graphviz (dot) is missing: run as root, or install it: apt-get install -y ${PACKAGES[*]}" >&2
  exit 1
fi
echo "installing ${PACKAGES[*]} (apt-get)"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
echo "installed: $(dot -V 2>&1)"
