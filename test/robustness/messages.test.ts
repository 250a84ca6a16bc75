// Messages that name the real problem: data files, degenerate data, devices, noise levels counted
// from 1, a run resumed from another directory, and a log that cannot be written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { NcsnModel, loadDataset, DataError } from '../../src/index.js';
import { readCheckpoint, writeCheckpoint } from '../../src/checkpoint.js';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'ncsn-cuda.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-messages-'));

function cli(cwd: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NCSN_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, last: r.stderr.trim().split('\n').pop() ?? '' };
}

function csv(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('a CSV file', () => {
  it('with a non-number in its first row is refused at that line and column, not taken for a header', () => {
    const file = csv('first-row.csv', '1,oops\n2,3\n4,5\n');
    expect(() => loadDataset(file, { seed: 0 })).toThrow(new DataError(`${file}:1: column 2 ('oops') is not a finite number`));
  });

  it('still has a header when its first line has no numbers', () => {
    const ds = loadDataset(csv('header.csv', 'x,y\n1,2\n3,4\n'), { seed: 0 });
    expect(ds.rows).toBe(2);
    expect(Array.from(ds.data)).toEqual([1, 2, 3, 4]);
  });

  it('with a value beyond float32 is refused with its place', () => {
    const file = csv('huge.csv', 'x,y\n1,2\n3,1e39\n');
    expect(() => loadDataset(file, { seed: 0 })).toThrow(new DataError(`${file}:3: column 2 ('1e39') is beyond float32's range (±3.4e38)`));
  });
});

describe('train on data with no spread', () => {
  it('says so for one point and for constant points, not that unset flags disagree', () => {
    const one = csv('one.csv', '1,2\n');
    const constant = csv('constant.csv', '1,2\n1,2\n1,2\n');
    for (const [file, what] of [
      [one, 'has a single point'],
      [constant, 'has no spread \\(its points are all the same\\)'],
    ]) {
      const r = cli(dir, 'train', '--data', file, '--device', 'cpu', '--steps', '1');
      expect(r.code).toBe(1);
      expect(r.last).toMatch(new RegExp(`${what}, so σ_1 cannot be the largest distance between training points; give --sigma-begin and --sigma-end`));
      expect(r.last).not.toMatch(/--sigma-end \(/);
    }
  });

  it('names a dataset default that conflicts with a flag as the default', () => {
    const r = cli(dir, 'train', '--data', 'toy:moons', '--sigma-begin', '0.01', '--device', 'cpu');
    expect(r.code).toBe(1);
    expect(r.last).toMatch(/σ_L \(0\.1, toy:moons's default; set it with --sigma-end\) must be smaller than --sigma-begin \(0\.01\)/);
  });
});

describe('--device cuda:N', () => {
  it('is reported with its number', () => {
    const r = cli(dir, 'train', '--device', 'cuda:9999', '--steps', '1');
    expect(r.code).toBe(1);
    expect(r.last).toMatch(/--device cuda:9999[: ]/);
  });
});

describe('noise levels in messages', () => {
  it('count from 1, as --level does', async () => {
    // one level: its number is 1, where counting from 0 would say 0
    const model = NcsnModel.create({ sigmas: [1], width: 8, depth: 1, device: 'cpu', threads: 1 });
    const file = path.join(dir, 'diverging.safetensors');
    model.save(file);
    const { tensors, metadata } = readCheckpoint(file);
    for (const t of tensors) if (t.name === 'out.bias') t.data.fill(1e30);
    writeCheckpoint(file, tensors, metadata);
    const diverging = NcsnModel.load(file, { device: 'cpu', threads: 1 });
    const data = { data: new Float32Array([0, 0, 1, 1]), rows: 2, dim: 2 };
    await expect(diverging.train(data, { steps: 1 })).rejects.toThrow('training diverged: non-finite loss at step 1, noise level 1 (sigma 1)');
  });
});

describe('a resumed run', () => {
  it('finds its data file from any directory, since the checkpoint names it whole', () => {
    const project = path.join(dir, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'points.csv'), 'x,y\n0,0\n1,1\n2,0\n0,2\n');
    const first = cli(project, 'train', '--data', 'points.csv', '--steps', '2', '--device', 'cpu', '--out', 'run');
    expect(first.code, first.stderr).toBe(0);
    const checkpoint = path.join(project, 'run', 'checkpoint.safetensors');
    expect(JSON.parse(readCheckpoint(checkpoint).metadata.config).data).toBe(path.join(project, 'points.csv'));
    const elsewhere = cli(dir, 'train', '--resume', path.join(project, 'run'), '--steps', '4', '--device', 'cpu');
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
  });

  it('of an older checkpoint with a relative path looks beside the run, or says where it looked', () => {
    const project = path.join(dir, 'older');
    const run = path.join(project, 'run');
    fs.mkdirSync(run, { recursive: true });
    const model = NcsnModel.create({ sigmas: [2, 1], width: 8, depth: 1, device: 'cpu', threads: 1, data: 'points.csv' });
    model.save(path.join(run, 'checkpoint.safetensors'));
    const missing = cli(dir, 'train', '--resume', run, '--steps', '2', '--device', 'cpu');
    expect(missing.code).toBe(1);
    expect(missing.last).toContain(
      `the checkpoint names its training data by the relative path points.csv, which is neither at ${path.join(dir, 'points.csv')} nor at ${path.join(run, 'points.csv')}`,
    );
    fs.writeFileSync(path.join(run, 'points.csv'), '0,0\n1,1\n2,0\n');
    const found = cli(dir, 'train', '--resume', run, '--steps', '2', '--device', 'cpu');
    expect(found.code, found.stderr).toBe(0);
  });
});

describe('a training log that cannot be written', () => {
  it('stops the run with the reason and a non-zero exit', () => {
    const run = path.join(dir, 'log-run');
    expect(cli(dir, 'train', '--steps', '2', '--device', 'cpu', '--out', run).code).toBe(0);
    fs.rmSync(path.join(run, 'log.jsonl'));
    fs.mkdirSync(path.join(run, 'log.jsonl')); // appending to a directory fails, even as root
    const r = cli(dir, 'train', '--resume', run, '--steps', '400', '--device', 'cpu');
    expect(r.code).toBe(1);
    expect(r.last).toMatch(/EISDIR|is a directory/i);
  });
});
