// A run you can stop and resume: exact resume, kept checkpoints, Ctrl-C, divergence.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';

import { readCheckpoint } from '../src/checkpoint.js';

const bin = path.resolve(__dirname, '..', 'bin', 'ncsn-cuda.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-resume-'));
const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8' });
const tensors = (file: string) => readCheckpoint(path.join(dir, file));

describe('train --resume', () => {
  it('gives bit-identical weights, EMA and Adam state for 200 steps and 100 + 100', () => {
    expect(cli('train', '--steps', '200', '--out', 'whole').status).toBe(0);
    expect(cli('train', '--steps', '100', '--out', 'split').status).toBe(0);
    const r = cli('train', '--resume', 'split', '--steps', '200');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/from step 100 to step 200/);
    const a = tensors('whole/checkpoint.safetensors');
    const b = tensors('split/checkpoint.safetensors');
    expect(b.metadata.step).toBe('200');
    expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
    for (let i = 0; i < a.tensors.length; i++) expect(Buffer.from(b.tensors[i].data.buffer)).toEqual(Buffer.from(a.tensors[i].data.buffer));
  });

  it('keeps the last --keep checkpoints by step', () => {
    expect(cli('train', '--steps', '250', '--checkpoint-every', '50', '--keep', '2', '--out', 'kept').status).toBe(0);
    const files = fs.readdirSync(path.join(dir, 'kept')).filter((f) => f.startsWith('checkpoint')).sort();
    expect(files).toEqual(['checkpoint-150.safetensors', 'checkpoint-200.safetensors', 'checkpoint.safetensors']);
    expect(tensors('kept/checkpoint-150.safetensors').metadata.step).toBe('150');
  });

  it('refuses settings that would change the run, and a total it has passed', () => {
    cli('train', '--steps', '20', '--out', 'short');
    const r = cli('train', '--resume', 'short', '--lr', '0.01', '--seed', '3');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--lr, --seed cannot change when resuming/);
    expect(cli('train', '--resume', 'short', '--steps', '10').stderr).toMatch(/--steps 10 is the run's total and it has already done 20/);
    expect(cli('train', '--resume', 'nowhere').stderr).toMatch(/cannot read checkpoint nowhere.checkpoint\.safetensors: no such file/);
  });
});

describe('a run that goes wrong', () => {
  it('stops a diverging run naming the step and level, and keeps the last good checkpoint', () => {
    const r = cli('train', '--lr', '1e30', '--steps', '400', '--checkpoint-every', '1', '--out', 'diverged');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/training diverged: non-finite loss at step \d+, noise level \d+ \(sigma [\d.]+\)/);
    expect(r.stderr).toMatch(/The last good checkpoint is .*diverged.checkpoint\.safetensors/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const kept = tensors('diverged/checkpoint.safetensors');
    expect(kept.tensors.every((t) => t.data.every((v) => Number.isFinite(v)))).toBe(true);
  });

  it('on Ctrl-C finishes the step, saves, says how to resume and exits non-zero', async () => {
    const child = spawn(process.execPath, [bin, 'train', '--steps', '10000000', '--out', 'stopped'], { cwd: dir });
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000); // never outlive the test
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /training: to step/.test(stderr)) {
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 500); // one Ctrl-C, half a second into training
      }
    });
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    clearTimeout(guard);
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted at step \d+: wrote .*stopped.checkpoint\.safetensors/);
    expect(stderr).toMatch(/resume with: npx ncsn-cuda train --resume stopped --steps 10000000/);
    const step = Number(tensors('stopped/checkpoint.safetensors').metadata.step);
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(10_000_000);
  });
});
