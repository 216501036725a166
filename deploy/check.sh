#!/usr/bin/env bash
# Validates the deploy kit offline: the compose file with Compose v1
# (`docker-compose config`, no engine needed) and against the compose-spec
# schema (Compose v2's format, vendored by check-jsonschema), and the
# Kubernetes manifests against the API schemas kubernetes-validate ships
# (strict: unknown fields are errors). Installs what is missing: Debian's
# docker-compose, and a venv with the two PyPI tools (pinned) in $TOOLS.
set -euo pipefail
cd "$(dirname "$0")"

TOOLS=${TOOLS:-/var/tmp/protokoll-deploy-tools}
log() { printf '== %s\n' "$*"; }

if ! command -v docker-compose >/dev/null; then
  log "installing docker-compose (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
if [ ! -x "$TOOLS/bin/check-jsonschema" ] || [ ! -x "$TOOLS/bin/kubernetes-validate" ]; then
  log "installing check-jsonschema and kubernetes-validate (PyPI) in $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check \
    check-jsonschema==0.39.0 kubernetes-validate==1.37.0
fi

log "compose.yaml: docker-compose config"
docker-compose -f compose.yaml config -q
log "compose.yaml: compose-spec schema"
"$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
log "k8s/*.yaml: Kubernetes schemas (strict)"
"$TOOLS/bin/kubernetes-validate" --strict --quiet k8s/*.yaml
echo "deploy kit valid"
