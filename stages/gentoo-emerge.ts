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
import { emergeAtoms, xtreemfsUnits } from '../pipeline/gentoo/portage-config.ts';
import { formatProblem, parseEmergePretend, summarizeProblems } from '../pipeline/gentoo/resolve.ts';
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

/**
 * Fail fast: `emerge --pretend` of the set, every problem it reports listed in
 * one EGENTOO_RESOLVE naming the profile fields to change. A failure the
 * parser does not recognise is reported with portage's last lines.
 */
export async function resolveOrFail(root: string, atoms: string[], io: Parameters<StageDef['run']>[1]): Promise<void> {
  const lines: string[] = [];
  const { exitCode } = await io.run(gentooCmd.emergePretend(root, atoms), { onLine: (l) => lines.push(l), okExitCodes: [1] });
  const problems = parseEmergePretend(lines.join('\n'));
  for (const p of problems) io.log(`resolve: ${formatProblem(p)}`);
  if (problems.length) throw gentooError('EGENTOO_RESOLVE', summarizeProblems(problems), { details: problems.map(formatProblem) });
  if (exitCode !== 0) {
    const tail = lines.filter((l) => l.trim()).slice(-12);
    throw gentooError('EGENTOO_RESOLVE', `emerge --pretend failed (exit ${exitCode}) with nothing hnforge recognises; portage's last lines are below and in the stage log`, { details: tail });
  }
  const planned = lines.filter((l) => /^\[(?:ebuild|binary)\s/.test(l)).length;
  io.log(`resolve: emerge --pretend plans ${planned} package(s), no problems`);
}

const UNIT_DIR = '/usr/lib/systemd/system';
const WANTS = '/etc/systemd/system/multi-user.target.wants';

/** Enables the units the profile asks for (gentoo.xtreemfsServices) as systemctl enable would; a unit the packages did not install is an error. */
export async function enableUnits(root: string, units: string[], io: Pick<Parameters<StageDef['run']>[1], 'log'>): Promise<void> {
  const image = imageFs(root);
  for (const unit of units) {
    if (!(await image.exists(`${UNIT_DIR}/${unit}`))) {
      throw gentooError('EGENTOO_PROFILE', `${unit} is not installed (gentoo.xtreemfsServices names it); check net-fs/xtreemfs's USE flags (client, server) in gentoo.use`);
    }
    await image.mkdirp(WANTS);
    await image.remove(`${WANTS}/${unit}`);
    await image.symlink(`${UNIT_DIR}/${unit}`, `${WANTS}/${unit}`);
    io.log(`enabled ${unit}`);
  }
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
  version: 2,
  checkpoint: true,
  commands: [gentooCmd.getuto, gentooCmd.emergePretend, gentooCmd.emerge],
  inputs: (ctx) => ({ atoms: emergeAtoms(ctx.profile), binhost: gentooOf(ctx).binhost, units: xtreemfsUnits(gentooOf(ctx)) }),
  files: (ctx) => overlayInputFiles(ctx.repoDir),
  plan: (ctx) => {
    const [emerge, ...before] = emergeCommands(ctx, ctx.paths.root).reverse();
    return [
      ...before.map(formatCommand),
      `fail fast: ${formatCommand(gentooCmd.emergePretend(ctx.paths.root, emergeAtoms(ctx.profile)))}`,
      '    -> every masked package, missing keyword, USE conflict, REQUIRED_USE violation, licence and blocker at once, with the profile field to change (EGENTOO_RESOLVE)',
      formatCommand(emerge!),
      ...(emergeAtoms(ctx.profile).includes('net-fs/xtreemfs') ? [`enable ${xtreemfsUnits(gentooOf(ctx)).join(', ')} in multi-user.target (gentoo.xtreemfsServices)`] : []),
    ];
  },
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const g = gentooOf(ctx);
    const atoms = emergeAtoms(ctx.profile);
    const tracker = new EmergeTracker(io.progress);
    // getuto first: the pretend run already reads the binhost's signed index.
    if (g.binhost.enabled && g.binhost.requireSignature) await io.run(gentooCmd.getuto(root));
    io.progress('resolving the package set (emerge --pretend)');
    await resolveOrFail(root, atoms, io);
    try {
      await io.run(gentooCmd.emerge(root, atoms), { onLine: tracker.line });
    } catch (e) {
      const why = e instanceof HnError && e.code === 'ECOMMAND' ? explainEmergeFailure(tracker.notable) : undefined;
      if (why) throw gentooError('EGENTOO_EMERGE', why, { details: [...tracker.notable, ...(e as HnError).details], cause: e });
      throw e;
    }
    if (atoms.includes('net-fs/xtreemfs')) await enableUnits(root, xtreemfsUnits(g), io);
    const installed = await installedPackages(root);
    io.log(`emerge merged ${tracker.merged.length} package(s); ${installed.length} installed in total`);
    // installedPackages: the build report's package list (the Debian base fills it from dpkg).
    return { gentooEmerged: installed, installedPackages: installed.map(splitPackage) };
  },
};
