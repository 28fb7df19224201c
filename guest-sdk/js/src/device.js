// What the worker is pinned to: its devices and its tensor-memory quota.

import * as witDevice from 'wasmpod:serverless/device@0.1.0';

/** The devices of the worker's slice: [{index, kind: 'cpu' | 'cuda', name,
 * uuid, migProfile, memoryBytes}]; `index` is what Tensor.toDevice takes. */
export function devices() {
  return witDevice.devices().map((d) => ({
    index: d.index,
    kind: d.kind,
    name: d.name,
    uuid: d.uuid,
    migProfile: d.migProfile ?? null,
    memoryBytes: Number(d.memoryBytes),
  }));
}

/** This worker's tensor-memory quota, in bytes. */
export function quotaBytes() {
  return Number(witDevice.quotaBytes());
}

/** Bytes of the quota held by this worker's tensors right now. */
export function usedBytes() {
  return Number(witDevice.usedBytes());
}
