// `Tensor`: an immutable n-dimensional array on the worker's device (GPU or
// CPU), with the host's ops as methods. Every op returns a new tensor; a
// failure throws TensorError.
//
// Lifetime: the bindings jco generates stop tracking a resource for garbage
// collection once any method is called on it, so host tensors would never
// be freed by GC. The SDK therefore frees them itself: every tensor created
// while a job runs is released when the job ends (unless `keep()` was
// called), tensors created in init live as long as the instance, `tidy(fn)`
// releases a block's temporaries early, and `dispose()` releases one now.

import { Tensor as WitTensor } from 'wasmpod:serverless/tensor@0.1.0';
import * as convert from './convert.js';
import { tensorErrorFrom, witPayload } from './errors.js';

export const DTYPES = ['f32', 'f16', 'bf16', 'i32', 'i64', 'u8'];
const FLOAT_DTYPES = new Set(['f32', 'f16', 'bf16']);

function dtype(value) {
  if (!DTYPES.includes(value)) throw new TypeError(`unknown dtype ${JSON.stringify(value)}; expected one of ${DTYPES.join(', ')}`);
  return value;
}

/** Run a binding call, turning a WIT tensor-error into TensorError. */
export function callTensor(op) {
  try {
    return op();
  } catch (error) {
    const payload = witPayload(error);
    if (payload !== undefined && typeof payload === 'object' && typeof payload.tag === 'string') throw tensorErrorFrom(payload);
    throw error;
  }
}

// Tensors to release at the end of the current job, or of the innermost
// tidy() block. `null` outside a job (init): those tensors are the
// instance's to keep.
let scopes = null;

/** Start tracking tensors for a job; returns the function that ends it. */
export function beginJobScope() {
  scopes = [new Set()];
  return () => {
    const all = scopes;
    scopes = null;
    for (const scope of all) for (const tensor of scope) tensor.dispose();
  };
}

function track(tensor) {
  if (scopes !== null) scopes[scopes.length - 1].add(tensor);
  return tensor;
}

/** Run `fn` and release every tensor it created, except those in its
 * result (a Tensor, or an array or object of them), which move to the
 * enclosing scope. */
export function tidy(fn) {
  if (typeof fn !== 'function') throw new TypeError('tidy takes a function');
  if (scopes === null) return fn(); // in init, everything is kept anyway
  const scope = new Set();
  scopes.push(scope);
  let result;
  try {
    result = fn();
  } finally {
    scopes.pop();
    const survivors = new Set();
    collectTensors(result, survivors);
    for (const tensor of scope) {
      if (survivors.has(tensor)) track(tensor);
      else tensor.dispose();
    }
  }
  return result;
}

function collectTensors(value, into, depth = 0) {
  if (value instanceof Tensor) into.add(value);
  else if (depth < 4 && value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const v of Array.isArray(value) ? value : Object.values(value)) collectTensors(v, into, depth + 1);
  }
}

/** Wrap a binding resource (from a tensor op or Model.weight). */
export function wrap(raw) {
  return track(new Tensor(RAW, raw));
}

const RAW = Symbol('raw');
// jco's bindings name the method this way where Symbol.dispose is missing.
const DISPOSE = Symbol.dispose || Symbol.for('dispose');

function operand(value, what = 'rhs') {
  if (!(value instanceof Tensor)) throw new TypeError(`${what} must be a Tensor, got ${value === null ? 'null' : typeof value}`);
  return value.raw;
}

export class Tensor {
  #raw;

  /** Not for direct use: build tensors with Tensor.fromArray, fromF32,
   * fromI64, fromBytes or zeros. */
  constructor(token, raw) {
    if (token !== RAW) throw new TypeError('use Tensor.fromArray, fromF32, fromI64, fromBytes or zeros');
    this.#raw = raw;
  }

  /** The binding resource; throws once the tensor was released. */
  get raw() {
    if (this.#raw === null) {
      throw new Error('this tensor was released (dispose(), tidy(), or the end of the job that created it); call keep() on a tensor to use it in later jobs, or create it in init');
    }
    return this.#raw;
  }

  // -- construction --------------------------------------------------------

  /** Upload f32 values (an array or Float32Array) with `shape`. */
  static fromF32(shape, data) {
    const dims = convert.shape(shape);
    const values = convert.f32Array(data);
    return wrap(callTensor(() => WitTensor.fromF32(dims, values)));
  }

  /** Upload i64 values (numbers, BigInts or a BigInt64Array), e.g. token ids. */
  static fromI64(shape, data) {
    const dims = convert.shape(shape);
    const values = convert.i64Array(data);
    return wrap(callTensor(() => WitTensor.fromI64(dims, values)));
  }

