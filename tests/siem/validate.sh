#!/usr/bin/env bash
# The SIEM documents against their published schemas: OCSF 1.8.0 (the
# `ocsf-json-schema` package, through `jsonschema`) and ECS 9.4.0 (Elastic's
# `@elastic/ecs` types and field list). The documents are what Vigie itself
# writes: every kind of row (`vigie_core::siem` samples) and the lines a
# workstation's `[export]` wrote to a file and to a journal socket in the
# daemon's tests. Run from the repository root; sourced helpers from
# tests/lib.sh install what is missing (python3-venv, npm packages).
set -euo pipefail
here=tests/siem
# shellcheck source=../lib.sh
. tests/lib.sh
apt_ensure python3-venv
command -v npm >/dev/null 2>&1 || apt_ensure nodejs npm

venv=${VIGIE_SIEM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vigie/siem-venv}
stamp="$venv/.vigie-requirements.sha256"
if ! sha256sum --status -c "$stamp" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    sha256sum "$here/requirements.txt" >"$stamp"
fi
npm_stamp="$here/node_modules/.vigie-lock.sha256"
if ! sha256sum --status -c "$npm_stamp" 2>/dev/null; then
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    sha256sum "$here/package-lock.json" >"$npm_stamp"
fi

samples=$(mktemp -d)
trap 'rm -rf "$samples"' EXIT
export VIGIE_SIEM_SAMPLES=$samples
# The whole workspace, as the test command builds it: its test binaries are
# reused (a `-p` build unifies other features and compiles anew).
cargo test --locked --quiet --workspace --lib -- siem::samples local_export::tests >/dev/null
for f in ecs.jsonl ocsf.jsonl agent-ecs.jsonl agent-ocsf.jsonl; do
    [ -s "$samples/$f" ] || { echo "no $f was written" >&2; exit 1; }
done
"$venv/bin/python" "$here/validate_ocsf.py" "$samples/ocsf.jsonl" "$samples/agent-ocsf.jsonl"
"$here/validate_ecs.sh" "$samples/ecs.jsonl" "$samples/agent-ecs.jsonl"
