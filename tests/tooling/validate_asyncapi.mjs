// Validate AsyncAPI documents with the official parser (@asyncapi/parser), installed by the tests.
// Usage: node validate_asyncapi.mjs FILE...   Prints one JSON line per file: {file, errors, warnings}.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ASYNCAPI_PARSER_DIR + "/");
const { Parser } = require("@asyncapi/parser");

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"));
  const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join(".")}: ${d.message}`);
  const warnings = diagnostics.filter((d) => d.severity === 1).map((d) => `${d.path.join(".")}: ${d.message}`);
  if (!document || errors.length) failed = true;
  console.log(JSON.stringify({ file, parsed: Boolean(document), errors, warnings }));
}
process.exit(failed ? 1 : 0);
