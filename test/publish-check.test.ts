// The publish guard (scripts/publish-check.js) on made-up package folders: it passes complete
// prebuilds and names each thing missing from incomplete ones. Publishing itself is not run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// @ts-expect-error: a plain JavaScript script without declarations
import { publishProblems, publishing, requiredArchitectures } from '../scripts/publish-check.js';

const root = path.resolve(__dirname, '..');
const cmakeLists = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
const archs: string = requiredArchitectures(cmakeLists);

// A package folder with CMakeLists.txt and the given binaries (name → content).
function packageWith(binaries: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-publish-'));
  fs.writeFileSync(path.join(dir, 'CMakeLists.txt'), cmakeLists);
  for (const [name, content] of Object.entries(binaries)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const x64 = 'prebuilds/linux-x64/ncsn-cuda.glibc.node';
const arm64 = 'prebuilds/linux-arm64/ncsn-cuda.glibc.node';

describe('the publish guard', () => {
  it("takes the architectures from CMakeLists.txt's default list, sm_75 to sm_120 and PTX", () => {
    expect(archs.split(' ')[0]).toBe('75-real');
    expect(archs.split(' ')).toContain('120-real');
    expect(archs.split(' ').at(-1)).toBe('120-virtual');
  });

  it('passes prebuilds for both platforms with every architecture in the x64 binary', () => {
    expect(publishProblems(packageWith({ [x64]: `\0ELF…\0${archs}\0…`, [arm64]: '\0ELF…' }))).toEqual([]);
  });

  it('refuses a missing arm64 binary', () => {
    expect(publishProblems(packageWith({ [x64]: `\0${archs}\0` }))).toEqual([expect.stringMatching(/^prebuilds\/linux-arm64\/ holds no binary/)]);
  });

  it('refuses a missing x64 binary, and an empty prebuilds/ twice', () => {
    expect(publishProblems(packageWith({ [arm64]: '\0' }))).toEqual([expect.stringMatching(/^prebuilds\/linux-x64\/ holds no binary/)]);
    expect(publishProblems(packageWith({}))).toHaveLength(2);
  });

  it('refuses an x64 binary built for one architecture, or for none (CPU only)', () => {
    for (const content of ['\0 90-real \0', '\0this build has no CUDA backend (nvcc not found)\0']) {
      expect(publishProblems(packageWith({ [x64]: content, [arm64]: '\0' }))).toEqual([
        expect.stringContaining(`${x64} was not built for every CUDA architecture (${archs})`),
      ]);
    }
  });

  it('runs for npm publish only, so that npm pack packs a development build', () => {
    expect(publishing({ npm_command: 'publish' })).toBe(true);
    expect(publishing({ npm_command: 'pack' })).toBe(false);
    expect(publishing({})).toBe(false);
  });
});
