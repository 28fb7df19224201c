// `mlp`: a two-layer perceptron loaded from safetensors (model "mlp") in
// init and run with host tensor ops: softmax(relu(x W1ᵀ + b1) W2ᵀ + b2).
//
// Input {"inputs": [[f32; in], ...]}, output {"classes": [...], "probs":
// [[...], ...]}. The model directory comes from examples/mlp/make_model.py.
import * as wasmpod from 'wasmpod-sdk';
import { Model, Tensor } from 'wasmpod-sdk';

// Filled by setup(), once per instance. Tensors made in init live as long
// as the instance; those made in a job are released when it ends.
let weights = null;

function setup() {
  const model = Model.open('mlp');
  const fc1 = model.weight('fc1.weight');
  const fc2 = model.weight('fc2.weight');
  // PyTorch stores [out, in]; transpose once so the forward pass is x·W.
  weights = {
    fc1T: fc1.T,
    fc1B: model.weight('fc1.bias'),
    fc2T: fc2.T,
    fc2B: model.weight('fc2.bias'),
  };
  wasmpod.info(`mlp loaded: ${fc1.shape[1]} inputs, ${fc1.shape[0]} hidden, ${fc2.shape[0]} classes`);
}

function handle(input) {
  if (weights === null) throw new Error('the model is not loaded');
  const rows = input?.inputs;
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new TypeError('expected {"inputs": [[...], ...]} with at least one row');
  }
  // A row of the wrong width is left to the host: its matmul reports a
  // shape mismatch, which arrives here as TensorError and fails the job.
  const x = Tensor.fromArray(rows);
  const hidden = x.matmul(weights.fc1T).add(weights.fc1B).relu();
  const probs = hidden.matmul(weights.fc2T).add(weights.fc2B).softmax(-1);
  return { classes: probs.argmax(-1).toArray(), probs: probs.toArray() };
}

wasmpod.serve(handle, { init: setup });
