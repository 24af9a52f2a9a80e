// gentoo-keys: the OpenPGP keys the profile pins by fingerprint (stage3
// release key, repository snapshot key), fetched at build time from Gentoo's
// key server and WKD (compute: it touches no image and always runs, also in a
// dry run), or read from --keyring / gentoo.keyring on an air-gapped builder.
// The stages after it verify with exactly these keys.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HnError } from '../pipeline/errors.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { gentooOf, pinnedKeys, profileKeyringFile } from '../pipeline/gentoo/context.ts';
import { keyCacheFile, keyUrls, resolveKeys } from '../pipeline/gentoo/keys.ts';

export const gentooKeys: StageDef = {
  name: 'gentoo-keys',
  provides: ['gentooKeys'],
  title: 'Fetch the pinned Gentoo signing keys by fingerprint',
  kind: 'compute',
  bases: ['gentoo'],
  needsRoot: false,
  version: 1,
  plan(ctx) {
    const g = gentooOf(ctx);
    const file = profileKeyringFile(ctx);
    const got = ctx.gentooKeys;
    return pinnedKeys(g).flatMap((pin) => {
      const done = got?.keys.find((k) => k.fingerprint === pin.fingerprint);
      const head = `key ${pin.fingerprint} (${pin.role})`;
      if (file) return [`${head}: from ${file} (air-gapped; nothing fetched); primary fingerprint and expiry checked`];
      return [
        `${head}: ${keyCacheFile(ctx.cacheDir, pin.fingerprint)} if current, else (expired or absent) the first source serving it unexpired with that primary fingerprint:`,
        ...keyUrls(pin, g.keys).map((u) => `    GET ${u.url}`),
        ...(done ? [`    -> ${done.source === 'cache' ? 'cached copy' : done.source}, expires ${done.expires}`] : []),
      ];
    }).concat(got?.unresolved ? [`not resolved: ${got.unresolved}`] : []);
  },
  async run(ctx, io) {
    const g = gentooOf(ctx);
    try {
      const r = await resolveKeys({
        pinned: pinnedKeys(g),
        sources: g.keys.sources,
        keyserver: g.keys.keyserver,
        wkdBase: g.keys.wkdBase,
        cacheDir: ctx.cacheDir,
        keyringFile: profileKeyringFile(ctx),
        // A dry run changes nothing: the cache is read, not written.
        readOnly: ctx.dryRun,
        outDir: ctx.dryRun ? join(tmpdir(), `hnforge-dry-keys-${process.getuid?.() ?? 'u'}`) : undefined,
        log: io.log,
        signal: io.signal,
      });
      for (const k of r.keys) io.log(`key ${k.fingerprint} (${k.role}): ${k.source}, expires ${k.expires}`);
      io.progress(`${r.keys.length} pinned key(s) current`);
      return { gentooKeys: r };
    } catch (e) {
      // A dry run shows what could not be resolved instead of stopping.
      if (ctx.dryRun && e instanceof HnError) return { gentooKeys: { keys: [], unresolved: `${e.code}: ${e.message}` } };
      throw e;
    }
  },
};
