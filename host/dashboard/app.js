// wasmpod dashboard: plain JavaScript, no build step. It signs in with an
// API key kept in this tab's sessionStorage (never in a URL) and reads the
// server's /v1 and /v2 routes with it. Pages (by the URL's #fragment):
//   #/                          endpoints, slices and executors
//   #/endpoint/ID               an endpoint: workers, charts, percentiles,
//                               run a job, jobs list, live log tail
//   #/endpoint/ID/job/JOB       a job: input, output, stream, progress, logs
// Every value from the server is put in the page as text, never as HTML.
'use strict';

const KEY = 'wasmpod.apiKey';
const WINDOWS = ['5m', '1h', '24h'];
const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

// ---------------------------------------------------------------- helpers

/** An element: h('td', {class: 'num'}, 'text', child, ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function ms(v) {
  if (v === null || v === undefined) return '–';
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(2)} s`;
  return `${Math.floor(v / 60000)}m${String(Math.round((v % 60000) / 1000)).padStart(2, '0')}s`;
}

function ago(t) {
  if (!t) return '–';
  const sec = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (sec < 60) return `${sec}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

function clock(t) {
  return new Date(t).toISOString().slice(11, 23);
}

function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function badge(text, cls) {
  return h('span', { class: `badge ${cls || text}` }, text);
}

function pretty(v) {
  if (v === null || v === undefined) return '–';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { class: x.startsWith('#') ? 'num' : null }, x.replace(/^#/, ''))))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) =>
      h('td', { class: headers[i].startsWith('#') ? 'num' : null }, c))))));
}

// --------------------------------------------------------------- the API

class SignedOut extends Error {}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new SignedOut('not signed in');
  const headers = { Authorization: `Bearer ${key}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method: options.method || 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  if (resp.status === 401) {
    sessionStorage.removeItem(KEY);
    throw new SignedOut('the server refused the API key');
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!resp.ok) throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  return body;
}

/**
 * Follow an endpoint's logs as server-sent events. EventSource cannot send
 * an Authorization header (and the key must stay out of URLs), so this
 * reads the event stream with fetch.
 */
async function followLogs(endpoint, query, onLine, signal) {
  const key = sessionStorage.getItem(KEY);
  const resp = await fetch(`/v1/endpoints/${encodeURIComponent(endpoint)}/logs?follow=true&${query}`, {
    headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
    signal,
  });
  if (!resp.ok) throw new Error(`logs: ${resp.status}`);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (data) {
        try { onLine(JSON.parse(data)); } catch { /* not a log line */ }
      }
    }
  }
}

// ---------------------------------------------------------------- charts

/** A line chart of `series` ([{name, color, points: [[t, v]]}]) over [t0, t1]. */
function lineChart(title, series, t0, t1, fmt) {
  const W = 600, H = 150, L = 46, B = 18, T = 8;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title });
  let max = 0;
  for (const se of series) for (const [, v] of se.points) if (v !== null && v > max) max = v;
  if (max === 0) max = 1;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - 4);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    svg.append(s('line', { x1: L, x2: W - 4, y1: y(max * f), y2: y(max * f), stroke: '#e3e7ec' }));
    const label = s('text', { x: L - 4, y: y(max * f) + 4, 'text-anchor': 'end', 'font-size': 10, fill: '#65707d' });
    label.textContent = fmt(max * f);
    svg.append(label);
  }
  for (const se of series) {
    const pts = se.points.filter(([, v]) => v !== null);
    if (!pts.length) continue;
    svg.append(s('polyline', {
      points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
      fill: 'none', stroke: se.color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke',
    }));
    // Dots, so that a step with the only samples still shows.
    for (const [t, v] of pts) {
      if (v > 0) svg.append(s('circle', { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: se.color }));
    }
  }
  const legend = h('div', { class: 'legend' }, series.map((se) =>
    h('span', {}, h('i', { style: null, 'data-color': se.color }), se.name)));
  for (const [i, el] of [...legend.querySelectorAll('i')].entries()) el.style.background = series[i].color;
  return h('div', { class: 'panel chart' }, h('h2', {}, title), svg, legend);
}

// ----------------------------------------------------------------- pages

const main = () => document.getElementById('main');
let page = null; // the current page's cleanup

