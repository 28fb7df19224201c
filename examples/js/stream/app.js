// `stream`: streams `n` partial outputs {"i": k}, each followed by a
// progress update, then returns {"count": n}. Shows `stream` and
// `progress`, RunPod's generator handlers in wasmpod terms.
//
// Input: {"n": 3}, optionally "delay_ms": 100 between chunks.
import * as wasmpod from 'wasmpod-sdk';

function count(input, key, fallback) {
  const value = input[key] ?? fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${key} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

wasmpod.serve(async (input) => {
  if (input === null || typeof input !== 'object' || !('n' in input)) {
    throw new TypeError('expected {"n": <count>}');
  }
  const n = count(input, 'n');
  const delayMs = count(input, 'delay_ms', 0);
  for (let i = 0; i < n; i++) {
    if (wasmpod.cancelled()) break;
    wasmpod.stream({ i });
    wasmpod.progress({ done: i + 1, total: n });
    if (delayMs > 0) await sleep(delayMs);
  }
  return { count: n };
});
