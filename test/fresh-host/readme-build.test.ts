// The README's first command on a fresh Debian 12: a minimal bookworm tree
// with nothing of the host but node and npm, a clone under /root, and
// `npm run build -- --profile test-min` run there as root. The build has to
// install every host package it needs itself (its declared tools), and must
// leave an image and nothing mounted or attached behind.
import { createWriteStream } from 'node:fs';
import { TEST_CACHE } from '../support/test-cache.ts';
import { access, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemState } from '../support/system.ts';
import { repoDir } from '../support/cli.ts';
import { createFreshHost, FRESH_REPO } from '../support/fresh-host.ts';

const IS_ROOT = process.getuid?.() === 0;

const exists = (p: string) => access(p).then(() => true, () => false);

describe.skipIf(!IS_ROOT)('[root] fresh Debian 12 host', () => {
  it('npm run build -- --profile test-min succeeds with no host package preinstalled', { timeout: 15 * 60_000 }, async () => {
    const t0 = Date.now();
    const host = await createFreshHost({
      repoDir,
      // Download caches only (see FreshHostOptions.debCaches): the host's apt downloads, and the
      // package cache the other [root] build tests fill; whatever is not there is downloaded.
      debCaches: { apt: ['/var/cache/apt/archives'], build: [join(TEST_CACHE, 'apt/archives')] },
      log: (l) => process.stderr.write(`fresh-host: ${l}\n`),
    });
    const tail: string[] = [];
    // Everything the command printed, with seconds since the start (kept for a look after a failure).
    const log = createWriteStream(join(tmpdir(), 'hnforge-fresh-host-build.log'));
    let code: number | undefined;
    let image: { size: number; blocks: number } | undefined;
    try {
      const at = (p: string) => join(host.root, p);
      // The fresh machine lacks what the first build failed on (kmod's depmod, cpio) and mmdebstrap.
      for (const tool of ['usr/bin/mmdebstrap', 'usr/bin/cpio', 'usr/sbin/depmod', 'usr/bin/git']) expect(await exists(at(tool)), tool).toBe(false);
      process.stderr.write(`fresh-host: set up in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
      code = await host.run(['npm', 'run', 'build', '--', '--profile', 'test-min'], {
        timeoutMs: 12 * 60_000,
        onLine: (line) => {
          log.write(`${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} ${line}\n`);
          tail.push(line);
          if (tail.length > 40) tail.shift();
        },
      });
      image = await stat(at(join(FRESH_REPO, 'out/test-min/hn-root.img'))).catch(() => undefined);
      // What the build installed for itself.
      for (const tool of ['usr/bin/mmdebstrap', 'usr/bin/cpio', 'usr/sbin/depmod']) expect(await exists(at(tool)), `${tool} installed by the build`).toBe(true);
    } finally {
      log.end();
      const { unmounted } = await host.dispose();
      process.stderr.write(`fresh-host: ${unmounted.length} mounts released; total ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    expect(code, tail.join('\n')).toBe(0);
    expect(image?.size).toBe(2 * 1024 ** 3);
    expect(await exists(host.root)).toBe(false);
    // Only what lies in the tree: other builds may run on this machine meanwhile.
    const after = await systemState();
    expect([...after.mounts, ...after.loops].filter((l) => l.includes(host.root))).toEqual([]);
  });
});
