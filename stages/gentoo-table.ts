// Where the Gentoo stages go in the shared stage table (a proposal the engine
// can adopt as is): the stage3 is resolved first (compute), unpacked and
// configured right after the image is mounted, the package caches bound once
// the chroot is entered, and released (and the build-only settings scrubbed)
// before the shared scrub.

import type { StageDef } from '../pipeline/stage.ts';
import { gentooBinds, gentooUnbind } from './gentoo-binds.ts';
import { gentooEmerge } from './gentoo-emerge.ts';
import { gentooKernel } from './gentoo-kernel.ts';
import { gentooPortage } from './gentoo-portage.ts';
import { gentooScrub } from './gentoo-scrub.ts';
import { gentooStage3 } from './gentoo-stage3.ts';
import { gentooUnpack } from './gentoo-unpack.ts';

export const GENTOO_STAGES = [gentooStage3, gentooUnpack, gentooPortage, gentooBinds, gentooEmerge, gentooKernel, gentooUnbind, gentooScrub] as const;

/** Anchors in the shared table: each group goes after (or before) the named shared stage. */
const PLACEMENT: { stages: StageDef[]; after?: string; before?: string }[] = [
  { stages: [gentooStage3], before: 'image-create' },
  { stages: [gentooUnpack, gentooPortage], after: 'image-mount' },
  { stages: [gentooBinds, gentooEmerge, gentooKernel], after: 'chroot-enter' },
  { stages: [gentooUnbind, gentooScrub], before: 'scrub' },
];

/** The shared stages (any order the engine keeps) with the Gentoo stages inserted; throws if an anchor is missing. */
export function withGentooStages(shared: readonly StageDef[]): StageDef[] {
  const out = shared.filter((s) => !s.name.startsWith('gentoo-'));
  for (const p of PLACEMENT) {
    const anchor = (p.after ?? p.before)!;
    const i = out.findIndex((s) => s.name === anchor);
    if (i < 0) throw new Error(`stage table: anchor stage '${anchor}' not found for ${p.stages.map((s) => s.name).join(', ')}`);
    out.splice(p.after ? i + 1 : i, 0, ...p.stages);
  }
  return out;
}
