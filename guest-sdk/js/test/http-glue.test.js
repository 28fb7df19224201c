// Unit tests of the HTTP handler glue (routes, requests, responses) on
// Node: `node --test guest-sdk/js/test/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HTTPError, Request, Response, Router, toResponse } from '../src/http-glue.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function request(method, path, body = '', headers = []) {
  const pending = [enc.encode(body)];
  return new Request(method, path, headers, () => pending.pop() ?? new Uint8Array(0));
}

async function bodyOf(response) {
  let text = '';
  for await (const piece of response.pieces()) text += dec.decode(piece);
  return text;
}

function app() {
  const logged = [];
  const router = new Router();
  router.log = (line) => logged.push(line);
  router.get('/hello/:name', (req) => `hello, ${req.params.name}`);
  router.get('/files/*rest', (req) => ({ rest: req.params.rest, q: req.queryParam('q') }));
  router.post('/echo', (req) => new Response(req.chunks()));
  router.get('/boom', () => { throw new RangeError('too big'); });
  router.get('/teapot', async () => { throw new HTTPError(418, 'short and stout'); });
  return { router, logged };
}

test('params, text and JSON answers', async () => {
  const { router } = app();
  let r = await router.handle(request('GET', '/hello/ada%20l'));
  assert.equal(r.status, 200);
  assert.equal(await bodyOf(r), 'hello, ada l');
  r = await router.handle(request('get', '/files/a/b.txt?q=1'));
  assert.deepEqual(JSON.parse(await bodyOf(r)), { rest: 'a/b.txt', q: '1' });
  assert.ok(r.wireHeaders().some(([k]) => k === 'content-length'));
});

test('a streamed body has no length', async () => {
  const { router } = app();
  const r = await router.handle(request('POST', '/echo', 'abc'));
  assert.ok(r.streamed);
  assert.equal(await bodyOf(r), 'abc');
  assert.ok(!r.wireHeaders().some(([k]) => k === 'content-length'));
});

test('unknown paths are 404, other methods 405', async () => {
  const { router } = app();
  let r = await router.handle(request('GET', '/nope'));
  assert.equal(r.status, 404);
  assert.deepEqual(JSON.parse(await bodyOf(r)), { error: 'no route GET /nope' });
  r = await router.handle(request('GET', '/echo'));
  assert.equal(r.status, 405);
  assert.ok(r.headers.some(([k, v]) => k === 'allow' && v === 'POST'));
});

test('throws become answers; the stack is logged', async () => {
  const { router, logged } = app();
  let r = await router.handle(request('GET', '/boom'));
  assert.equal(r.status, 500);
  assert.deepEqual(JSON.parse(await bodyOf(r)), { error: 'RangeError: too big' });
  assert.match(logged[0], /RangeError: too big\n/);
  r = await router.handle(request('GET', '/teapot'));
  assert.equal(r.status, 418);
});

test('return values and bad JSON bodies', async () => {
  assert.equal(toResponse(undefined).status, 204);
  assert.equal(await bodyOf(toResponse((function* () { yield 'a'; yield enc.encode('b'); })())), 'ab');
  assert.equal(toResponse([1, 2]).headers.find(([k]) => k === 'content-type')[1], 'application/json');
  assert.throws(() => request('POST', '/x', '{nope').json(), (e) => e instanceof HTTPError && e.status === 400);
  assert.equal(request('GET', '/x', '', [['Content-Type', 'a/b']]).headers.get('content-type'), 'a/b');
});
