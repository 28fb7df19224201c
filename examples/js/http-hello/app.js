// `http-hello`: an HTTP handler (load-balancing endpoint) in JavaScript, the
// same routes as the Rust and Python ones: a health check, a greeting, the
// request body streamed back, a streamed answer, and a host tensor op.
// Build: guest-sdk/js/build.sh examples/js/http-hello out.wasm --world http-handler
import * as wasmpod from 'wasmpod-sdk';

const app = new wasmpod.Router();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function count(req, name, fallback) {
  const value = Number(req.queryParam(name, String(fallback)));
  if (!Number.isSafeInteger(value) || value < 0) throw new wasmpod.HTTPError(400, `${name} must be a whole number`);
  return value;
}

app.get('/ping', () => 'ok');

app.get('/hello/:name', (req) => `hello, ${req.params.name} from javascript`);

// The pieces go back as they arrive: the body is never held in full.
app.post('/echo', (req) => new wasmpod.Response(req.chunks(), { headers: { 'content-type': req.headers.get('content-type') ?? 'application/octet-stream' } }));

app.get('/stream', (req) => {
  const n = count(req, 'n', 5);
  const ms = count(req, 'ms', 100);
  async function* lines() {
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(ms);
      yield `chunk ${i}\n`;
    }
  }
  return new wasmpod.Response(lines(), { headers: { 'content-type': 'text/plain' } });
});

app.post('/matmul', (req) => {
  const { a, b } = req.json();
  const ta = wasmpod.Tensor.fromF32([a.length, a[0].length], a.flat());
  const tb = wasmpod.Tensor.fromF32([b.length, b[0].length], b.flat());
  const product = ta.matmul(tb);
  const [rows, cols] = product.shape;
  const values = product.toF32();
  return { product: Array.from({ length: rows }, (_, i) => Array.from(values.slice(i * cols, (i + 1) * cols))), shape: [rows, cols] };
});

app.get('/sleep/:ms', async (req) => {
  const ms = Number(req.params.ms);
  await sleep(ms);
  return `slept ${ms} ms`;
});

app.get('/crash', () => {
  throw new Error('crash requested');
});

wasmpod.serveHttp(app);