function showSignIn(message) {
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('nav').replaceChildren();
  const input = h('input', { type: 'password', id: 'api-key', autocomplete: 'off', placeholder: 'wpk_…', required: true });
  const error = h('div', { class: 'error', id: 'signin-error' }, message || '');
  const form = h('form', { class: 'panel signin', id: 'signin' },
    h('h1', {}, 'Sign in to wasmpod'),
    h('p', { class: 'muted' }, 'Paste an admin API key. It is kept in this tab only (session storage) and sent as a Bearer header.'),
    input,
    h('div', { class: 'row', style: null }, h('button', { class: 'primary', type: 'submit' }, 'Sign in')),
    error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api('/v1/endpoints');
      route();
    } catch (e) {
      sessionStorage.removeItem(KEY);
      error.textContent = e instanceof SignedOut ? 'That key was refused: use an admin key (GET /v1/keys lists them).' : String(e.message || e);
    }
  });
  main().replaceChildren(form);
  input.focus();
}

/** Run `render` now and every `every` ms until the page changes. */
function poll(render, every) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      await render();
    } catch (e) {
      if (e instanceof SignedOut) { stopped = true; showSignIn(e.message); return; }
      const banner = document.getElementById('poll-error');
      if (banner) banner.textContent = `could not refresh: ${e.message || e}`;
    }
    if (!stopped) timer = setTimeout(tick, every);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function endpointState(e) {
  const w = e.workers;
  if (e.max_workers === 0) return 'paused';
  if (w.unhealthy > 0) return 'unhealthy';
  if (w.initializing > 0) return 'initializing';
  if (w.running > 0) return 'running';
  if (w.idle > 0) return 'serving';
  if (w.throttled > 0) return 'throttled';
  return 'scaled to zero';
}

function overviewPage() {
  const endpointsBox = h('div', { class: 'panel', id: 'endpoints' });
  const slicesBox = h('div', { class: 'panel', id: 'slices' });
  const execBox = h('div', { class: 'panel', id: 'executors' });
  main().replaceChildren(
    h('h1', {}, 'Endpoints'),
    h('div', { class: 'error', id: 'poll-error' }),
    endpointsBox,
    h('div', { class: 'grid' }, slicesBox, execBox));
  return poll(async () => {
    const [eps, stats, inv] = await Promise.all([
      api('/v1/endpoints'), api('/v1/metrics?window=1h'), api('/v1/inventory'),
    ]);
    const byId = Object.fromEntries(stats.endpoints.map((x) => [x.endpoint, x]));
    endpointsBox.replaceChildren(table(
      ['endpoint', 'state', 'workers', 'gpus', '#queued', '#running', '#done', '#failed', '#p90 delay', '#p90 exec', '#cold starts (1h)'],
      eps.endpoints.map((e) => {
        const w = e.workers;
        const st = byId[e.id] || {};
        return [
          h('a', { href: `#/endpoint/${encodeURIComponent(e.id)}`, class: 'endpoint-link' }, e.id),
          badge(endpointState(e), endpointState(e).replace(/ /g, '-')),
          `${w.idle} idle · ${w.running} running · ${w.initializing} starting` + (w.throttled ? ` · ${w.throttled} throttled` : '') + (w.unhealthy ? ` · ${w.unhealthy} unhealthy` : ''),
          e.gpus.join(', '),
          e.jobs.inQueue, e.jobs.inProgress, e.jobs.completed, e.jobs.failed,
          ms(st.delay_ms && st.delay_ms.p90), ms(st.execution_ms && st.execution_ms.p90),
          st.cold_starts || 0,
        ];
      }),
      'No endpoints yet. Deploy one: wasmpod deploy DIR --endpoint NAME'));
    slicesBox.replaceChildren(h('h2', {}, 'Slices and GPU memory'), slicesTable(inv, eps.endpoints));
    execBox.replaceChildren(h('h2', {}, 'Executors'), table(
      ['slice', 'pid', 'alive', '#restarts', 'last error'],
      inv.executors.map((x) => [x.slice, x.pid || '–', x.alive ? badge('up', 'ok') : badge('down', 'error'), x.restarts, x.last_error || '']),
      'No executor started yet (one starts with the first worker of a slice).'));
  }, 3000);
}

/** Every device of the inventory with its memory, who holds it, and how
 * much of it is in use: the driver's figure on a GPU host (NVML), else the
 * tensor quota the holding worker's endpoint reserves. */
