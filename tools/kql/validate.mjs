#!/usr/bin/env node
// Offline KQL validation against the Application Insights table schemas in ./schemas.
//
// stdin:  {"schema": "classic"|"workspace", "queries": [{"name": "...", "text": "..."}], "analyzers": false}
// stdout: {"schema": "...", "results": {"<name>": [{"severity", "code", "message", "offset", "length",
//          "line", "column"}]}}
// exit 0 when the batch was validated (whatever the diagnostics), 2 on bad input, 3 when the Kusto
// language service cannot be loaded.
//
// Uses the Kusto language service (@kusto/language-service-next). It is a Bridge.NET build: the Bridge
// runtime (bridge.min.js) must be loaded first; it defines the globals `Bridge` and `System`, and then
// Kusto.Language.Bridge(.min).js defines the global `Kusto`. Newer -next releases ship bridge.min.js
// themselves; older ones need the one from the legacy @kusto/language-service package, which is the fallback.
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const MAX_INPUT_BYTES = 4 * 1024 * 1024;
const MAX_QUERY_CHARS = 64 * 1024;
const MAX_QUERIES = 500;

function fail(code, message) {
  process.stderr.write(`kql-validate: ${message}\n`);
  process.exit(code);
}

function resolvePackageDir(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
}

function loadKusto() {
  const next = resolvePackageDir("@kusto/language-service-next");
  if (!next) fail(3, "npm package @kusto/language-service-next is not installed (run `npm ci` in tools/)");
  const legacy = resolvePackageDir("@kusto/language-service");
  const bridgeCandidates = [path.join(next, "bridge.min.js"), legacy && path.join(legacy, "bridge.min.js")]
    .filter((p) => p && existsSync(p));
  if (!bridgeCandidates.length) {
    fail(3, "no bridge.min.js found: install @kusto/language-service (legacy) next to @kusto/language-service-next");
  }
  require(bridgeCandidates[0]);
  const lib = ["Kusto.Language.Bridge.min.js", "Kusto.Language.Bridge.js"]
    .map((f) => path.join(next, f)).find((p) => existsSync(p));
  if (!lib) fail(3, "Kusto.Language.Bridge.js missing from @kusto/language-service-next");
  require(lib);
  if (typeof globalThis.Kusto?.Language?.KustoCode !== "function") {
    fail(3, "Kusto.Language did not load (Bridge runtime mismatch?)");
  }
  return globalThis.Kusto.Language;
}

const KUSTO_TYPES = new Set(["string", "int", "long", "real", "double", "bool", "boolean", "datetime", "date",
  "timespan", "time", "dynamic", "guid", "uuid", "uniqueid", "decimal"]);

function loadSchema(name) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) fail(2, `bad schema name ${JSON.stringify(name)}`);
  const file = path.join(HERE, "schemas", `${name}.json`);
  if (!existsSync(file)) fail(2, `unknown schema ${JSON.stringify(name)} (no ${file})`);
  return JSON.parse(readFileSync(file, "utf8"));
}

function buildGlobals(Language, schema) {
  const Symbols = Language.Symbols;
  const tables = Object.entries(schema.tables).map(([table, columns]) => {
    const cols = Object.entries(columns).map(([col, type]) => {
      if (!KUSTO_TYPES.has(type)) fail(2, `schema ${schema.name}: ${table}.${col} has unknown type ${type}`);
      return `['${col}']:${type}`;
    });
    return new Symbols.TableSymbol.$ctor7(table, `(${cols.join(", ")})`, null);
  });
  const db = new Symbols.DatabaseSymbol.ctor(schema.database || schema.name, tables);
  return Language.GlobalState.Default.WithDatabase(db);
}

function lineAndColumn(text, offset) {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function toArray(list) {
  const out = [];
  for (let i = 0; i < list.Count; i++) out.push(list.getItem(i));
  return out;
}

function diagnose(Language, globals, text, analyzers) {
  const code = Language.KustoCode.ParseAndAnalyze(text, globals);
  const diags = toArray(code.GetDiagnostics());
  if (analyzers) diags.push(...toArray(code.GetAnalyzerDiagnostics(true)));
  return diags.map((d) => ({
    severity: String(d.Severity),
    code: String(d.Code),
    message: String(d.Message),
    offset: d.Start,
    length: d.Length,
    ...lineAndColumn(text, d.Start),
  }));
}

async function readStdin() {
  const chunks = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += chunk.length;
    if (size > MAX_INPUT_BYTES) fail(2, `input larger than ${MAX_INPUT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseRequest(raw) {
  let req;
  try {
    req = JSON.parse(raw);
  } catch (e) {
    fail(2, `input is not JSON: ${e.message}`);
  }
  if (!req || typeof req !== "object") fail(2, "input must be a JSON object");
  if (typeof req.schema !== "string") fail(2, "\"schema\" must be a string");
  if (!Array.isArray(req.queries) || req.queries.length > MAX_QUERIES) {
    fail(2, `"queries" must be a list of at most ${MAX_QUERIES} items`);
  }
  const seen = new Set();
  for (const q of req.queries) {
    if (!q || typeof q.name !== "string" || typeof q.text !== "string") {
      fail(2, "each query needs string \"name\" and \"text\"");
    }
    if (q.text.length > MAX_QUERY_CHARS) fail(2, `query ${q.name} is longer than ${MAX_QUERY_CHARS} chars`);
    if (seen.has(q.name)) fail(2, `duplicate query name ${q.name}`);
    seen.add(q.name);
  }
  return req;
}

const req = parseRequest(await readStdin());
const schema = loadSchema(req.schema);
const Language = loadKusto();
const globals = buildGlobals(Language, schema);
const results = {};
for (const q of req.queries) results[q.name] = diagnose(Language, globals, q.text, Boolean(req.analyzers));
process.stdout.write(JSON.stringify({ schema: schema.name, results }) + "\n");
