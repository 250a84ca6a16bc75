#!/usr/bin/env node
// Writes prebuilds/linux-<arch>/ncsn-cuda.glibc.node with prebuildify, stripped, for each
// architecture named (default: this machine's, and every one whose cross compiler is installed).
// prebuildify has no cmake-js backend: scripts/prebuild-cmake-js.js stands in for node-gyp.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuildify = createRequire(import.meta.url)('prebuildify');
const crossPrefix = { arm64: 'aarch64-linux-gnu-' };

function installed(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

let arches = process.argv.slice(2);
if (arches.length === 0) {
  arches = [process.arch];
  for (const [arch, prefix] of Object.entries(crossPrefix)) {
    if (arch === process.arch) continue;
    if (installed(`${prefix}g++`)) arches.push(arch);
    else console.error(`prebuilds: no ${prefix}g++, so no linux-${arch} prebuild`);
  }
}

for (const arch of arches) {
  const stage = path.join(root, 'build', `prebuildify-${arch}`);
  mkdirSync(stage, { recursive: true });
  const prefix = arch === process.arch ? '' : crossPrefix[arch] ?? '';
  await new Promise((resolve, reject) => {
    prebuildify({
      napi: true,
      strip: true,
      stripBin: `${prefix}strip`,
      tagLibc: true,
      name: 'ncsn-cuda',
      arch,
      cwd: stage,
      out: root,
      nodeGyp: path.join(root, 'scripts', 'prebuild-cmake-js.js'),
    }, (err) => (err ? reject(err) : resolve()));
  });
  console.error(`prebuilds: prebuilds/linux-${arch}/ncsn-cuda.glibc.node`);
}
