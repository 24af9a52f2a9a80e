// A build's frozen plan: the profile and every path the build uses, computed
// once before any stage runs and read by both a stage's plan() (dry run) and
// its run(). Nothing recomputes a path from its parts elsewhere.

import { join } from 'node:path';
import type { ResolvedProfile } from './profile-schema.ts';

export interface BuildPaths {
  /** The repository clone (boot/, portage-overlay/, profiles/). */
  readonly repo: string;
  readonly cache: string;
  /** Where this profile's finished image and report are published. */
  readonly output: string;
  /** Per-build scratch directory: work image, mount point, logs (one per profile and cache). */
  readonly build: string;
  /** The image file being built, until it is sealed and published. */
  readonly workImage: string;
  /** Where the image's filesystem is mounted while the build changes it. */
  readonly root: string;
  /** One log file per stage. */
  readonly logs: string;
  /** Scratch directory of the Gentoo stages on the host (the assembled overlay among others). */
  readonly gentooWork: string;
  /** Debian packages, shared by every build in this cache (bind-mounted over the image's). */
  readonly aptArchives: string;
}

export interface BuildDirs {
  repoDir: string;
  cacheDir: string;
  outputDir: string;
}

export function buildPaths(profile: Pick<ResolvedProfile, 'name' | 'image'>, dirs: BuildDirs): BuildPaths {
  const build = join(dirs.cacheDir, 'build', profile.name);
  return Object.freeze({
    repo: dirs.repoDir,
    cache: dirs.cacheDir,
    output: dirs.outputDir,
    build,
    workImage: join(build, profile.image.fileName),
    root: join(build, 'root'),
    logs: join(build, 'logs'),
    gentooWork: join(build, 'gentoo'),
    aptArchives: join(dirs.cacheDir, 'apt', 'archives'),
  });
}

/** The log file of a stage: numbered in build order so `ls` shows the order. */
export function stageLogFile(paths: BuildPaths, index: number, stage: string): string {
  return join(paths.logs, `${String(index + 1).padStart(2, '0')}-${stage}.log`);
}

/** Deep-freezes plain data (the resolved profile), so no stage can change the plan under another. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
