// Drives the wasmpod dashboard in headless Chromium (Debian's chromium
// package) with playwright-core, against a live server that tests/e2e/dashboard.rs
// started: a wrong key is refused, a right one signs in (kept in
// sessionStorage, never in the URL), the endpoint page runs a job, the job's
// page shows its output, stream chunks and log lines, and the endpoint's live
// log tail shows lines of a job run meanwhile. Prints `N passed, 0 failed`.
//
//   WASMPOD_URL=http://127.0.0.1:PORT WASMPOD_API_KEY=... ENDPOINT=stream \
//     [SCREENSHOTS=docs/images] node tests/dashboard/dashboard.mjs

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.WASMPOD_URL;
const key = process.env.WASMPOD_API_KEY;
const endpoint = process.env.ENDPOINT || 'stream';
const shots = process.env.SCREENSHOTS;
if (!base || !key) {
  console.error('set WASMPOD_URL and WASMPOD_API_KEY');
  process.exit(2);
}

let passed = 0;
function check(what, ok, detail) {
  if (!ok) throw new Error(`${what}${detail ? `: ${detail}` : ''}`);
  passed++;
  console.log(`ok - ${what}`);
}

async function runJob(input) {
  const r = await fetch(`${base}/v2/${endpoint}/runsync`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ input }),
  });
  return r.json();
}

// A new empty profile (playwright passes it as --user-data-dir).
const profile = mkdtempSync(join(tmpdir(), 'wasmpod-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1360, height: 900 },
  // A closed network: nothing to fetch, nothing to sync, no sandbox (root).
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const errors = [];
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  // The refused key's 401 is logged by Chromium as a failed load: expected.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('401')) errors.push(m.text());
  });
  page.setDefaultTimeout(60000);

  await page.goto(`${base}/`);
  await page.waitForSelector('#signin');
  if (shots) await page.screenshot({ path: join(shots, 'dashboard-signin.png') });

  await page.fill('#api-key', 'wpk_not_a_key');
  await page.click('#signin button[type=submit]');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
  check('a wrong key is refused with a message', (await page.textContent('#signin-error')).includes('refused'));

  await page.fill('#api-key', key);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector(`a.endpoint-link[href="#/endpoint/${endpoint}"]`);
  check('signing in lists the endpoint', true);
  const stored = await page.evaluate(() => ({ s: sessionStorage.getItem('wasmpod.apiKey'), l: localStorage.length }));
  check('the key is in sessionStorage only', stored.s === key && stored.l === 0);
  check('the key is not in the URL', !page.url().includes(key), page.url());
  await page.waitForSelector('#slices table');
  const slices = await page.textContent('#slices');
  check('the slices table shows each GPU and MIG slice with its memory',
    ['gpu0', 'gpu1/mig1', 'MIG 3g.40gb', '80.0 GiB', '40.0 GiB'].every((w) => slices.includes(w)), slices);

  // Run a job from the endpoint page.
  await page.click(`a.endpoint-link[href="#/endpoint/${endpoint}"]`);
  await page.waitForSelector('#run-form');
  await page.waitForSelector('#percentiles table');
  await page.fill('#job-input', JSON.stringify({ n: 3 }));
  await page.click('#run-job');
  await page.waitForFunction(() => location.hash.includes('/job/'));
  const jobId = decodeURIComponent(page.url().split('/job/')[1]);
  check('running a job opens its page', jobId.length > 10, page.url());
  await page.waitForFunction(() => {
    const b = document.getElementById('job-status-badge');
    return b && b.textContent === 'COMPLETED';
  });
  check('the job completes', true);
  check('its output is shown', (await page.textContent('#job-output')).includes('"count": 3'));
  check('its stream chunks are shown', (await page.textContent('#job-stream')).includes('{"i":2}'));
  const jobLogs = await page.textContent('#job-logs');
  check('its log line is shown', jobLogs.includes('streaming 3 chunk(s)'), jobLogs);
  check('its stdout lines are shown', jobLogs.includes('chunk 2'), jobLogs);
  if (shots) await page.screenshot({ path: join(shots, 'dashboard-job.png'), fullPage: true });

  // Back on the endpoint page: the job is listed and the live tail shows
  // its lines, then those of a job run meanwhile.
  await page.goto(`${base}/#/endpoint/${endpoint}`);
  await page.waitForSelector(`a.job-link[href$="${encodeURIComponent(jobId)}"]`);
  check('the jobs list shows the job', true);
  await page.waitForFunction(() => document.getElementById('log-tail').textContent.includes('streaming 3 chunk(s)'));
  check('the log tail shows the job\'s lines', true);
  const live = await runJob({ n: 2 });
  check('a job run meanwhile completes', live.status === 'COMPLETED', JSON.stringify(live));
  await page.waitForFunction((id) => document.getElementById('log-tail').textContent.includes(id), live.id);
  check('the log tail shows its lines live', (await page.textContent('#log-tail')).includes('streaming 2 chunk(s)'));
  const pct = await page.textContent('#percentiles');
  check('the percentile table has P70, P90 and P98', ['P70', 'P90', 'P98', 'cold start'].every((w) => pct.includes(w)), pct);
  check('three charts are drawn', (await page.locator('#charts svg').count()) === 3);
  if (shots) {
    await page.waitForTimeout(2500); // one more refresh: the charts show both jobs
    await page.screenshot({ path: join(shots, 'dashboard-endpoint.png'), fullPage: true });
    await page.goto(`${base}/#/`);
    await page.waitForSelector('#endpoints table');
    await page.screenshot({ path: join(shots, 'dashboard-overview.png'), fullPage: true });
  }

  // Signing out forgets the key.
  await page.click('#signout');
  await page.waitForSelector('#signin');
  check('signing out forgets the key', (await page.evaluate(() => sessionStorage.length)) === 0);
  check('the page raised no error', errors.length === 0, errors.join('\n'));
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(`not ok - ${e.message}`);
  if (errors.length) console.error(`page errors:\n${errors.join('\n')}`);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
