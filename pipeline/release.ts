// What a build knows about the release it makes, beside the image itself:
// its version (decided once, before the keys), the signing key whose public
// half goes into the image, the commit of hnforge that built it, and the
// pinned inputs (mirror and date, stage3 digest, repository snapshot).

import { readFile } from 'node:fs/promises';
import type { BuildContext, PublishingKey } from './context.ts';
import { HnError } from './errors.ts';
import { readChannel } from './publish/channel.ts';
import { publicKeyringOf, type SigningKey } from './publish/signing-key.ts';
import { versionOfFile } from './publish/store.ts';
import { openStore } from './publish/stores.ts';
import { checkVersion, dayOf, nextVersion } from './publish/version.ts';
import { cmd } from './seam/command.ts';
import { run } from './seam/run.ts';

/** `git rev-parse HEAD` of the checkout, with "-dirty" when tracked files changed; undefined outside git (or without git). */
export async function gitRevision(repoDir: string): Promise<string | undefined> {
  try {
    const head = (await run(cmd.gitHead(repoDir), { capture: true })).stdout.trim();
    if (!/^[0-9a-f]{40,64}$/.test(head)) return undefined;
    const changes = (await run(cmd.gitChanges(repoDir), { capture: true })).stdout.trim();
    return changes ? `${head}-dirty` : head;
  } catch (e) {
    // Not a repository (a tarball, a test's copy), git missing, or a checkout git refuses to read.
    if (e instanceof HnError) return undefined;
    throw e;
  }
}

/** The version in a published report (out/<profile>/hn-root.report.json), if there is a readable one. */
export async function reportVersion(reportFile: string): Promise<string | undefined> {
  try {
    const v = (JSON.parse(await readFile(reportFile, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined; // none yet, or an older report without a version: it knows no version
  }
}

/** Every version any channel of `profile` in the store lists in its SHA256SUMS (signed or not: only names are counted). */
export async function storeVersions(storeUrl: string, profile: string): Promise<string[]> {
  const store = await openStore(storeUrl);
  try {
    const versions = new Set<string>();
    for (const name of await store.channels(profile)) {
      const channel = await readChannel(store, { profile, channel: name }, { allowUnsigned: true });
      for (const file of channel.sums.keys()) {
        const v = versionOfFile(file);
        if (v) versions.add(v);
      }
    }
    return [...versions];
  } finally {
    await store.close();
  }
}

export interface VersionDecision {
  version: string;
  /** explicit: --version; reused: the version these same inputs got earlier today; next: YYYYMMDD.N. */
  how: 'explicit' | 'reused' | 'next';
}

/**
 * The build's version. `--version` wins (checked: one EVERSION line). Else the
 * version an earlier build of the very same inputs got on the same UTC day is
 * reused, so a rebuild with nothing changed is the same image under the same
 * version and hits the cache to the end; else the next `YYYYMMDD.N` after
 * every version known for the profile (the published report's, the store's).
 */
export function decideVersion(opts: { explicit?: string; known: Iterable<string>; now: Date; reusable?: string }): VersionDecision {
  if (opts.explicit !== undefined) return { version: checkVersion(opts.explicit), how: 'explicit' };
  const m = opts.reusable ? /^(\d{8})\.\d+$/.exec(opts.reusable) : null;
  if (m && m[1] === dayOf(opts.now)) return { version: opts.reusable!, how: 'reused' };
  return { version: nextVersion(opts.known, opts.now), how: 'next' };
}

/** The build's signing key, as the command line hands it over (the armored private key and its passphrase). */
export type SigningKeyInput = Pick<SigningKey, 'armored' | 'passphrase'>;

/** The keyring baked into the image; the key is unlocked and checked now, before any work. */
export async function publishingKeyOf(key: SigningKeyInput): Promise<PublishingKey> {
  const { bytes, fingerprints } = await publicKeyringOf(key);
  return { keyring: bytes, fingerprints };
}

/** What pinned the build's content, from the facts the compute stages found (keys are dotted, values text). */
export function buildSources(ctx: BuildContext): Record<string, string> {
  const sources: Record<string, string | undefined> = {};
  if (ctx.profile.base === 'debian') {
    Object.assign(sources, {
      'debian.mirror': ctx.mirror,
      'debian.mirrorDate': ctx.mirrorDate,
      'debian.suite': ctx.profile.debian?.suite,
    });
  } else {
    const s3 = ctx.gentooStage3;
    const repo = ctx.profile.gentoo?.repository;
    Object.assign(sources, {
      'gentoo.stage3': s3?.fileName ?? s3?.url,
      'gentoo.stage3.url': s3?.url,
      'gentoo.stage3.sha512': s3?.sha512,
      'gentoo.stage3.blake2b': s3?.blake2b,
      'gentoo.repository.snapshot': repo?.snapshot,
      'gentoo.repository.commit': repo?.gitCommit,
    });
  }
  return Object.fromEntries(Object.entries(sources).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}
