// Every stage of every base, in build order. Which bases use a stage, whether it
// needs root, whether it is cached and checkpointed: all of it is declared on
// the stage objects listed here; the runner reads nothing else.

import { checkFactOrder } from './facts.ts';
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
import { gentooKeys } from '../stages/gentoo-keys.ts';
import { gentooStage3 } from '../stages/gentoo-stage3.ts';
import { gentooUnpack } from '../stages/gentoo-unpack.ts';
import { gentooPortage } from '../stages/gentoo-portage.ts';
import { gentooBinds, gentooUnbind } from '../stages/gentoo-binds.ts';
import { gentooEmerge } from '../stages/gentoo-emerge.ts';
import { gentooKernel } from '../stages/gentoo-kernel.ts';
import { gentooScrub } from '../stages/gentoo-scrub.ts';
import { release } from '../stages/release.ts';
import { fileList } from '../stages/file-list.ts';
import { nodeTools } from '../stages/node-tools.ts';

// Stages of one base only sit beside their counterpart in the other base
// (bootstrap / unpack, packages / emerge, ...); everything else is shared.
export const STAGES: readonly StageDef[] = [
  debianMirror, //        debian: which mirror, its date
  gentooKeys, //          gentoo: the pinned signing keys, by fingerprint
  gentooStage3, //        gentoo: resolve, download, verify the stage3
  imageCreate,
  imageMount,
  debianBootstrap, //     debian: mmdebstrap
  gentooUnpack, //        gentoo: scanned, verified stage3 unpacked
  gentooPortage, //       gentoo: portage configuration, pinned repository
  chrootEnter,
  gentooBinds, //         gentoo: distfiles/binpkgs caches, overlay
  debianPackages, //      debian: apt
  gentooEmerge, //        gentoo: emerge the set
  gentooKernel, //        gentoo: genkernel with the patched linuxrc
  layout,
  nodeTools, //          boot/'s tools (hn-update, ...) and their units; /etc/hn-update.conf
  bootInitramfs, //       debian: hnforge's busybox initramfs
  inventory, //           debian: dpkg-query (gentoo fills it from /var/db/pkg)
  gentooUnbind,
  gentooScrub, //         gentoo: build-only portage settings out
  scrub,
  release, //             version, os-release, publishing keyring (the only per-release input)
  chrootLeave,
  fileList, //            the finished tree's file list, for the report and the manifest
  seal,
];

export function stagesFor(base: 'debian' | 'gentoo'): StageDef[] {
  return STAGES.filter((s) => s.bases.includes(base));
}

// At load: every fact a stage needs is provided by an earlier stage of its base.
for (const base of ['debian', 'gentoo'] as const) checkFactOrder(stagesFor(base));
