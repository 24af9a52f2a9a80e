// Every stage of every base, in build order. Which bases use a stage, whether it
// needs root, whether it is cached and checkpointed: all of it is declared on
// the stage objects listed here; the runner reads nothing else.

import type { StageDef } from './stage.ts';
import { debianMirror } from '../stages/debian-mirror.ts';
import { imageCreate } from '../stages/image-create.ts';
import { imageMount } from '../stages/image-mount.ts';
import { debianBootstrap } from '../stages/debian-bootstrap.ts';
import { chrootEnter, chrootLeave } from '../stages/chroot.ts';
import { debianPackages } from '../stages/debian-packages.ts';
import { layout } from '../stages/layout.ts';
import { inventory } from '../stages/inventory.ts';
import { scrub } from '../stages/scrub.ts';
import { seal } from '../stages/seal.ts';
import { bootInitramfs } from '../stages/boot-initramfs.ts';

export const STAGES: readonly StageDef[] = [
  debianMirror,
  imageCreate,
  imageMount,
  debianBootstrap,
  chrootEnter,
  debianPackages,
  layout,
  bootInitramfs,
  inventory,
  scrub,
  chrootLeave,
  seal,
];

export function stagesFor(base: 'debian' | 'gentoo'): StageDef[] {
  return STAGES.filter((s) => s.bases.includes(base));
}
