"""`mlp`: a two-layer perceptron loaded from safetensors (model "mlp") in
init and run with host tensor ops: softmax(relu(x W1ᵀ + b1) W2ᵀ + b2).

Input `{"inputs": [[f32; in], ...]}`, output `{"classes": [...], "probs":
[[...], ...]}`. The model directory comes from examples/mlp/make_model.py.
"""

import wasmpod_sdk as wasmpod
from wasmpod_sdk import Model, Tensor

# Filled by setup(), once per instance; the handler only reads it.
weights = {}


@wasmpod.init
def setup():
    model = Model.open("mlp")
    fc1 = model.weight("fc1.weight")
    fc2 = model.weight("fc2.weight")
    # PyTorch stores [out, in]; transpose once so the forward pass is x @ W.
    weights["fc1_t"] = fc1.T
    weights["fc1_b"] = model.weight("fc1.bias")
    weights["fc2_t"] = fc2.T
    weights["fc2_b"] = model.weight("fc2.bias")
    wasmpod.info(f"mlp loaded: {fc1.shape[1]} inputs, {fc1.shape[0]} hidden, {fc2.shape[0]} classes")


@wasmpod.handler
def handle(job_input):
    if not weights:
        raise RuntimeError("the model is not loaded")
    rows = job_input.get("inputs") if isinstance(job_input, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError('expected {"inputs": [[...], ...]} with at least one row')
    # A row of the wrong width is left to the host: its matmul reports a
    # shape mismatch, which arrives here as TensorError and fails the job.
    x = Tensor.from_list(rows)
    hidden = (x @ weights["fc1_t"] + weights["fc1_b"]).relu()
    probs = (hidden @ weights["fc2_t"] + weights["fc2_b"]).softmax(-1)
    return {"classes": probs.argmax(-1).to_list(), "probs": probs.to_list()}
