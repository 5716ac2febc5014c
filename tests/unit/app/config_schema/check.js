// The config schema against `dataflow validate`, with an independent validator (ajv).
//   node check.js DATAFLOW_BINARY SOURCE_DIR
// - `dataflow schema` must be a valid draft-07 schema (ajv compiles it in strict mode);
// - every shipped config (config/*.yaml, examples/**/*.yaml, the Kubernetes ConfigMap's
//   configs) and valid/*.yaml must pass both ajv and validate;
// - every broken/*.yaml must be rejected by both, and validate's errors must contain the
//   file's `# validate-error: TEXT` line(s), so each file fails for the reason it is about.
//   A file whose first line is `# validate-only: WHY` breaks a rule JSON Schema cannot
//   express: ajv must accept it (if it starts rejecting it, drop the mark) and validate must
//   reject it.
// YAML is read as YAML 1.2 (the `yaml` package's default), as editors' language servers do.
// Exits 1 after listing every disagreement.
'use strict';
const {spawnSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Ajv = require('ajv');
const YAML = require('yaml');

const [dataflow, sourceDir] = process.argv.slice(2);
if (!dataflow || !sourceDir) {
  console.error('usage: node check.js DATAFLOW_BINARY SOURCE_DIR');
  process.exit(2);
}
const here = path.join(sourceDir, 'tests/unit/app/config_schema');
const failures = [];
const fail = (file, why) => failures.push(`${path.relative(sourceDir, file)}: ${why}`);

// The ConfigMap's configs take their secrets from the environment; nothing else may leak in.
const env = {...process.env, MQTT_PASSWORD: 'check-js-password', REDIS_PASSWORD: 'check-js-password'};
for (const name of Object.keys(env)) {
  if (name.startsWith('DATAFLOW__') || name === 'DATAFLOW_LOG_FORMAT') delete env[name];
}
delete env.SCHEMA_TEST_UNSET;

const schemaRun = spawnSync(dataflow, ['schema'], {encoding: 'utf8', env});
if (schemaRun.status !== 0) {
  console.error(`dataflow schema exited ${schemaRun.status}: ${schemaRun.stderr}`);
  process.exit(1);
}
const schema = JSON.parse(schemaRun.stdout);
// strict: unknown keywords and misplaced ones are errors (a typo in the schema would
// otherwise be ignored). strictRequired flags the `oneOf: [{required: [a]}, …]` idiom the
// schema uses for "exactly one of"; union types are how a YAML scalar is described.
const ajv = new Ajv({allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true});
const validateSchema = ajv.compile(schema);

function ajvErrors(doc) {
  if (validateSchema(doc)) return null;
  return validateSchema.errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

function runValidate(file) {
  const r = spawnSync(dataflow, ['validate', file], {encoding: 'utf8', env});
  return {status: r.status, output: (r.stdout || '') + (r.stderr || '')};
}

function parseYaml(file, text) {
  try {
    return YAML.parse(text);
  } catch (e) {
    fail(file, `not valid YAML for the yaml package: ${e.message}`);
    return undefined;
  }
}

function yamlFiles(dir, recursive) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const entry of fs.readdirSync(dir, {withFileTypes: true})) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory() && recursive) out.push(...yamlFiles(p, true));
    // *.test.yaml are `dataflow test` files, not configs.
    if (entry.isFile() && entry.name.endsWith('.yaml') && !entry.name.endsWith('.test.yaml')) {
      out.push(p);
    }
  }
  return out.sort();
}

// Configs embedded in Kubernetes manifests (ConfigMap data entries holding a `services` list).
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dataflow-schema-'));
function embeddedConfigs() {
  const out = [];
  for (const manifest of yamlFiles(path.join(sourceDir, 'deploy'), true)) {
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(manifest, 'utf8'))) {
      const m = doc.toJS();
      if (!m || m.kind !== 'ConfigMap' || !m.data) continue;
      for (const [name, text] of Object.entries(m.data)) {
        if (!/^\s*services:/m.test(text)) continue;
        const file = path.join(tmp, `${path.basename(manifest, '.yaml')}-${name}`);
        fs.writeFileSync(file, text);
        out.push({file, label: `${path.relative(sourceDir, manifest)} data.${name}`});
      }
    }
  }
  return out;
}

let accepted = 0;
const valid = [
  ...yamlFiles(path.join(sourceDir, 'config'), false),
  ...yamlFiles(path.join(sourceDir, 'examples'), true),
  ...yamlFiles(path.join(here, 'valid'), false),
].map((file) => ({file, label: path.relative(sourceDir, file)}));
valid.push(...embeddedConfigs());
for (const {file, label} of valid) {
  const doc = parseYaml(file, fs.readFileSync(file, 'utf8'));
  if (doc === undefined) continue;
  const schemaSays = ajvErrors(doc);
  const v = runValidate(file);
  if (schemaSays) failures.push(`${label}: shipped/valid config rejected by the schema: ${schemaSays}`);
  if (v.status !== 0) failures.push(`${label}: shipped/valid config rejected by validate: ${v.output}`);
  if (!schemaSays && v.status === 0) ++accepted;
}

let rejectedByBoth = 0;
let validateOnly = 0;
const broken = yamlFiles(path.join(here, 'broken'), false);
for (const file of broken) {
  const text = fs.readFileSync(file, 'utf8');
  const onlyValidate = /^# validate-only: \S/.test(text);
  const expected = [...text.matchAll(/^# validate-error: (.+)$/gm)].map((m) => m[1].trim());
  if (expected.length === 0) fail(file, 'no "# validate-error: TEXT" line saying what validate reports');
  const doc = parseYaml(file, text);
  if (doc === undefined) continue;
  const schemaSays = ajvErrors(doc);
  const v = runValidate(file);
  let ok = true;
  if (v.status !== 2) {
    fail(file, `validate accepted it (exit ${v.status}) but it is in the broken corpus:\n${v.output}`);
    ok = false;
  }
  for (const want of expected) {
    if (!v.output.includes(want)) {
      fail(file, `validate's errors do not contain "${want}":\n${v.output}`);
      ok = false;
    }
  }
  if (onlyValidate && schemaSays) {
    fail(file, `marked validate-only, but the schema rejects it now (${schemaSays}): remove the mark`);
    ok = false;
  } else if (!onlyValidate && !schemaSays) {
    fail(file, 'validate rejects it but the schema accepts it (if JSON Schema cannot express ' +
               'the rule, mark the file "# validate-only: WHY")');
    ok = false;
  }
  if (ok && onlyValidate) ++validateOnly;
  if (ok && !onlyValidate) ++rejectedByBoth;
}

fs.rmSync(tmp, {recursive: true, force: true});
console.log(`${accepted} of ${valid.length} valid configs accepted by both; ` +
            `${rejectedByBoth} broken configs rejected by both, ${validateOnly} by validate only ` +
            `(marked), of ${broken.length}`);
if (broken.length < 20) failures.push(`only ${broken.length} broken configs found in ${here}/broken`);
if (failures.length > 0) {
  console.log(`${failures.length} disagreement(s):`);
  for (const f of failures) console.log(`  ${f}`);
  process.exit(1);
}
