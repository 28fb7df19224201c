// Unit tests of the SDK's pure parts (no WIT imports), on Node:
// `node --test guest-sdk/js/test/`. The parts that call the host are tested
// end to end through `wasmpod run`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandlerFailure, Registry, describeError } from '../src/glue.js';
import * as convert from '../src/convert.js';

const withHandler = (fn) => {
  const registry = new Registry();
  registry.setHandler(fn);
  return registry;
};

test('json in, json out; sync and async handlers', async () => {
  assert.equal(await withHandler((v) => ({ got: v })).runHandle('{"a":[1,2.5,"x"]}'), '{"got":{"a":[1,2.5,"x"]}}');
  assert.equal(await withHandler(async (v) => v.n + 1).runHandle('{"n":1}'), '2');
});

test('undefined output is null', async () => {
  assert.equal(await withHandler(() => undefined).runHandle('{}'), 'null');
});

test('a thrown Error becomes Name: message, with the stack as details', async () => {
  await assert.rejects(withHandler(() => { throw new RangeError('too big'); }).runHandle('{}'), (e) => {
    assert.ok(e instanceof HandlerFailure);
    assert.equal(e.message, 'RangeError: too big');
    assert.match(e.details, /RangeError: too big\n.*glue\.test\.js/s);
    return true;
  });
});

test('a rejected promise is reported like a throw', async () => {
  await assert.rejects(withHandler(async () => { throw new TypeError('bad'); }).runHandle('{}'), { message: 'TypeError: bad' });
});

test('thrown non-errors are described', () => {
  assert.equal(describeError('plain'), 'plain');
  assert.equal(describeError({ code: 7 }), 'thrown value: {"code":7}');
  assert.equal(describeError(undefined), 'thrown value: undefined');
  class Custom extends Error {}
  assert.equal(describeError(new Custom('x')), 'Error: x');
});

test('invalid input json', async () => {
  await assert.rejects(withHandler((v) => v).runHandle('{nope'), (e) => e.message.startsWith('invalid input: '));
});

test('unserializable output', async () => {
  await assert.rejects(withHandler(() => ({ n: 1n })).runHandle('{}'), (e) => {
    assert.match(e.message, /^the handler's output could not be serialized to JSON: TypeError: .*BigInt/);
    return true;
  });
});

test('no handler registered', async () => {
  await assert.rejects(new Registry().runHandle('{}'), /no handler is registered/);
});

test('a second handler is refused; the same one is fine', () => {
  const registry = new Registry();
  function first() {}
  function second() {}
  registry.setHandler(first);
  registry.setHandler(first);
  assert.throws(() => registry.setHandler(second), /already registered \(first\).*not also second/);
  assert.throws(() => registry.setHandler(3), /handler must be a function, got number/);
});

test('init failure is reported', async () => {
  const registry = new Registry();
  registry.setInit(() => { throw new Error('no model'); });
  await assert.rejects(registry.runInit(), { message: 'Error: no model' });
  await new Registry().runInit();
});

test('flatten and unflatten', () => {
  assert.deepEqual(convert.flatten([[1, 2, 3], [4, 5, 6]]), [[2, 3], [1, 2, 3, 4, 5, 6]]);
  assert.deepEqual(convert.flatten(7.5), [[], [7.5]]);
  assert.deepEqual(convert.flatten([[], []]), [[2, 0], []]);
  assert.throws(() => convert.flatten([[1, 2], [3]]), /value\[1\] has length 1, expected length 2/);
  for (const nested of [[[1, 2, 3], [4, 5, 6]], [[[1], [2]], [[3], [4]]], [1, 2], 5]) {
    const [dims, flat] = convert.flatten(nested);
    assert.deepEqual(convert.unflatten(flat, dims), nested);
  }
});

test('argument checks name the bad element', () => {
  assert.deepEqual(Array.from(convert.shape([2, 3])), [2, 3]);
  assert.throws(() => convert.shape([2, -1]), /shape\[1\] must be in 0\.\.=4294967295, got -1/);
  assert.throws(() => convert.shape([2.5]), /shape\[0\] must be an integer/);
  assert.throws(() => convert.f32Array([1, 'x']), /data\[1\] must be a number, got string x/);
  assert.throws(() => convert.i64Array([1, 1.5]), /data\[1\] must be an integer/);
  assert.deepEqual(Array.from(convert.i64Array([1, -2n])), [1n, -2n]);
  assert.throws(() => convert.s32(2 ** 31, 'axis'), /axis must be in/);
  assert.deepEqual(convert.i64Numbers(new BigInt64Array([3n, -1n])), [3, -1]);
  assert.throws(() => convert.i64Numbers(new BigInt64Array([2n ** 60n])), /no exact JS number/);
});
