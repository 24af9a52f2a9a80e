// gentoo-emerge: the profile's packages, in the chroot. Output is streamed to
// the stage log; each ">>> Emerging (N of M)" line becomes the progress line.

import { readdirSync } from 'node:fs';
import { need } from '../pipeline/context.ts';
import { formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { gentooCmd } from '../pipeline/gentoo/commands.ts';
import { gentooOf } from '../pipeline/gentoo/context.ts';
import { EmergeTracker, explainEmergeFailure } from '../pipeline/gentoo/emerge.ts';
import { gentooError } from '../pipeline/gentoo/errors.ts';
import { HnError } from '../pipeline/errors.ts';
import { emergeAtoms } from '../pipeline/gentoo/portage-config.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import { NODE_FILES } from '../pipeline/gentoo/overlay.ts';
import { join } from 'node:path';

export function emergeCommands(ctx: Parameters<NonNullable<StageDef['plan']>>[0], root: string) {
  const g = gentooOf(ctx);
  return [
    ...(g.binhost.enabled && g.binhost.requireSignature ? [gentooCmd.getuto(root)] : []),
    gentooCmd.emerge(root, emergeAtoms(ctx.profile)),
  ];
}

/** Splits cat/pkg-1.2.3-r1 into name and version (Gentoo version syntax). */
export function splitPackage(cpv: string): { name: string; version: string } {
  const m = /^(.+?)-(\d[^-]*(?:-r\d+)?)$/.exec(cpv);
  return m ? { name: m[1]!, version: m[2]! } : { name: cpv, version: '' };
}

/** cat/pkg-version of everything installed, from /var/db/pkg. */
export async function installedPackages(root: string): Promise<string[]> {
  const image = imageFs(root);
  const out: string[] = [];
  for (const cat of (await image.list('/var/db/pkg')).sort()) {
    for (const pkg of (await image.list(`/var/db/pkg/${cat}`)).sort()) {
      if (!pkg.startsWith('-MERGING-')) out.push(`${cat}/${pkg}`);
    }
  }
  return out;
}

/** Files that decide what the overlay's packages install: the overlay itself and the node package's sources. */
export function overlayInputFiles(repoDir: string): string[] {
  const overlay = join(repoDir, 'portage-overlay');
  let files: string[] = [];
  try {
    files = (readdirSync(overlay, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
      .filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name));
  } catch {
    /* no overlay: gentoo-binds reports it */
  }
  return [...files.sort(), ...NODE_FILES.map((f) => join(repoDir, f.source))];
}

export const gentooEmerge: StageDef = {
  name: 'gentoo-emerge',
  needs: ['root'],
  provides: ['gentooEmerged', 'installedPackages'],
  title: 'Emerge the node packages',
  kind: 'mutate',
  bases: ['gentoo'],
  needsRoot: true,
  version: 1,
  checkpoint: true,
  commands: [gentooCmd.getuto, gentooCmd.emerge],
  inputs: (ctx) => ({ atoms: emergeAtoms(ctx.profile), binhost: gentooOf(ctx).binhost }),
  files: (ctx) => overlayInputFiles(ctx.repoDir),
  plan: (ctx) => emergeCommands(ctx, ctx.paths.root).map(formatCommand),
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const tracker = new EmergeTracker(io.progress);
    for (const command of emergeCommands(ctx, root)) {
      try {
        await io.run(command, { onLine: tracker.line });
      } catch (e) {
        const why = e instanceof HnError && e.code === 'ECOMMAND' ? explainEmergeFailure(tracker.notable) : undefined;
        if (why) throw gentooError('EGENTOO_EMERGE', why, { details: [...tracker.notable, ...(e as HnError).details], cause: e });
        throw e;
      }
    }
    const installed = await installedPackages(root);
    io.log(`emerge merged ${tracker.merged.length} package(s); ${installed.length} installed in total`);
    // installedPackages: the build report's package list (the Debian base fills it from dpkg).
    return { gentooEmerged: installed, installedPackages: installed.map(splitPackage) };
  },
};
