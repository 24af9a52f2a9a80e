// The build context: the frozen plan (profile, every path), then the facts
// stages provide as the build goes. Every fact is declared here, once, with
// whether it is cached (restored when its stage is skipped) or held (a
// resource, meaningful only in the process that acquired it). Stages declare
// which facts they need and provide; the runner checks both (pipeline/facts.ts).

import type { GentooStage3Info } from './gentoo/context.ts';
import type { ImageFileEntry } from './publish/manifest-types.ts';
import type { BuildPaths } from './plan.ts';
import type { ResolvedProfile } from './profile-schema.ts';
import type { Held } from './seam/resources.ts';
import type { ResourceStack } from './seam/resources.ts';

export interface Facts {
  /** Debian mirror URL the bootstrap and apt use. */
  mirror: string;
  /** `Date:` of the mirror's InRelease for the suite (cache key input). */
  mirrorDate: string;
  /** The pinned OpenPGP keys, fetched by fingerprint or read from --keyring (Gentoo). */
  gentooKeys: { file?: string; keys: { fingerprint: string; role: string; expires: string; source: string }[]; unresolved?: string };
  /** The resolved, downloaded and verified stage3 (Gentoo). */
  gentooStage3: GentooStage3Info;
  /** Where the image's filesystem is mounted right now (paths.root while mounted). */
  root: string;
  loopDevice: string;
  /** Loop device and image mount, released by the seal stage. */
  imageHeld: Held[];
  /** Kernel filesystems in the chroot and build-only files, released by chroot-leave. */
  chrootHeld: Held[];
  /** Bind mounts of the host caches and the overlay, released by gentoo-unbind. */
  gentooHeld: Held[];
  /** Atoms emerge installed (Gentoo). */
  gentooEmerged: string[];
  /** What genkernel installed in /boot (Gentoo). */
  gentooKernel: { kernel: string; initramfs: string; version: string };
  /** The kernel the image boots (pipeline/boot/kernel.ts), chosen once by layout. */
  kernel: { file: string; version: string };
  /** Path inside the image of the initramfs the Debian build wrote (/boot/initramfs-<ver>.img). */
  initramfs: string;
  /** Every package installed in the image, with its version (for the report). */
  installedPackages: { name: string; version: string }[];
  /** Every entry of the finished tree (after chroot-leave), for the report and the published manifest. */
  imageFiles: ImageFileEntry[];
}

export type FactName = keyof Facts;

/** cached: saved with the stage and restored when it is skipped; held: a resource of this process. */
export const FACTS: Readonly<Record<FactName, 'cached' | 'held'>> = {
  mirror: 'cached',
  mirrorDate: 'cached',
  gentooKeys: 'cached',
  gentooStage3: 'cached',
  root: 'held',
  loopDevice: 'held',
  imageHeld: 'held',
  chrootHeld: 'held',
  gentooHeld: 'held',
  gentooEmerged: 'cached',
  gentooKernel: 'cached',
  kernel: 'cached',
  initramfs: 'cached',
  installedPackages: 'cached',
  imageFiles: 'cached',
};

/** The signing key's public half a build bakes into its image (pipeline/release.ts). */
export interface PublishingKey {
  /** Fingerprints of the keys in the keyring (uppercase hex). */
  fingerprints: string[];
  /** Binary public key packets, as gpgv --keyring reads them. */
  keyring: Uint8Array;
}

export interface BuildContext extends Partial<Facts> {
  readonly profile: ResolvedProfile;
  /** Every path of the build, computed once (pipeline/plan.ts). */
  readonly paths: BuildPaths;
  /** Directory of the repository (paths.repo). */
  readonly repoDir: string;
  /** Per-build scratch directory (paths.build). */
  readonly buildDir: string;
  readonly cacheDir: string;
  readonly outputDir: string;
  readonly stack: ResourceStack;
  readonly dryRun: boolean;
  /**
   * The image's version (--version, else YYYYMMDD.N): set once by the runner after the compute
   * stages, before the keys (the release stage's key holds it; no earlier key does).
   */
  version?: string;
  /** Set when the build has a signing key (--signing-key, HNFORGE_SIGNING_KEY); undefined: unsigned. */
  readonly publishingKey?: PublishingKey;
}

/** Reads a fact a previous stage must have provided; a missing one is a bug in the stage table. */
export function need<K extends FactName>(ctx: BuildContext, key: K): NonNullable<Facts[K]> {
  const value = ctx[key];
  if (value === undefined || value === null) throw new Error(`stage order bug: fact '${String(key)}' is not provided yet`);
  return value as NonNullable<Facts[K]>;
}
