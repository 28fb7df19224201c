// `Model`: safetensors weights and auxiliary files (tokenizer, config) from
// the endpoint's model store. Weights are loaded once per device by the
// host and shared read-only; opening a model again is cheap.

import { Model as WitModel, listModels as witListModels } from 'wasmpod:serverless/model@0.1.0';
import { ModelError, tensorErrorFrom, witPayload } from './errors.js';
import { wrap } from './tensor.js';

function callModel(op) {
  try {
    return op();
  } catch (error) {
    const payload = witPayload(error);
    if (payload === undefined || typeof payload !== 'object') throw error;
    if (payload.tag === 'tensor') {
      const cause = tensorErrorFrom(payload.val);
      throw new ModelError('tensor', cause.message, cause);
    }
    throw new ModelError(payload.tag, payload.val);
  }
}

function text(value, what) {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string, got ${typeof value}`);
  return value;
}

/** Names of the models available to this endpoint. */
export function listModels() {
  return witListModels();
}

const OPEN = Symbol('open');

/** An opened model. Open models in init (not at module top level, which
 * runs while the component is built, where no models exist). */
export class Model {
  #raw;

  constructor(token, raw) {
    if (token !== OPEN) throw new TypeError('use Model.open(name)');
    this.#raw = raw;
  }

  /** Open the model called `name` in the endpoint's model directory. */
  static open(name) {
    const n = text(name, 'name');
    return new Model(OPEN, callModel(() => WitModel.open(n)));
  }

  /** Names of the models available to this endpoint. */
  static list() {
    return listModels();
  }

  get name() {
    return this.#raw.name();
  }

  /** Every weight, sorted by name: [{name, dtype, shape}]. */
  weights() {
    return this.#raw.weights().map((w) => ({ name: w.name, dtype: w.dtype, shape: Array.from(w.shape) }));
  }

  /** One weight as a read-only Tensor on the worker's device. */
  weight(name) {
    const n = text(name, 'name');
    return wrap(callModel(() => this.#raw.weight(n)));
  }

  /** Auxiliary (non-safetensors) files, relative to the model directory. */
  files() {
    return this.#raw.files();
  }

  /** The bytes of an auxiliary file (Uint8Array). */
  readFile(path) {
    const p = text(path, 'path');
    return callModel(() => this.#raw.readFile(p));
  }

  /** An auxiliary file decoded as UTF-8. */
  readText(path) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.readFile(path));
    } catch (error) {
      if (error instanceof ModelError) throw error;
      throw new ModelError('invalid', `${path} is not UTF-8: ${error.message}`);
    }
  }

  /** An auxiliary file parsed as JSON (e.g. 'config.json'). */
  readJson(path) {
    const t = this.readText(path);
    try {
      return JSON.parse(t);
    } catch (error) {
      throw new ModelError('invalid', `${path} is not valid JSON: ${error.message}`);
    }
  }

  toString() {
    return `Model(${this.name})`;
  }
}
