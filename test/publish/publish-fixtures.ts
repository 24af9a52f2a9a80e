// Small built images for the publishing tests: a sparse file with data in a
// few places (so the extent map, zero frames and data frames are all used)
// and the build report `hnforge build` leaves beside it.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_FILES, keygen } from '../../pipeline/publish/keygen.ts';
import type { BuildReport } from '../../pipeline/report.ts';
import { outputFiles } from '../../pipeline/publish/output.ts';
import { loadSigningKey, type SigningKey } from '../../pipeline/publish/signing-key.ts';

const MiB = 1 << 20;

export interface FixtureImage {
  image: string;
  report: BuildReport;
}

/** A 96 MiB sparse image with random data at 0, 5 MiB and 80 MiB, and its report. */
export async function makeImage(dir: string, opts: { version: string; profile?: string; packages?: Record<string, string>; extraFile?: string }): Promise<FixtureImage> {
  await mkdir(dir, { recursive: true });
  const image = join(dir, 'hn-root.img');
  const fh = await open(image, 'w');
  try {
    await fh.truncate(96 * MiB);
    for (const [at, len] of [[0, MiB], [5 * MiB + 123, 3 * MiB], [80 * MiB, 64 * 1024]] as const) await fh.write(randomBytes(len), 0, len, at);
  } finally {
    await fh.close();
  }
  const packages = Object.entries(opts.packages ?? { busybox: '1:1.35.0-4', zstd: '1.5.4+dfsg2-5' }).map(([name, version]) => ({ name, version }));
  const report: FixtureImage['report'] = {
    profile: opts.profile ?? 'hn-test', base: 'debian', image, inputsDigest: 'f'.repeat(64), builtAt: new Date().toISOString(), wallSeconds: 1,
    apparentBytes: 96 * MiB, usedBytes: 4 * MiB, packages, stages: [], version: opts.version, gitRevision: 'abc123',
    sources: { mirror: 'http://deb.example/debian', date: '2026-12-01' },
    files: [
      { path: '/etc/hostname', type: 'f', mode: '0644', uid: 0, gid: 0, size: 0, sha256: 'e'.repeat(64) },
      ...(opts.extraFile ? [{ path: opts.extraFile, type: 'f' as const, mode: '0755', uid: 0, gid: 0, size: 9, sha256: 'a'.repeat(64) }] : []),
    ],
  };
  await writeFile(outputFiles(image).json, JSON.stringify(report));
  return { image, report };
}

export interface Keys {
  dir: string;
  key: SigningKey;
  keyring: string;
}

export async function makeKeys(dir: string, name = 'test signing key'): Promise<Keys> {
  await keygen({ out: dir, name });
  return { dir, key: (await loadSigningKey(join(dir, KEY_FILES.privateKey), {}))!, keyring: join(dir, KEY_FILES.keyring) };
}

/** A temporary directory removed by the returned cleanup. */
export async function scratchDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
