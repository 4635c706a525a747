// The reference JSONata: evaluates a batch of expressions with the npm package `jsonata`
// (JavaScript, the engine AWS Step Functions documents) in one process.
//
// stdin:  a JSON array of expression strings.
// stdout: a JSON array, one entry per expression, in order:
//   {"value": <the result as JSON.stringify writes it>}   (keys whose value is undefined
//                                                           are left out, as in the JSON
//                                                           state AWS passes on)
//   {"undefined": true}                                    the result is undefined
//   {"error": "<code>: <message>"}                         evaluation (or parsing) threw
// Used by cli/mq_cutover_cli/jsonata_reference.py; run from the repository root, where
// package.json pins the version.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const jsonata = require("jsonata");

const expressions = JSON.parse(readFileSync(0, "utf8"));
const outcomes = [];
for (const expression of expressions) {
  try {
    const result = await jsonata(expression).evaluate(undefined);
    const text = JSON.stringify(result);
    outcomes.push(text === undefined ? { undefined: true } : { value: JSON.parse(text) });
  } catch (err) {
    const code = err && err.code ? err.code : "Error";
    const message = err && err.message ? err.message : String(err);
    outcomes.push({ error: `${code}: ${message}` });
  }
}
process.stdout.write(JSON.stringify(outcomes));
