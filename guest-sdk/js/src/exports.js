// The component's exports (`init`, `handle` of world
// wasmpod:serverless/handler) over the registry. The entry module that
// build.sh generates re-exports these. They return result values
// ({tag: 'err', val}) instead of throwing, because componentize-js traps on
// a thrown Error that has no `payload`.

import { log } from 'wasmpod:serverless/job@0.1.0';
import { HandlerFailure, REGISTRY, describeError } from './glue.js';
import { beginJobScope } from './tensor.js';

function failed(error) {
  const failure = error instanceof HandlerFailure ? error : new HandlerFailure(describeError(error));
  if (failure.details) log('error', failure.details.trimEnd());
  return { tag: 'err', val: failure.message };
}

export async function init() {
  try {
    await REGISTRY.runInit();
    return { tag: 'ok', val: undefined };
  } catch (error) {
    return failed(error);
  }
}

export async function handle(job) {
  const endScope = beginJobScope();
  try {
    return { tag: 'ok', val: await REGISTRY.runHandle(job.input) };
  } catch (error) {
    return failed(error);
  } finally {
    endScope();
  }
}
