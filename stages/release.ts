// The image's release identity, written inside it: /etc/hn-release (what the
// node's own tools source), IMAGE_ID and IMAGE_VERSION in /etc/os-release
// (what systemd, hostnamectl and sysupdate read), and the publishing key's
// keyring (what the node's updater hands to gpgv). The version is the only
// per-release input, and it enters no key before this stage: a rebuild with
// a new version reruns from here, everything earlier stays cached.

import { createHash } from 'node:crypto';
import { IMAGE_PATHS } from '../pipeline/boot/contract.ts';
import { need, type BuildContext } from '../pipeline/context.ts';
import type { ImageFs } from '../pipeline/seam/image-fs.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { StageDef } from '../pipeline/stage.ts';

export interface ReleaseIdentity {
  version: string;
  profile: string;
  base: string;
  /** ISO 8601 UTC time the release stage wrote the files. */
  built: string;
  /** Fingerprints of the baked keyring, when there is one. */
  keyFingerprints?: string[];
}

/**
 * A value for a shell or os-release assignment. Double quotes keep both readers
 * happy (os-release(5) asks for quotes around anything beyond A-Za-z0-9);
 * the few characters special inside them are escaped.
 */
export function quoteValue(value: string): string {
  return `"${value.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`;
}

/** /etc/hn-release: sourceable by sh (`. /etc/hn-release`). */
export function hnReleaseText(r: ReleaseIdentity): string {
  const lines = [
    '# Written by hnforge when this image was built; shell-sourceable.',
    `HN_VERSION=${quoteValue(r.version)}`,
    `HN_PROFILE=${quoteValue(r.profile)}`,
    `HN_BASE=${quoteValue(r.base)}`,
    `HN_BUILT=${quoteValue(r.built)}`,
  ];
  if (r.keyFingerprints?.length) lines.push(`HN_PUBLISHING_KEY=${quoteValue(r.keyFingerprints.join(' '))}`);
  return lines.join('\n') + '\n';
}

/** os-release text with IMAGE_ID and IMAGE_VERSION set: lines already there are replaced, the rest kept as is. */
export function withImageIdentity(osRelease: string, imageId: string, imageVersion: string): string {
  const kept = osRelease.split('\n').filter((l) => !/^\s*(IMAGE_ID|IMAGE_VERSION)=/.test(l));
  while (kept.length && kept.at(-1) === '') kept.pop();
  return [...kept, `IMAGE_ID=${quoteValue(imageId)}`, `IMAGE_VERSION=${quoteValue(imageVersion)}`].join('\n') + '\n';
}

/**
 * Writes the three files into the image. /etc/os-release is often a link to
 * ../usr/lib/os-release, which belongs to the distribution's package: its
 * content is read through the link (inside the image) and /etc/os-release
 * becomes a regular file, leaving the package's file untouched.
 */
export async function writeRelease(image: ImageFs, r: ReleaseIdentity, keyring: Uint8Array | undefined): Promise<string[]> {
  const done: string[] = [];
  await image.write(IMAGE_PATHS.hnRelease, hnReleaseText(r), { mode: 0o644 });
  done.push(IMAGE_PATHS.hnRelease);
  // stat follows the link inside the image: a dangling one counts as no os-release.
  const current = (await image.stat(IMAGE_PATHS.osRelease))?.isFile() ? await image.readText(IMAGE_PATHS.osRelease) : '';
  const wasLink = (await image.lstat(IMAGE_PATHS.osRelease))?.isSymbolicLink() ?? false;
  await image.write(IMAGE_PATHS.osRelease, withImageIdentity(current, r.profile, r.version), { mode: 0o644 });
  done.push(`${IMAGE_PATHS.osRelease}${wasLink ? ' (was a symlink: now a regular file)' : ''}`);
  if (keyring) {
    await image.write(IMAGE_PATHS.publishingKeyring, keyring, { mode: 0o644 });
    done.push(`${IMAGE_PATHS.publishingKeyring} (${r.keyFingerprints?.join(', ')})`);
  } else {
    // An unsigned build ships no keyring: a stale one would make the node trust a key nobody publishes with.
    await image.remove(IMAGE_PATHS.publishingKeyring);
  }
  return done;
}

/** The version the runner decided; missing means the runner did not decide one (a bug). */
function versionOf(ctx: BuildContext): string {
  if (!ctx.version) throw new Error('stage order bug: the build version is decided by the runner before the keys');
  return ctx.version;
}

export const release: StageDef = {
  name: 'release',
  needs: ['root'],
  title: 'Write the release identity (version, os-release, keyring)',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  // The build time is not an input: it is when this content was made, and a cached stage keeps it.
  inputs: (ctx) => ({
    version: ctx.version ?? null,
    paths: [IMAGE_PATHS.hnRelease, IMAGE_PATHS.osRelease, IMAGE_PATHS.publishingKeyring],
    keyring: ctx.publishingKey ? createHash('sha256').update(ctx.publishingKey.keyring).digest('hex') : null,
  }),
  plan: (ctx) => [
    `write ${IMAGE_PATHS.hnRelease} (HN_VERSION=${ctx.version ?? '?'})`,
    `set IMAGE_ID=${ctx.profile.name} IMAGE_VERSION=${ctx.version ?? '?'} in ${IMAGE_PATHS.osRelease}`,
    ctx.publishingKey ? `write ${IMAGE_PATHS.publishingKeyring} (${ctx.publishingKey.fingerprints.join(', ')})` : 'no signing key: no keyring in the image',
  ],
  async run(ctx, io) {
    const identity: ReleaseIdentity = {
      version: versionOf(ctx),
      profile: ctx.profile.name,
      base: ctx.profile.base,
      built: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      keyFingerprints: ctx.publishingKey?.fingerprints,
    };
    for (const line of await writeRelease(imageFs(need(ctx, 'root')), identity, ctx.publishingKey?.keyring)) io.log(`wrote ${line}`);
    if (!ctx.publishingKey) io.log('no signing key: the image carries no publishing keyring');
    io.progress(identity.version);
  },
};
