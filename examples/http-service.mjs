// A small HTTP service: loads a checkpoint of 2-D data once, and answers GET /samples.png?n=&seed=
// with a PNG of fresh samples. A client that goes away stops its sampling at once (AbortSignal).
//   node examples/http-service.mjs runs/…/checkpoint.safetensors [port]
import http from 'node:http';
import { NcsnModel, renderScatter } from 'ncsn-cuda';

const checkpoint = process.argv[2];
const port = Number(process.argv[3] ?? 8080);
const model = NcsnModel.load(checkpoint);
if (model.config.dataDim !== 2) throw new Error(`${checkpoint}: this service draws 2-D samples; the model's data have ${model.config.dataDim} dimensions`);

// One sampling at a time: a model runs one call at once, and the cores are shared anyway.
let queue = Promise.resolve();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method !== 'GET' || url.pathname !== '/samples.png') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /samples.png?n=&seed=&stepsPerLevel=\n');
    return;
  }
  const n = Number(url.searchParams.get('n') ?? 2000);
  const seed = Number(url.searchParams.get('seed') ?? Math.floor(Math.random() * 2 ** 31));
  const stepsPerLevel = Number(url.searchParams.get('stepsPerLevel') ?? model.config.sampling.stepsPerLevel);
  if (![n, seed, stepsPerLevel].every(Number.isSafeInteger) || n < 1 || n > 100_000 || seed < 0 || stepsPerLevel < 1 || stepsPerLevel > 10_000) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('n in 1..100000, seed ≥ 0, stepsPerLevel in 1..10000\n');
    return;
  }
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const started = Date.now();
  queue = queue.then(async () => {
    try {
      const samples = await model.sample({ n, seed, stepsPerLevel, signal: controller.signal });
      const png = renderScatter({ samples, title: `${n} samples`, subtitle: `seed ${seed}` });
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
      console.log(`${req.url}: ${n} samples in ${Date.now() - started} ms`);
    } catch (e) {
      if (e.name !== 'AbortError') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
        throw e;
      }
      console.log(`${req.url}: the client went away; sampling stopped after ${Date.now() - started} ms`);
    }
  });
});

server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}/samples.png`));
process.on('SIGTERM', () => server.close(() => model.dispose()));
