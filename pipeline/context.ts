// The build context: fixed facts first, then fields that stages fill in as the
// build goes. A stage module that adds a field declares it next to itself with
// declaration merging (`declare module '../pipeline/context.ts'`), so this file
// does not have to know every stage.

import type { ResolvedProfile } from './profile-schema.ts';
import type { ResourceStack } from './seam/resources.ts';

export interface BuildContext {
  readonly profile: ResolvedProfile;
  /** Directory of the repository (for boot/, portage-overlay/, profiles/). */
  readonly repoDir: string;
  /** Per-build scratch directory: work image, mount point, stage logs. */
  readonly buildDir: string;
  readonly cacheDir: string;
  readonly outputDir: string;
  readonly stack: ResourceStack;
  readonly dryRun: boolean;

  /** The image file being built: <buildDir>/<image file name> until published. */
  workImage?: string;
  loopDevice?: string;
  /** Where the image's filesystem is mounted during the build. */
  root?: string;
  /** Debian mirror URL the bootstrap and apt use. */
  mirror?: string;
}

/** Reads a field a previous stage must have set; a missing one is a bug in the stage table. */
export function need<K extends keyof BuildContext>(ctx: BuildContext, key: K): NonNullable<BuildContext[K]> {
  const value = ctx[key];
  if (value === undefined || value === null) throw new Error(`stage order bug: context field '${String(key)}' is not set yet`);
  return value as NonNullable<BuildContext[K]>;
}
