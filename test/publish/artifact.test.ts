// The publish pass (pipeline/publish/artifact.ts) on real sparse files and real
// zstd: the artifact decompresses with a plain `zstd -d` to the very image, the
// raw and artifact sha256 are those coreutils computes, the holes cost no zstd
// work (several frames, zero frames between them), and an interrupted pass
// leaves no zstd running. Both ways of finding the data are exercised: the
// extent map on a disk filesystem, and reading every byte on tmpfs (no FIEMAP).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { compressImage } from '../../pipeline/publish/artifact.ts';
import { runningCommandCount } from '../../pipeline/seam/run.ts';

const sh = promisify(execFile);
const MiB = 1 << 20;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** 300 MiB apparent: data at odd offsets, a zero run inside data, and holes longer than a frame split. */
async function sparseImage(parent: string): Promise<string> {
  const dir = await mkdtemp(join(parent, 'hnforge-artifact-'));
  dirs.push(dir);
  const image = join(dir, 'hn-root.img');
  const fh = await open(image, 'w');
  try {
    await fh.truncate(300 * MiB + 4097); // not a whole number of chunks
    const pieces: [number, Buffer][] = [
      [0, randomBytes(2 * MiB)],
      [2 * MiB + 4096, Buffer.alloc(6 * MiB)], // written zeros: data to the filesystem, zeros to the pass
      [9 * MiB + 17, randomBytes(MiB + 3)],
      [150 * MiB, Buffer.alloc(MiB, 'hn')], // after a hole far longer than a split
      [300 * MiB, randomBytes(4097)], // the last, partial chunk
    ];
    for (const [at, bytes] of pieces) await fh.write(bytes, 0, bytes.length, at);
  } finally {
    await fh.close();
  }
  return image;
}

async function sha256sum(path: string): Promise<string> {
  return (await sh('sha256sum', [path])).stdout.split(' ')[0]!;
}

for (const [layout, parent] of [['a disk filesystem (extent map)', '/var/tmp'], ['tmpfs (every byte read)', '/dev/shm']] as const) {
  describe(`the publish pass on ${layout}`, () => {
    it('makes an artifact that zstd -d restores to the image, with the sha256 coreutils computes', async () => {
      const image = await sparseImage(parent);
      const artifact = `${image}.zst`;
      const r = await compressImage(image, artifact);
      expect(r.image).toEqual({ bytes: (await stat(image)).size, sha256: await sha256sum(image) });
      expect(r.artifact).toEqual({ bytes: (await stat(artifact)).size, sha256: await sha256sum(artifact) });
      const restored = `${image}.restored`;
      await sh('zstd', ['-q', '-d', '-f', '-o', restored, artifact]);
      expect(await sha256sum(restored)).toBe(r.image.sha256);
      // Data, a zero frame run and data again: more than one frame, and far smaller than the image.
      const listing = (await sh('zstd', ['-l', artifact])).stdout.split('\n'); // header, then "Frames Skips ..."
      const frames = Number(/^\s*(\d+)\s/.exec(listing[1] ?? '')?.[1]);
      expect(frames).toBeGreaterThan(2);
      expect(r.artifact.bytes).toBeLessThan(5 * MiB);
    });
  });
}

describe('the publish pass, given the sha256', () => {
  it('returns the sha256 it was given and still compresses the whole image', async () => {
    const image = await sparseImage('/var/tmp');
    const known = 'c'.repeat(64);
    const r = await compressImage(image, `${image}.zst`, { knownSha256: known });
    expect(r.image.sha256).toBe(known);
    const { stdout } = await sh('sh', ['-c', 'zstd -q -d -c "$1" | sha256sum', 'sh', `${image}.zst`]);
    expect(stdout.split(' ')[0]).toBe(await sha256sum(image));
  });

  it('a zstd killed mid-frame fails the pass with one error, not an unhandled rejection', async () => {
    const image = await sparseImage('/var/tmp');
    let killed = false;
    const pass = compressImage(image, `${image}.zst`, {
      knownSha256: 'c'.repeat(64),
      progress: (done) => {
        if (killed || done < 12 * MiB) return;
        killed = true;
        // Only the zstd this test's process started (a frame is open: data at 0 and at 9 MiB).
        execFile('pkill', ['-KILL', '-P', String(process.pid), '-x', 'zstd']);
      },
    });
    await expect(pass).rejects.toMatchObject({ code: 'ESIGNAL' });
    expect(killed).toBe(true);
    expect(runningCommandCount()).toBe(0);
  });

  it('stops when aborted and leaves no zstd running', async () => {
    const image = await sparseImage('/var/tmp');
    const abort = new AbortController();
    const pass = compressImage(image, `${image}.zst`, {
      signal: abort.signal,
      progress: (done) => done > 100 * MiB && abort.abort(),
    });
    await expect(pass).rejects.toMatchObject({ code: 'EABORTED' });
    expect(runningCommandCount()).toBe(0);
  });
});
