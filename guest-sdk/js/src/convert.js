// Checks and conversions between JS values and the WIT's integer and float
// lists, done before a host call so that a bad argument is a TypeError or
// RangeError naming it, never a silent wrap-around or a trap in the bindings.

function int(value, what, low, high) {
  if (typeof value === 'bigint') {
    if (value < BigInt(low) || value > BigInt(high)) throw new RangeError(`${what} must be in ${low}..=${high}, got ${value}`);
    return Number(value);
  }
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${what} must be an integer, got ${typeof value} ${String(value)}`);
  }
  if (value < low || value > high) throw new RangeError(`${what} must be in ${low}..=${high}, got ${value}`);
  return value;
}

export const u32 = (value, what) => int(value, what, 0, 2 ** 32 - 1);
export const s32 = (value, what) => int(value, what, -(2 ** 31), 2 ** 31 - 1);

export function f32(value, what) {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${typeof value} ${String(value)}`);
  return value;
}

function isList(value) {
  return Array.isArray(value) || ArrayBuffer.isView(value);
}

export function shape(dims, what = 'shape') {
  if (!isList(dims)) throw new TypeError(`${what} must be an array of sizes, got ${typeof dims}`);
  const out = new Uint32Array(dims.length);
  for (let i = 0; i < dims.length; i++) out[i] = u32(dims[i], `${what}[${i}]`);
  return out;
}

/** Like `shape`, but one entry may be -1 (reshape's inferred dimension). */
export function s64List(dims, what) {
  if (!isList(dims)) throw new TypeError(`${what} must be an array of sizes, got ${typeof dims}`);
  const out = new BigInt64Array(dims.length);
  for (let i = 0; i < dims.length; i++) {
    const v = dims[i];
    if (typeof v === 'bigint') out[i] = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
    else throw new TypeError(`${what}[${i}] must be an integer, got ${typeof v} ${String(v)}`);
  }
  return out;
}

export function f32Array(values) {
  if (values instanceof Float32Array) return values;
  if (!isList(values)) throw new TypeError(`data must be an array of numbers, got ${typeof values}`);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number') throw new TypeError(`data[${i}] must be a number, got ${typeof v} ${String(v)}`);
    out[i] = v;
  }
  return out;
}

export function i64Array(values) {
  if (values instanceof BigInt64Array) return values;
  if (!isList(values)) throw new TypeError(`data must be an array of integers, got ${typeof values}`);
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'bigint') out[i] = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
    else throw new TypeError(`data[${i}] must be an integer, got ${typeof v} ${String(v)}`);
  }
  return out;
}

/** Numbers from an i64 read-back; values beyond 2^53 have no exact Number. */
export function i64Numbers(values) {
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const n = Number(values[i]);
    if (!Number.isSafeInteger(n)) throw new RangeError(`value ${values[i]} at ${i} has no exact JS number; use toI64() for BigInts`);
    out[i] = n;
  }
  return out;
}

/** [shape, flat values] of a number or a nested array of numbers; every row
 * at one depth must have the same length. */
export function flatten(nested) {
  if (!Array.isArray(nested) && !ArrayBuffer.isView(nested)) return [[], [nested]];
  const dims = [];
  let level = nested;
  while (Array.isArray(level) || ArrayBuffer.isView(level)) {
    dims.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  const flat = [];
  const walk = (value, depth, path) => {
    const list = Array.isArray(value) || ArrayBuffer.isView(value);
    if (depth === dims.length) {
      if (list) throw new RangeError(`ragged nested array: ${path} is an array, expected a number at depth ${depth}`);
      flat.push(value);
      return;
    }
    if (!list || value.length !== dims[depth]) {
      const got = list ? `length ${value.length}` : typeof value;
      throw new RangeError(`ragged nested array: ${path} has ${got}, expected length ${dims[depth]}`);
    }
    for (let i = 0; i < value.length; i++) walk(value[i], depth + 1, `${path}[${i}]`);
  };
  walk(nested, 0, 'value');
  return [dims, flat];
}

/** Nest a flat array by `dims` (row-major); a scalar for empty `dims`. */
export function unflatten(flat, dims) {
  if (dims.length === 0) return flat[0];
  if (dims.length === 1) return Array.from(flat);
  const step = dims.slice(1).reduce((a, b) => a * b, 1);
  const out = [];
  for (let i = 0; i < dims[0]; i++) out.push(unflatten(flat.slice(i * step, (i + 1) * step), dims.slice(1)));
  return out;
}