  /** Upload little-endian row-major bytes of `dtype`. */
  static fromBytes(dtypeName, shape, bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
    const dims = convert.shape(shape);
    return wrap(callTensor(() => WitTensor.fromBytes(dtype(dtypeName), dims, bytes)));
  }

  /** Upload a number or a nested array of numbers; the shape is the
   * nesting. `dtype` 'f32' (default) or 'i64'; others come from a cast. */
  static fromArray(nested, dtypeName = 'f32') {
    dtype(dtypeName);
    const [dims, flat] = convert.flatten(nested);
    if (dtypeName === 'i64') return Tensor.fromI64(dims, flat);
    const t = Tensor.fromF32(dims, flat);
    return dtypeName === 'f32' ? t : t.cast(dtypeName);
  }

  /** A tensor of zeros. */
  static zeros(dtypeName, shape) {
    const dims = convert.shape(shape);
    return wrap(callTensor(() => WitTensor.zeros(dtype(dtypeName), dims)));
  }

  /** Concatenate tensors of one dtype along `axis`. */
  static concat(tensors, axis = 0) {
    if (!Array.isArray(tensors)) throw new TypeError('concat takes an array of tensors');
    const raws = tensors.map((t, i) => operand(t, `tensors[${i}]`));
    const a = convert.s32(axis, 'axis');
    return wrap(callTensor(() => WitTensor.concat(raws, a)));
  }

  // -- facts -----------------------------------------------------------------

  /** The dimensions, outermost first; [] for a scalar. */
  get shape() {
    return Array.from(this.raw.shape());
  }

  /** 'f32', 'f16', 'bf16', 'i32', 'i64' or 'u8'. */
  get dtype() {
    return this.raw.dtype();
  }

  get ndim() {
    return this.raw.shape().length;
  }

  /** Index of the device, within the worker's slice, holding it. */
  get deviceIndex() {
    return this.raw.deviceIndex();
  }

