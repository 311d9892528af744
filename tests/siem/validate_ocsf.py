#!/usr/bin/env python3
"""Validates OCSF JSON lines against the published OCSF schema.

The schema comes from the `ocsf-json-schema` package (PyPI), which ships
OCSF's own releases (1.0.0 to 1.8.0) as JSON and turns a class, with the
profiles an event declares, into a JSON Schema; `jsonschema` checks each
event against it. Usage: validate_ocsf.py FILE... ; exit 1 on any error.
"""

import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main(paths):
    schemas = {}
    failures = 0
    checked = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                event = json.loads(line)
                version = event.get("metadata", {}).get("version")
                profiles = tuple(sorted(event.get("metadata", {}).get("profiles", [])))
                key = (version, event.get("class_uid"), profiles)
                if key not in schemas:
                    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
                    name = ocsf.lookup_class_name_from_uid(event["class_uid"])
                    schemas[key] = (name, ocsf.get_class_schema(name, list(profiles)))
                name, schema = schemas[key]
                validator = jsonschema.Draft202012Validator(schema)
                errors = sorted(validator.iter_errors(event), key=lambda e: list(e.path))
                checked += 1
                for error in errors:
                    failures += 1
                    where = "/".join(str(p) for p in error.path) or "(event)"
                    print(f"{path}:{number}: {name} {where}: {error.message}")
    print(f"OCSF: {checked} events checked against the published schema, {failures} errors")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
