// Context fields the Gentoo stages add to the build context, and small
// helpers shared by the stage modules.

import { join, isAbsolute } from 'node:path';
import type { BuildContext } from '../context.ts';
import type { Held } from '../seam/resources.ts';
import { gentooError } from './errors.ts';
import type { GentooProfile } from './portage-config.ts';
import type { PinnedKey } from './keys.ts';

export interface GentooStage3Info {
  url: string;
  fingerprint: string;
  timestamp?: string;
  fileName?: string;
  /** Verified tarball in the cache; absent in a dry run. */
  path?: string;
  sha512?: string;
  blake2b?: string;
  bytes?: number;
  fromCache?: boolean;
  /** Set in a dry run when 'latest' could not be resolved (mirror unreachable). */
  unresolved?: string;
}

/** Default signer of the Gentoo repository snapshots (ARCHITECTURE.md section 5). */
export const GENTOO_SNAPSHOT_KEY = 'DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D';
/** Kernel fragment used when the profile names none. */
export const DEFAULT_KERNEL_FRAGMENT = 'pipeline/gentoo/kernel/hn.config';

export function gentooOf(ctx: BuildContext): GentooProfile {
  const g = ctx.profile.gentoo;
  if (!g) throw gentooError('EGENTOO_PROFILE', `profile ${ctx.profile.name} has no gentoo section; a Gentoo stage cannot run for it`);
  return g;
}

export function repoPath(ctx: BuildContext, p: string): string {
  return isAbsolute(p) ? p : join(ctx.repoDir, p);
}

/** The air-gapped key file the profile (or --keyring) names, if any. */
export function profileKeyringFile(ctx: BuildContext): string | undefined {
  const k = ctx.profile.gentoo?.keyring;
  return k ? repoPath(ctx, k) : undefined;
}

/** The armored keyring the stages verify with: the pinned keys gentoo-keys resolved. */
export function keyringFile(ctx: BuildContext): string | undefined {
  return ctx.gentooKeys?.file ?? profileKeyringFile(ctx);
}

/** The keys a profile pins: the stage3 release key, and the snapshot key when a repository is pinned. */
export function pinnedKeys(g: GentooProfile): PinnedKey[] {
  const email = (f: string) => g.keys.wkd[f];
  const out: PinnedKey[] = [{ fingerprint: g.releaseKeyFingerprint, role: 'stage3 release key', email: email(g.releaseKeyFingerprint) }];
  if (g.repository.snapshot || g.repository.gitCommit) {
    const f = g.repository.snapshotKeyFingerprint ?? GENTOO_SNAPSHOT_KEY;
    out.push({ fingerprint: f, role: 'repository snapshot key', email: email(f) });
  }
  return out;
}

/** Options the final kernel config must have, when the profile names no list of its own. */
export const DEFAULT_KERNEL_REQUIRED = 'pipeline/gentoo/kernel/required.config';

export function kernelRequiredFile(ctx: BuildContext): string {
  return repoPath(ctx, ctx.profile.gentoo?.kernelRequiredOptions ?? DEFAULT_KERNEL_REQUIRED);
}

export function kernelFragmentFile(ctx: BuildContext): string {
  return repoPath(ctx, ctx.profile.gentoo?.kernelConfigFragment ?? DEFAULT_KERNEL_FRAGMENT);
}

/** Scratch directory of the Gentoo stages on the host. */
export function gentooTmp(ctx: BuildContext): string {
  return ctx.paths.gentooWork;
}

export function formatBytes(n: number): string {
  return n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}
