#!/usr/bin/env node
// Build a JavaScript handler app into a wasmpod component: world
// wasmpod:serverless/handler (a queue handler, the default) or, with
// --world http-handler, an HTTP handler. Bundles the app with the SDK into
// one ES module (rolldown), then componentizes it with componentize-js
// (StarlingMonkey). Usage: node build.mjs APP_DIR OUT.wasm [--entry FILE]
// [--world handler|http-handler] (build.sh wraps this and installs the
// pinned tools first).

import { componentize } from '@bytecodealliance/componentize-js';
import { rolldown } from 'rolldown';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(SDK_DIR, '../..');

// The WASI features StarlingMonkey would otherwise build in: fetch() needs
// wasi:http's outgoing handler, which the host grants no handler; an HTTP
// handler's incoming-handler export is the SDK's own (http-exports.js).
const DISABLED_FEATURES = ['http', 'fetch-event'];

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error('usage: build.sh APP_DIR OUT.wasm [--entry FILE] [--world handler|http-handler]');
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length < 2) usage();
const [appArg, outArg, ...rest] = args;
let entryName = 'app.js';
let world = 'handler';
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--entry' && i + 1 < rest.length) entryName = rest[++i];
  else if (rest[i] === '--world' && i + 1 < rest.length) world = rest[++i];
  else usage(`unknown option ${rest[i]}`);
}
if (world !== 'handler' && world !== 'http-handler') usage(`--world must be handler or http-handler, got ${world}`);
const http = world === 'http-handler';
const appDir = resolve(appArg);
if (!existsSync(appDir) || !statSync(appDir).isDirectory()) usage(`app directory ${appArg} does not exist`);
const appEntry = join(appDir, entryName);
if (!existsSync(appEntry)) usage(`${appDir} has no ${entryName}; name the app's module with --entry`);
const out = resolve(outArg);

const work = mkdtempSync(join(tmpdir(), 'wasmpod-js-'));
try {
  // componentize-js takes the exports from the module it is given: this
  // entry evaluates the app (which registers its handler or Router) and
  // re-exports the SDK's exports of the world.
  const entry = join(work, 'entry.js');
  const exportsLine = http
    ? `export { init, incomingHandler } from ${JSON.stringify(join(SDK_DIR, 'src/http-exports.js'))};`
    : `export { init, handle } from ${JSON.stringify(join(SDK_DIR, 'src/exports.js'))};`;
  const check = http
    ? `if (REGISTRY.app === null) throw new Error(${JSON.stringify(`wasmpod: ${entryName} registered no HTTP app; build a new wasmpod.Router() and call wasmpod.serveHttp(app)`)});`
    : `if (REGISTRY.handle === null) throw new Error(${JSON.stringify(`wasmpod: ${entryName} registered no handler; call wasmpod.serve(handle) or wasmpod.handler(handle)`)});`;
  await writeFile(
    entry,
    [
      `import ${JSON.stringify(appEntry)};`,
      `import { REGISTRY } from ${JSON.stringify(join(SDK_DIR, 'src/glue.js'))};`,
      exportsLine,
      check,
      '',
    ].join('\n'),
  );

  const bundlePath = join(work, 'bundle.js');
  const bundle = await rolldown({
    input: entry,
    // WIT imports are resolved by componentize-js, not bundled.
    external: [/^wasmpod:/, /^wasi:/],
    // The SDK's surface follows the world: an HTTP handler's has the
    // Router and logs through the log interface, not the job.
    resolve: { alias: { 'wasmpod-sdk': join(SDK_DIR, http ? 'src/wasmpod-http.js' : 'src/wasmpod.js') } },
    platform: 'neutral',
    logLevel: 'warn',
  });
  await bundle.write({ file: bundlePath, format: 'esm', codeSplitting: false });
  await bundle.close();

  const { component } = await componentize({
    sourcePath: bundlePath,
    witPath: join(ROOT, 'wit'),
    worldName: world,
    disableFeatures: DISABLED_FEATURES,
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  console.error(`built ${outArg} (${component.byteLength} bytes)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