function slicesTable(inv, endpoints) {
  const quota = Object.fromEntries(endpoints.map((e) => [e.id, e.tensor_quota_mib * 1048576]));
  const used = Object.fromEntries((inv.memory || []).map((m) => [m.device, m.used_bytes]));
  const holders = {};
  for (const u of inv.in_use) for (const d of (u.devices.length ? u.devices : [u.slice])) (holders[d] = holders[d] || []).push(u);
  const rows = [];
  const row = (key, name, total) => {
    const held = holders[key] || [];
    const measured = used[key] !== undefined;
    const amount = measured ? used[key] : held.reduce((a, u) => a + (quota[u.endpoint] || 0), 0);
    const frac = total ? Math.min(1, amount / total) : 0;
    const bar = h('div', { class: 'bar', title: measured ? 'in use (NVML)' : 'reserved by tensor quotas' }, h('div', {}));
    bar.firstChild.style.width = `${(frac * 100).toFixed(0)}%`;
    rows.push([key, name, bytes(total), h('div', {}, bar, h('span', { class: 'muted' }, `${bytes(amount)} ${measured ? 'used' : 'reserved'}`)),
      held.length ? held.map((u) => `${u.endpoint} (${u.worker})`).join(', ') : h('span', { class: 'muted' }, 'free')]);
  };
  for (const g of inv.inventory.gpus) {
    if (g.mig_enabled) g.mig_devices.forEach((m, i) => row(`gpu${g.index}/mig${i}`, `${g.name} MIG ${m.profile}`, m.memory_bytes));
    else row(`gpu${g.index}`, g.name, g.memory_bytes);
  }
  const cpuHeld = inv.in_use.filter((u) => u.slice_type === 'cpu');
  rows.push(['cpu', 'CPU', bytes(inv.inventory.cpu.memory_bytes), '',
    cpuHeld.length ? cpuHeld.map((u) => `${u.endpoint} (${u.worker})`).join(', ') : h('span', { class: 'muted' }, 'free')]);
  return table(['slice', 'device', 'memory', 'in use', 'held by'], rows, 'No devices.');
}

function percentileTable(st) {
  const row = (name, p) => [name, p.count, ms(p.p70), ms(p.p90), ms(p.p98), ms(p.max)];
  return table(['', '#samples', '#P70', '#P90', '#P98', '#max'], [
    row('delay time', st.delay_ms),
    row('execution time', st.execution_ms),
    row('cold start', st.cold_start_ms),
  ], '');
}

