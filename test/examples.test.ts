// The programs in examples/ run as a user would run them, importing the package by its name.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';

import { NcsnModel, geometricSigmas, loadDataset } from '../src/index.js';

const root = path.resolve(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-examples-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function get(port: number, query: string, onResponse?: (req: http.ClientRequest) => void) {
  return new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/samples.png?${query}` }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    onResponse?.(req);
  });
}

describe('examples', () => {
  it('custom-2d.mjs trains on a Float32Array and plots the samples', () => {
    const out = path.join(dir, 'spiral.png');
    const r = spawnSync(process.execPath, [path.join(root, 'examples', 'custom-2d.mjs'), out, '300'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/step 300: loss \d/);
    expect(r.stdout).toContain(`${out}: 5000 samples`);
    const png = PNG.sync.read(fs.readFileSync(out));
    expect([png.width, png.height]).toEqual([800, 800]);
  }, 120_000);

  describe('http-service.mjs', () => {
    let server: ChildProcessWithoutNullStreams;
    let port = 0;
    let log = '';
    const waitFor = (pattern: RegExp, ms: number) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${ms} ms; the log:\n${log}`)), ms);
        const check = () => {
          const m = log.match(pattern);
          if (!m) return;
          clearTimeout(timer);
          server.stdout.off('data', check);
          resolve(m);
        };
        server.stdout.on('data', check);
        check();
      });

    beforeAll(async () => {
      const checkpoint = path.join(dir, 'checkpoint.safetensors');
      const model = NcsnModel.create({ sigmas: geometricSigmas(20, 1, 10), seed: 0, threads: 1 });
      await model.train(loadDataset('toy:mixture', { seed: 0, toySize: 2000 }), { steps: 200, batchSize: 64 });
      model.save(checkpoint);
      model.dispose();
      server = spawn(process.execPath, [path.join(root, 'examples', 'http-service.mjs'), checkpoint, '0']);
      server.stdout.on('data', (c: Buffer) => (log += c.toString()));
      server.stderr.on('data', (c: Buffer) => (log += c.toString()));
      port = Number((await waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)\//, 30_000))[1]);
    }, 60_000);

    afterAll(async () => {
      const exited = new Promise((resolve) => server.on('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    });

    it('answers with a PNG of fresh samples', async () => {
      const r = await get(port, 'n=500&seed=1&stepsPerLevel=5');
      expect(r.status).toBe(200);
      expect(r.type).toBe('image/png');
      expect(PNG.sync.read(r.body).width).toBe(800);
      const bad = await get(port, 'n=0');
      expect(bad.status).toBe(400);
    }, 60_000);

    it('stops sampling when the client goes away, and serves the next one', async () => {
      // 10^5 particles × 10 levels × 10^4 steps: hours, unless the disconnect stops it
      const gone = get(port, 'n=100000&seed=2&stepsPerLevel=10000', (req) => setTimeout(() => req.destroy(), 500)).catch((e: Error) => e);
      expect(await gone).toBeInstanceOf(Error);
      const [, ms] = await waitFor(/the client went away; sampling stopped after (\d+) ms/, 30_000);
      expect(Number(ms)).toBeLessThan(30_000);
      const next = await get(port, 'n=200&seed=3&stepsPerLevel=2');
      expect(next.status).toBe(200);
    }, 60_000);
  });
});
