// gentoo-stage3: resolve, fetch and verify the stage3 tarball (compute: it
// touches no image and always runs, so the stages after it are keyed by the
// tarball's SHA512). A cached tarball is verified again each time. In a dry
// run only the small signed index is fetched, to name the exact URL.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HnError } from '../pipeline/errors.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { formatBytes, gentooOf, gentooTmp, keyringFile, type GentooStage3Info } from '../pipeline/gentoo/context.ts';
import { indexUrl, stage3Urls } from '../pipeline/gentoo/index.ts';
import { gentooCmd } from '../pipeline/gentoo/commands.ts';
import { makeKeyring } from '../pipeline/gentoo/openpgp.ts';
import { fetchVerifiedStage3, pruneStage3Cache, resolveEntry } from '../pipeline/gentoo/stage3.ts';

export const gentooStage3: StageDef = {
  name: 'gentoo-stage3',
  provides: ['gentooStage3'],
  title: 'Fetch and verify the Gentoo stage3',
  kind: 'compute',
  bases: ['gentoo'],
  needsRoot: false,
  version: 1,
  commands: [gentooCmd.gpgDearmor, gentooCmd.gpgvClearsigned, gentooCmd.gpgvDetached],
  plan(ctx) {
    const g = gentooOf(ctx);
    const s = ctx.gentooStage3;
    return [
      s?.unresolved
        ? `stage3: ${g.stage3} from ${indexUrl(g.mirrors[0]!, g.variant)} (not resolved: ${s.unresolved})`
        : `stage3: ${s?.url ?? `${g.stage3} (resolved from ${indexUrl(g.mirrors[0]!, g.variant)})`}`,
      `signature: ${s?.url ?? 'stage3'}.asc must verify with key ${g.releaseKeyFingerprint}`,
      'digests: SHA512 and BLAKE2B must match .DIGESTS',
    ];
  },
  async run(ctx, io) {
    const g = gentooOf(ctx);
    const runner = io.run;
    if (ctx.dryRun) {
      // Only the index: enough to print the exact URL the build would use.
      const scratch = await mkdtemp(join(tmpdir(), 'hnforge-dry-'));
      try {
        const keyring = await makeKeyring(keyringFile(ctx), scratch, runner);
        try {
          const { entry, mirror } = await resolveEntry(
            { mirrors: g.mirrors, variant: g.variant, stage3: g.stage3, fingerprint: g.releaseKeyFingerprint, keyringFile: keyringFile(ctx), cacheDir: ctx.cacheDir, tmpDir: scratch, runner, log: io.log, signal: io.signal },
            keyring,
          );
          const info: GentooStage3Info = { url: stage3Urls(mirror ?? g.mirrors[0]!, entry).tarball, fingerprint: g.releaseKeyFingerprint, timestamp: entry.timestamp };
          return { gentooStage3: info };
        } finally {
          await keyring.dispose();
        }
      } catch (e) {
        if (e instanceof HnError && ['EGENTOO_DOWNLOAD', 'EGENTOO_MISSING_FILE', 'EGENTOO_KEYRING'].includes(e.code)) {
          return { gentooStage3: { url: '', fingerprint: g.releaseKeyFingerprint, unresolved: e.message } };
        }
        throw e;
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    }
    let lastShown = 0;
    const v = await fetchVerifiedStage3({
      mirrors: g.mirrors,
      variant: g.variant,
      stage3: g.stage3,
      fingerprint: g.releaseKeyFingerprint,
      keyringFile: keyringFile(ctx),
      cacheDir: ctx.cacheDir,
      tmpDir: gentooTmp(ctx),
      runner,
      log: io.log,
      signal: io.signal,
      onProgress: (p) => {
        const pct = p.total ? Math.floor((p.received / p.total) * 100) : undefined;
        if (Date.now() - lastShown < 1000) return;
        lastShown = Date.now();
        io.progress(`stage3 ${formatBytes(p.received)}${p.total ? ` of ${formatBytes(p.total)} (${pct}%)` : ''}`);
      },
    });
    io.log(`verified ${v.fileName}: signature by ${v.fingerprint}, sha512 ${v.sha512}${v.fromCache ? ' (cached)' : ''}`);
    for (const old of await pruneStage3Cache(ctx.cacheDir, 2, [v.sha512])) io.log(`cache: removed the stage3 of an older release (${old})`);
    io.progress(`stage3 ${v.timestamp} verified${v.fromCache ? ' (cached)' : ''}`);
    const info: GentooStage3Info = {
      url: v.url, fingerprint: v.fingerprint, timestamp: v.timestamp, fileName: v.fileName,
      path: v.path, sha512: v.sha512, blake2b: v.blake2b, bytes: v.bytes, fromCache: v.fromCache,
    };
    return { gentooStage3: info };
  },
};