function endpointPage(id) {
  const enc = encodeURIComponent(id);
  let window = '1h';
  let jobStatus = '';
  const head = h('div', { class: 'panel', id: 'endpoint-head' });
  const workersBox = h('div', { class: 'panel', id: 'workers' });
  const statsBox = h('div', { class: 'panel', id: 'percentiles' });
  const charts = h('div', { class: 'grid', id: 'charts' });
  const jobsBox = h('div', { class: 'panel', id: 'jobs' });
  const logBox = h('div', { class: 'log', id: 'log-tail' });
  const tabs = h('div', { class: 'tabs' }, WINDOWS.map((w) => h('button', {
    type: 'button', class: w === window ? 'on' : null,
    onclick: (ev) => { window = w; for (const b of tabs.children) b.classList.toggle('on', b === ev.target); refresh(); },
  }, w)));
  const input = h('textarea', { id: 'job-input', spellcheck: 'false' }, '{}');
  const runError = h('div', { class: 'error', id: 'run-error' });
  const runForm = h('form', { class: 'panel', id: 'run-form' },
    h('h2', {}, 'Run a job'),
    input,
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'run-job' }, 'Run'), h('span', { class: 'muted' }, 'POST /v2/' + id + '/run')),
    runError);
  runForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    runError.textContent = '';
    let value;
    try { value = JSON.parse(input.value); } catch (e) { runError.textContent = `the input is not JSON: ${e.message}`; return; }
    try {
      const r = await api(`/v2/${enc}/run`, { method: 'POST', body: { input: value } });
      location.hash = `#/endpoint/${enc}/job/${encodeURIComponent(r.id)}`;
    } catch (e) { runError.textContent = e.message || String(e); }
  });
  const statusSelect = h('select', { id: 'job-status', onchange: (ev) => { jobStatus = ev.target.value; refresh(); } },
    h('option', { value: '' }, 'all statuses'),
    ['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].map((x) => h('option', { value: x }, x)));
  const levelSelect = h('select', { id: 'log-level' },
    ['debug', 'info', 'warn', 'error'].map((x) => h('option', { value: x, selected: x === 'debug' }, x)));

  main().replaceChildren(
    h('div', { class: 'row' }, h('h1', {}, `Endpoint ${id}`), h('span', { class: 'spacer' }), tabs),
    h('div', { class: 'error', id: 'poll-error' }),
    head,
    h('div', { class: 'grid' }, statsBox, workersBox),
    charts,
    h('div', { class: 'grid' }, runForm,
      h('div', { class: 'panel' }, h('div', { class: 'row' }, h('h2', {}, 'Live logs'), h('span', { class: 'spacer' }), levelSelect), logBox)),
    h('div', { class: 'panel' }, h('div', { class: 'row' }, h('h2', {}, 'Jobs'), h('span', { class: 'spacer' }), statusSelect), jobsBox));

  // The live log tail: reconnects after a break, resuming after the last line.
  const tail = new AbortController();
  let lastSeq = null;
  const addLine = (l) => {
    lastSeq = l.seq;
    const rank = ['debug', 'info', 'warn', 'error'];
    if (rank.indexOf(l.level) < rank.indexOf(levelSelect.value)) return;
    const stick = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
    logBox.append(logLine(l, true));
    while (logBox.childElementCount > 2000) logBox.firstChild.remove();
    if (stick) logBox.scrollTop = logBox.scrollHeight;
  };
  (async () => {
    while (!tail.signal.aborted) {
      try {
        await followLogs(id, `limit=200${lastSeq === null ? '' : `&after=${lastSeq}`}`, addLine, tail.signal);
      } catch (e) {
        if (tail.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();

  const refresh = async () => {
    const status = jobStatus ? `&status=${jobStatus}` : '';
    const [e, health, st, jobs] = await Promise.all([
      api(`/v1/endpoints/${enc}`), api(`/v2/${enc}/health`),
      api(`/v1/endpoints/${enc}/metrics?window=${window}`), api(`/v1/endpoints/${enc}/jobs?limit=50${status}`),
    ]);
    const state = endpointState(e);
    head.replaceChildren(h('div', { class: 'stats' },
      stat('state', badge(state, state.replace(/ /g, '-'))),
      stat('handler', h('span', { class: 'mono' }, e.handler.slice(0, 12))),
      stat('generation', e.generation),
      stat('workers', `${e.min_workers}–${e.max_workers} × ${e.concurrency}`),
      stat('gpus', e.gpus.join(', ')),
      stat('queued', e.jobs.inQueue),
      stat('running', e.jobs.inProgress),
      stat('queue delay', ms(health.queueDelayMs)),
      stat('flashboot', e.flashboot ? 'on' : 'off'),
      stat('last boot', health.lastBoot ? `${health.lastBoot.boot} ${ms(health.lastBoot.init_ms)}` : '–')));
    if (e.last_error) head.append(h('div', { class: 'error' }, `last error: ${e.last_error}`));
    statsBox.replaceChildren(
      h('h2', {}, `Latency over ${window}`),
      h('div', { class: 'stats' },
        stat('completed', st.completed), stat('failed', st.failed),
        stat('per minute', st.throughput_per_min.toFixed(2)), stat('cold starts', st.cold_starts)),
      percentileTable(st));
    workersBox.replaceChildren(h('h2', {}, 'Workers'), table(
      ['worker', 'state', 'slice', '#jobs', 'boot', '#ready in', 'why'],
      health.workerDetails.map((w) => [
        h('span', { class: 'mono' }, w.id), badge(w.state),
        w.slice ? `${w.slice.id} (${w.slice.slice_type})` : '–', w.busy,
        w.boot || '–', w.init_ms === undefined ? '–' : ms(w.init_ms), w.error || '']),
      'No workers now (scaled to zero). A job starts one.'));
    const pts = (f) => st.series.map((p) => [p.t, f(p)]);
    charts.replaceChildren(
      lineChart('Queue depth', [{ name: 'deepest queue', color: '#b7791f', points: pts((p) => p.queue_depth) }], st.since, st.until, (v) => v.toFixed(0)),
      lineChart(`Throughput (jobs per ${Math.round(st.step_ms / 1000)} s)`, [
        { name: 'completed', color: '#1e8e4f', points: pts((p) => p.completed) },
        { name: 'failed', color: '#c53030', points: pts((p) => p.failed) }], st.since, st.until, (v) => v.toFixed(0)),
      lineChart('Latency P90', [
        { name: 'delay', color: '#b7791f', points: pts((p) => p.delay_p90_ms) },
        { name: 'execution', color: '#2f6fdb', points: pts((p) => p.execution_p90_ms) }], st.since, st.until, ms));
    jobsBox.replaceChildren(jobsTable(id, jobs.jobs));
  };
  const stop = poll(refresh, 2000);
  return () => { stop(); tail.abort(); };
}

function stat(k, v) {
  return h('div', { class: 'stat' }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k));
}

function jobsTable(endpoint, jobs) {
  return table(['job', 'status', 'submitted', '#delay', '#execution', 'worker', 'error'],
    jobs.map((j) => [
      h('a', { class: 'mono job-link', href: `#/endpoint/${encodeURIComponent(endpoint)}/job/${encodeURIComponent(j.id)}` }, j.id),
      badge(j.status), ago(j.created_at), ms(j.delay_ms), ms(j.execution_ms), j.worker_id || '–', j.error || '']),
    'No retained jobs.');
}

function logLine(l, withJob) {
  const who = [l.worker, withJob ? l.job : null].filter(Boolean).join(' ');
  return h('span', { class: `line lv-${l.level} src-${l.source}` },
    h('span', { class: 't' }, clock(l.at)), ' ',
    `${l.level.toUpperCase().padEnd(5)} ${l.source.padEnd(6)} `,
    who ? h('span', { class: 'who' }, `${who}  `) : null,
    l.message);
}

function jobPage(endpoint, job) {
  const enc = encodeURIComponent(endpoint);
  const box = h('div', { id: 'job' });
  main().replaceChildren(
    h('div', { class: 'row' },
      h('h1', {}, 'Job ', h('span', { class: 'mono' }, job)),
      h('span', { class: 'spacer' }),
      h('a', { href: `#/endpoint/${enc}` }, `← endpoint ${endpoint}`)),
    h('div', { class: 'error', id: 'poll-error' }),
    box);
  let stop = () => {};
  stop = poll(async () => {
    const j = await api(`/v1/endpoints/${enc}/jobs/${encodeURIComponent(job)}`);
    box.replaceChildren(...[
      h('div', { class: 'panel' }, h('div', { class: 'stats' },
        stat('status', h('span', { id: 'job-status-badge' }, badge(j.status))),
        stat('delay', ms(j.delay_ms)), stat('execution', ms(j.execution_ms)),
        stat('worker', j.worker_id || '–'), stat('retries', j.retries),
        stat('handler', h('span', { class: 'mono' }, (j.handler || '–').slice(0, 12))),
        stat('submitted', ago(j.created_at))),
        j.error ? h('div', { class: 'error', id: 'job-error' }, j.error) : null),
      h('div', { class: 'grid' },
        h('div', { class: 'panel' }, h('h2', {}, 'Input'), h('pre', { id: 'job-input-view' }, pretty(j.input))),
        h('div', { class: 'panel' }, h('h2', {}, j.status === 'IN_PROGRESS' ? 'Progress' : 'Output'),
          h('pre', { id: 'job-output' }, pretty(j.status === 'IN_PROGRESS' ? j.progress : j.output)))),
      j.stream.length ? h('div', { class: 'panel' }, h('h2', {}, `Stream (${j.stream.length} chunks)`),
        h('pre', { id: 'job-stream' }, j.stream.map((c) => JSON.stringify(c)).join('\n'))) : null,
      h('div', { class: 'panel' }, h('h2', {}, `Logs (${j.logs.length} lines)`),
        h('div', { class: 'log', id: 'job-logs' }, j.logs.length ? j.logs.map((l) => logLine(l, false)) : h('span', { class: 't' }, 'no log lines'))),
    ].filter(Boolean));
    if (FINAL.includes(j.status)) stop();
  }, 1000);
  return () => stop();
}

// ---------------------------------------------------------------- router

function route() {
  if (page) { page(); page = null; }
  if (!sessionStorage.getItem(KEY)) { showSignIn(); return; }
  document.getElementById('signout').hidden = false;
  document.getElementById('who').textContent = `${location.host} · key ${sessionStorage.getItem(KEY).slice(0, 8)}…`;
  document.getElementById('nav').replaceChildren(h('a', { href: '#/' }, 'Endpoints'));
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'endpoint' && parts[1] && parts[2] === 'job' && parts[3]) page = jobPage(parts[1], parts[3]);
  else if (parts[0] === 'endpoint' && parts[1]) page = endpointPage(parts[1]);
  else page = overviewPage();
}

document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  route();
});
window.addEventListener('hashchange', route);
route();