  toString() {
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype})`;
  }

  // -- reading back ----------------------------------------------------------

  /** Little-endian row-major bytes (Uint8Array). */
  toBytes() {
    return callTensor(() => this.raw.toBytes());
  }

  /** Flat Float32Array (any dtype, converted). */
  toF32() {
    return callTensor(() => this.raw.toF32());
  }

  /** Flat BigInt64Array (integer dtypes only). */
  toI64() {
    return callTensor(() => this.raw.toI64());
  }

  /** Nested arrays of numbers shaped like the tensor; a number for a
   * scalar. Integer dtypes give integers. */
  toArray() {
    const flat = FLOAT_DTYPES.has(this.dtype) ? Array.from(this.toF32()) : convert.i64Numbers(this.toI64());
    return convert.unflatten(flat, this.shape);
  }

  /** The value of a one-element tensor. */
  item() {
    const flat = FLOAT_DTYPES.has(this.dtype) ? Array.from(this.toF32()) : convert.i64Numbers(this.toI64());
    if (flat.length !== 1) throw new RangeError(`item() needs a tensor of one element, this one has shape [${this.shape}]`);
    return flat[0];
  }

  /** Copy to device `index` of the worker's slice. */
  toDevice(index) {
    const i = convert.u32(index, 'index');
    return wrap(callTensor(() => this.raw.toDevice(i)));
  }

  // -- lifetime --------------------------------------------------------------

  /** Release the host tensor now. Idempotent. */
  dispose() {
    if (this.#raw !== null) {
      const raw = this.#raw;
      this.#raw = null;
      raw[DISPOSE]();
    }
  }

  [DISPOSE]() {
    this.dispose();
  }

  /** Keep this tensor past the end of the current job (e.g. weights loaded
   * lazily and cached for later jobs). Returns the tensor. */
  keep() {
    if (scopes !== null) for (const scope of scopes) scope.delete(this);
    return this;
  }

  get disposed() {
    return this.#raw === null;
  }

  // -- ops -------------------------------------------------------------------

  #unary(op) {
    const raw = this.raw;
    return wrap(callTensor(() => op(raw)));
  }

  #binary(rhs, op, scalar) {
    if (typeof rhs === 'number') return this.scale(...scalar(rhs));
    const r = operand(rhs);
    return this.#unary((raw) => op(raw, r));
  }

  /** Matrix product over the last two axes; batch axes broadcast. */
  matmul(rhs) {
    const r = operand(rhs);
    return this.#unary((raw) => raw.matmul(r));
  }

  /** Elementwise sum with broadcasting; a number adds a constant. */
  add(rhs) {
    return this.#binary(rhs, (raw, r) => raw.add(r), (n) => [1, n]);
  }

  /** Elementwise difference with broadcasting; a number subtracts a constant. */
  sub(rhs) {
    return this.#binary(rhs, (raw, r) => raw.sub(r), (n) => [1, -n]);
  }

  /** Elementwise product with broadcasting; a number scales. */
  mul(rhs) {
    return this.#binary(rhs, (raw, r) => raw.mul(r), (n) => [n, 0]);
  }

  /** Elementwise quotient with broadcasting; a number divides. */
  div(rhs) {
    if (rhs === 0) throw new RangeError('tensor divided by the number zero');
    return this.#binary(rhs, (raw, r) => raw.div(r), (n) => [1 / n, 0]);
  }

  /** `this * factor + offset`, elementwise. */
  scale(factor, offset = 0) {
    const f = convert.f32(factor, 'factor');
    const o = convert.f32(offset, 'offset');
    return this.#unary((raw) => raw.scale(f, o));
  }

  neg() {
    return this.scale(-1, 0);
  }

  relu() {
    return this.#unary((raw) => raw.relu());
  }

  gelu() {
    return this.#unary((raw) => raw.gelu());
  }

  silu() {
    return this.#unary((raw) => raw.silu());
  }

  tanh() {
    return this.#unary((raw) => raw.tanh());
  }

  softmax(axis = -1) {
    const a = convert.s32(axis, 'axis');
    return this.#unary((raw) => raw.softmax(a));
  }

  /** Layer normalisation over the last axis; weight and bias optional. */
  layerNorm(weight = null, bias = null, eps = 1e-5) {
    const w = weight == null ? undefined : operand(weight, 'weight');
    const b = bias == null ? undefined : operand(bias, 'bias');
    const e = convert.f32(eps, 'eps');
    return this.#unary((raw) => raw.layerNorm(w, b, e));
  }

  /** RMS normalisation over the last axis; weight optional. */
  rmsNorm(weight = null, eps = 1e-6) {
    const w = weight == null ? undefined : operand(weight, 'weight');
    const e = convert.f32(eps, 'eps');
    return this.#unary((raw) => raw.rmsNorm(w, e));
  }

  /** Embedding lookup: `this` is a table [rows, dim]. */
  gather(indices) {
    const i = operand(indices, 'indices');
    return this.#unary((raw) => raw.gather(i));
  }

  /** Same data, new shape; one dimension may be -1. `reshape([2, -1])` or
   * `reshape(2, -1)`. */
  reshape(...dims) {
    const list = dims.length === 1 && (Array.isArray(dims[0]) || ArrayBuffer.isView(dims[0])) ? dims[0] : dims;
    const s = convert.s64List(list, 'shape');
    return this.#unary((raw) => raw.reshape(s));
  }

  /** Reorder axes: result axis i is input axis dims[i]. */
  permute(...dims) {
    const list = dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : dims;
    const d = convert.shape(list, 'dims');
    return this.#unary((raw) => raw.permute(d));
  }

  /** Swap two axes (by default the last two). */
  transpose(axis0 = -2, axis1 = -1) {
    const a0 = convert.s32(axis0, 'axis0');
    const a1 = convert.s32(axis1, 'axis1');
    return this.#unary((raw) => raw.transpose(a0, a1));
  }

  /** The last two axes swapped. */
  get T() {
    return this.transpose(-2, -1);
  }

  /** Elements start..end (end exclusive) along `axis`. */
  slice(axis, start, end) {
    const a = convert.s32(axis, 'axis');
    const s = convert.u32(start, 'start');
    const e = convert.u32(end, 'end');
    return this.#unary((raw) => raw.slice(a, s, e));
  }

  sum(axis = -1, keepDim = false) {
    const a = convert.s32(axis, 'axis');
    return this.#unary((raw) => raw.sum(a, Boolean(keepDim)));
  }

  mean(axis = -1, keepDim = false) {
    const a = convert.s32(axis, 'axis');
    return this.#unary((raw) => raw.mean(a, Boolean(keepDim)));
  }

  max(axis = -1, keepDim = false) {
    const a = convert.s32(axis, 'axis');
    return this.#unary((raw) => raw.max(a, Boolean(keepDim)));
  }

  cast(dtypeName) {
    const d = dtype(dtypeName);
    return this.#unary((raw) => raw.cast(d));
  }

  /** Index of the maximum along `axis`, as i64, axis removed. */
  argmax(axis = -1) {
    const a = convert.s32(axis, 'axis');
    return this.#unary((raw) => raw.argmax(a));
  }

  /** The k largest values along the last axis and their indices:
   * [values, indices]. */
  topK(k) {
    const n = convert.u32(k, 'k');
    const raw = this.raw;
    const [values, indices] = callTensor(() => raw.topK(n));
    return [wrap(values), wrap(indices)];
  }
}
