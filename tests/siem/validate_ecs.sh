#!/usr/bin/env bash
# Checks ECS JSON lines against Elastic's ECS field definitions: each
# document becomes an object literal typed `Ecs` (the @elastic/ecs package,
# generated from ECS itself), so TypeScript refuses a field ECS does not
# define and a value of the wrong type. Usage: validate_ecs.sh FILE...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    echo 'import type { Ecs } from "@elastic/ecs";'
    echo 'export const documents: Ecs[] = ['
    cat "$@" | sed '/^$/d; s/$/,/'
    echo '];'
} >"$work/documents.ts"
count=$(cat "$@" | sed '/^$/d' | wc -l)
ln -s "$here/node_modules" "$work/node_modules"
version=$(node -p "require('$here/node_modules/@elastic/ecs/package.json').version")
if ! "$here/node_modules/.bin/tsc" --noEmit --strict --skipLibCheck --module nodenext --moduleResolution nodenext \
    "$work/documents.ts"; then
    echo "ECS: documents that ECS $version does not define (above)" >&2
    exit 1
fi
echo "ECS: $count documents typed against ECS $version, 0 errors"
NODE_PATH="$here/node_modules" node "$here/ecs_values.cjs" "$@"
