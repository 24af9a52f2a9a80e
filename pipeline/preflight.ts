// Checks made before any privileged step. Every problem is collected and
// reported at once, each as one line saying what is wrong and what to do.

import { access, constants, statfs } from 'node:fs/promises';
import { HnError } from './errors.ts';
import { toolsOf } from './host-tools.ts';
import { HOST_TOOL_PACKAGES } from './seam/command.ts';
import type { StageDef } from './stage.ts';
import type { ResolvedProfile } from './profile-schema.ts';

const GiB = 1024 ** 3;

export async function findOnPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (await access(`${dir}/${tool}`, constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

export async function missingTools(tools: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) if (!(await findOnPath(t))) missing.push(t);
  return missing;
}

/**
 * Free space the build needs under the cache: the work image and one checkpoint
 * of it, each at most ~15% of the apparent size for a node image (hn-debian:
 * 1.3 GiB used of 15 GiB), and at least 2 GiB for packages and logs.
 */
export function requiredBytes(profile: ResolvedProfile): number {
  return Math.max(2, Math.ceil(profile.image.sizeGiB * 0.3)) * GiB;
}

export async function preflight(opts: { profile: ResolvedProfile; stages: StageDef[]; cacheDir: string; isRoot: boolean }): Promise<void> {
  const problems: string[] = [];
  if (!opts.isRoot && opts.stages.some((s) => s.needsRoot)) {
    problems.push('not running as root: building an image needs loop devices, mounts and chroot; run as root (or use --dry-run)');
  }
  const missing = await missingTools(toolsOf(opts.stages));
  for (const t of missing) {
    const pkg = HOST_TOOL_PACKAGES[t];
    problems.push(`host tool '${t}' is missing: apt-get install ${pkg ?? '(unknown package)'}`);
  }
  const need = requiredBytes(opts.profile);
  const fs = await statfs(opts.cacheDir).catch(() => undefined);
  if (fs && fs.bavail * fs.bsize < need) {
    problems.push(`only ${((fs.bavail * fs.bsize) / GiB).toFixed(1)} GiB free under ${opts.cacheDir}; the build needs ${(need / GiB).toFixed(0)} GiB: free space or use --cache DIR`);
  }
  if (problems.length) {
    throw new HnError('EPREFLIGHT', problems.length === 1 ? problems[0]! : `${problems.length} problems before building:\n  ${problems.join('\n  ')}`, {
      details: problems,
    });
  }
}
