// ECS's allowed values (event.kind, event.category, event.type,
// event.outcome…) and field names, from EcsFlat (the @elastic/ecs package,
// generated from ECS): a field ECS does not define, or a value outside its
// allowed list, is an error. `labels.*` is ECS's free-form map.
"use strict";
const fs = require("fs");
const { EcsFlat } = require("@elastic/ecs");

function flatten(value, prefix, out) {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

let errors = 0;
let documents = 0;
for (const path of process.argv.slice(2)) {
  const lines = fs.readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "");
  lines.forEach((line, index) => {
    documents += 1;
    for (const [field, value] of flatten(JSON.parse(line), "", [])) {
      if (field.startsWith("labels.")) continue;
      const definition = EcsFlat[field];
      if (!definition) {
        console.log(`${path}:${index + 1}: ${field} is not an ECS field`);
        errors += 1;
        continue;
      }
      const allowed = (definition.allowed_values || []).map((v) => v.name);
      for (const v of Array.isArray(value) ? value : [value]) {
        if (allowed.length > 0 && !allowed.includes(v)) {
          console.log(`${path}:${index + 1}: ${field} = ${JSON.stringify(v)} is not one of ${allowed.join(", ")}`);
          errors += 1;
        }
      }
    }
  });
}
console.log(`ECS values: ${documents} documents, ${errors} errors`);
process.exit(errors > 0 || documents === 0 ? 1 : 0);
