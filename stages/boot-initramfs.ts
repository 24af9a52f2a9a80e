// The hnforge initramfs for the Debian base: busybox-static, the kernel modules
// the profile lists (with their dependencies, from the image's own
// /lib/modules), boot/init, boot/shutdown (the exitrd) and boot/hn-boot.sh.
// Written into the image as /boot/initramfs-<version>.img with the
// /boot/kernel and /boot/initramfs symlinks GRUB loads through.

import { chmod, copyFile, mkdir, mkdtemp, open, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { HnError } from '../pipeline/errors.ts';
import type { Command } from '../pipeline/seam/command.ts';
import { bootCmd } from '../pipeline/seam/boot-commands.ts';
import { findImageKernel } from '../pipeline/boot/kernel.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { RunOptions, RunResult } from '../pipeline/seam/run.ts';
import type { StageDef } from '../pipeline/stage.ts';

export const BOOT_FILES = ['boot/init', 'boot/shutdown', 'boot/hn-boot.sh'] as const;

type Runner = (command: Command, opts?: Omit<RunOptions, 'signal'>) => Promise<RunResult>;

export interface InitramfsOptions {
  /** The image tree: busybox comes from it, the initramfs and symlinks are written into its /boot. */
  root: string;
  /** Tree holding lib/modules/<version> (default: root). */
  modulesRoot?: string;
  /** Default: the only (or newest) version with both /boot/vmlinuz-<v> and /lib/modules/<v>. */
  kernelVersion?: string;
  /** Module names as the profile lists them; dependencies are added, built-ins skipped. */
  modules: readonly string[];
  /**
   * Listed modules /init loads only when the host partition turns out to be
   * btrfs (with whatever dependencies the rest do not already load). Default: ['btrfs'].
   */
  btrfsModules?: readonly string[];
  /**
   * Listed modules /init loads only on a trial boot, when it arms the watchdog
   * (softdog gets soft_margin from hn.trial_timeout). Default: ['softdog'].
   */
  watchdogModules?: readonly string[];
  /** Repository directory (boot/ files). */
  repoDir: string;
  /** Scratch directory (a staging tree is made and removed below it). */
  workDir: string;
  /** Free text written to /etc/hn-initramfs-id and printed at boot. */
  id?: string;
  /** mtime of every archived file (reproducible output). */
  epoch?: number;
  run: Runner;
  log?: (line: string) => void;
}

export interface InitramfsResult {
  kernelVersion: string;
  /** Absolute path of the written file. */
  path: string;
  /** Module files loaded at boot, in order (relative to lib/modules/<version>). */
  moduleFiles: string[];
  /** Profile modules that are built into this kernel. */
  builtin: string[];
  /** Profile modules this kernel does not have at all. */
  missing: string[];
  bytes: number;
  /** Written to the initramfs (/etc/hn-initramfs-id) and the image (/boot/hn-boot-id). */
  bootId: string;
}

const norm = (name: string) => name.replace(/-/g, '_');
const modName = (path: string) => norm(path.slice(path.lastIndexOf('/') + 1).replace(/\.ko(\.(xz|gz|zst))?$/, ''));

/** True if the ELF file at `path` has no program interpreter (statically linked). */
export async function isStaticElf(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false; // ELF64 only
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3 /* PT_INTERP */) return false;
    return true;
  } finally {
    await fh.close();
  }
}

/** The version the image boots (pipeline/boot/kernel.ts), which must have its modules in `modulesRoot`. */
export async function detectKernelVersion(root: string, modulesRoot = root): Promise<string> {
  const { version } = await findImageKernel(imageFs(root));
  if (!(await imageFs(modulesRoot).stat(`lib/modules/${version}`))?.isDirectory()) {
    throw new HnError('ENOKERNEL', `kernel ${version} has no /lib/modules/${version}; install its modules package with the kernel`);
  }
  return version;
}

/**
 * Resolves module names to files in load order (dependencies first) from
 * modules.dep; names in modules.builtin are skipped.
 */
export function resolveModules(names: readonly string[], modulesDep: string, modulesBuiltin: string) {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const file = m[1]!;
    deps.set(modName(file), { file, deps: m[2]!.split(/\s+/).filter(Boolean) });
  }
  const builtinSet = new Set(modulesBuiltin.split('\n').filter(Boolean).map(modName));
  const byFile = new Map([...deps.values()].map((d) => [d.file, d]));
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const d of byFile.get(file)?.deps ?? []) visit(d);
    order.push(file);
  };
  const builtin: string[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const entry = deps.get(norm(name));
    if (entry) visit(entry.file);
    else if (builtinSet.has(norm(name))) builtin.push(name);
    else missing.push(name);
  }
  return { files: order, builtin, missing };
}

/** Every path below `dir` (relative), never following symlinks. */
export async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory()) out.push(...(await listTree(dir, rel)));
  }
  return out.sort();
}

export async function buildInitramfs(opts: InitramfsOptions): Promise<InitramfsResult> {
  const log = opts.log ?? (() => {});
  const modulesRoot = opts.modulesRoot ?? opts.root;
  const version = opts.kernelVersion ?? (await detectKernelVersion(opts.root, modulesRoot));
  // Everything read from the image is resolved inside it (its links are the image's, not the host's).
  const image = imageFs(opts.root);
  const modules = imageFs(modulesRoot);
  const modRel = `lib/modules/${version}`;
  const modDir = await modules.resolve(modRel);

  let busybox: string | undefined;
  for (const p of ['usr/bin/busybox', 'bin/busybox']) if (await image.stat(p)) busybox = await image.resolve(p);
  if (!busybox) throw new HnError('ENOBUSYBOX', `no busybox in ${opts.root}; add busybox-static to the profile packages`);
  if (!(await isStaticElf(busybox))) {
    throw new HnError('ENOBUSYBOX', `${busybox} is dynamically linked; the initramfs needs busybox-static (not busybox) in the profile packages`);
  }

  // depmod -b resolves <root>/lib/modules/<version> on the host: refused unless that is where the image's own leads.
  const hostView = await realpath(join(modulesRoot, modRel)).catch(() => undefined);
  if (hostView !== (await realpath(modDir).catch(() => undefined))) {
    throw new HnError('EIMAGE_PATH', `image path /${modRel} (image at ${modulesRoot}): a symlink on the way leads elsewhere on the host than in the image; depmod -b would follow it`);
  }
  await opts.run(bootCmd.depmod(modulesRoot, version));
  const modulesDep = await modules.readText(`${modRel}/modules.dep`);
  const modulesBuiltin = await modules.readText(`${modRel}/modules.builtin`).catch(() => '');
  const btrfsLate = new Set((opts.btrfsModules ?? ['btrfs']).map(norm));
  const watchdogLate = new Set((opts.watchdogModules ?? ['softdog']).map(norm));
  const late = new Set([...btrfsLate, ...watchdogLate]);
  const resolved = resolveModules(opts.modules, modulesDep, modulesBuiltin);
  const early = resolveModules(opts.modules.filter((m) => !late.has(norm(m))), modulesDep, modulesBuiltin);
  const earlySet = new Set(early.files);
  const withBtrfs = resolveModules(opts.modules.filter((m) => !watchdogLate.has(norm(m))), modulesDep, modulesBuiltin);
  const lateFiles = withBtrfs.files.filter((f) => !earlySet.has(f));
  const watchdogFiles = resolveModules(opts.modules.filter((m) => watchdogLate.has(norm(m))), modulesDep, modulesBuiltin)
    .files.filter((f) => !earlySet.has(f));
  if (resolved.builtin.length) log(`built into ${version}: ${resolved.builtin.join(' ')}`);
  if (resolved.missing.length) log(`WARNING: not in ${version} (skipped): ${resolved.missing.join(' ')}`);
  for (const essential of ['loop']) {
    if (resolved.missing.includes(essential)) throw new HnError('EKMOD', `kernel ${version} has no ${essential} module and does not build it in; it cannot boot an image file`);
  }

  const stage = await mkdtemp(join(opts.workDir, 'initramfs-'));
  try {
    const s = (p: string) => join(stage, p);
    for (const d of ['bin', 'dev', 'proc', 'sys', 'run', 'tmp', 'etc', 'lib', 'newroot', 'hostpart', `lib/modules/${version}`]) {
      await mkdir(s(d), { recursive: true });
    }
    await symlink('bin', s('sbin'));
    await mkdir(s('usr'));
    await symlink('../bin', s('usr/bin'));
    await symlink('../bin', s('usr/sbin'));
    await copyFile(busybox, s('bin/busybox'));
    await chmod(s('bin/busybox'), 0o755);
    const { stdout } = await opts.run(bootCmd.busyboxList(busybox), { capture: true });
    for (const applet of stdout.split('\n').map((l) => l.trim()).filter(Boolean)) {
      if (applet === 'busybox' || applet.includes('/')) continue;
      await symlink('busybox', s(`bin/${applet}`)).catch(() => {});
    }
    await copyFile(join(opts.repoDir, 'boot/init'), s('init'));
    await copyFile(join(opts.repoDir, 'boot/shutdown'), s('lib/hn-shutdown'));
    await copyFile(join(opts.repoDir, 'boot/hn-boot.sh'), s('lib/hn-boot.sh'));
    await chmod(s('init'), 0o755);
    await chmod(s('lib/hn-shutdown'), 0o755);
    for (const f of resolved.files) {
      await mkdir(dirname(s(`lib/modules/${version}/${f}`)), { recursive: true });
      await writeFile(s(`lib/modules/${version}/${f}`), await modules.read(`${modRel}/${f}`));
    }
    await writeFile(s('etc/hn-modules'), early.files.join('\n') + '\n');
    await writeFile(s('etc/hn-modules-btrfs'), lateFiles.join('\n') + (lateFiles.length ? '\n' : ''));
    await writeFile(s('etc/hn-modules-watchdog'), watchdogFiles.join('\n') + (watchdogFiles.length ? '\n' : ''));
    // The kernel opens /dev/console before /init runs; without the node /init has no output.
    await opts.run(bootCmd.mknodChar(s('dev/console'), 5, 1));
    await opts.run(bootCmd.touchTree(stage, opts.epoch ?? 0));

    const out = `boot/initramfs-${version}.img`;
    const cpioFile = join(opts.workDir, `initramfs-${version}.cpio`);
    await opts.run(bootCmd.cpioCreate(stage, cpioFile, await listTree(stage)));
    // Identity shared by this initramfs and the image (hn_check_identity): a
    // hash of the kernel and the archive, carried in a second, appended archive.
    const h = createHash('sha256');
    h.update(await image.read(`boot/vmlinuz-${version}`));
    h.update(await readFile(cpioFile));
    const bootId = `${opts.id ?? version} ${h.digest('hex').slice(0, 24)}`;
    const idStage = await mkdtemp(join(opts.workDir, 'initramfs-id-'));
    const idCpio = join(opts.workDir, `initramfs-${version}.id.cpio`);
    try {
      await mkdir(join(idStage, 'etc'));
      await writeFile(join(idStage, 'etc/hn-initramfs-id'), `${bootId}\n`);
      await opts.run(bootCmd.touchTree(idStage, opts.epoch ?? 0));
      await opts.run(bootCmd.cpioCreate(idStage, idCpio, ['etc/hn-initramfs-id']));
    } finally {
      await rm(idStage, { recursive: true, force: true });
    }
    await opts.run(bootCmd.gzip(cpioFile));
    await opts.run(bootCmd.gzip(idCpio));
    // The kernel unpacks concatenated archives in order.
    const archive = Buffer.concat([await readFile(`${cpioFile}.gz`), await readFile(`${idCpio}.gz`)]);
    const written = await image.write(out, archive);
    await rm(`${cpioFile}.gz`, { force: true });
    await rm(`${idCpio}.gz`, { force: true });
    await image.write('boot/hn-boot-id', `${bootId}\n`);

    for (const [link, target] of [['boot/initramfs', `initramfs-${version}.img`], ['boot/kernel', `vmlinuz-${version}`]] as const) {
      await image.symlink(target, link);
    }
    // The image's side of the hand-over: init moves the host partition here.
    await image.mkdirp('hostpart');
    const bytes = archive.length;
    log(`initramfs-${version}.img: ${bytes} bytes, ${resolved.files.length} modules`);
    return { kernelVersion: version, bootId, path: written, moduleFiles: resolved.files, builtin: resolved.builtin, missing: resolved.missing, bytes };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export const bootInitramfs: StageDef = {
  name: 'boot-initramfs',
  needs: ['root', 'kernel'],
  provides: ['initramfs'],
  title: 'Build the boot-chain initramfs (busybox, hn-boot.sh, exitrd)',
  kind: 'mutate',
  bases: ['debian'],
  needsRoot: true,
  version: 1,
  inputs: (ctx) => ({ modules: ctx.profile.boot.modules, hostpartFilesystems: ctx.profile.boot.hostpartFilesystems }),
  files: (ctx) => BOOT_FILES.map((f) => join(ctx.repoDir, f)),
  commands: [bootCmd.depmod, bootCmd.busyboxList, bootCmd.mknodChar, bootCmd.touchTree, bootCmd.cpioCreate, bootCmd.gzip],
  plan: (ctx) => [
    `depmod -b ${ctx.root ?? '<root>'} <kernel version>`,
    `initramfs: busybox-static + ${ctx.profile.boot.modules.length} modules (+ dependencies) + boot/init, boot/shutdown, boot/hn-boot.sh`,
    'write /boot/initramfs-<version>.img; ln -s initramfs-<version>.img /boot/initramfs; ln -s vmlinuz-<version> /boot/kernel',
  ],
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const result = await buildInitramfs({
      root,
      kernelVersion: need(ctx, 'kernel').version,
      modules: ctx.profile.boot.modules,
      repoDir: ctx.repoDir,
      workDir: ctx.buildDir,
      id: `${ctx.profile.name}`,
      epoch: Number(process.env.SOURCE_DATE_EPOCH ?? 0),
      run: (command, opts) => io.run(command, opts),
      log: (line) => io.log(line),
    });
    return { initramfs: `/boot/initramfs-${result.kernelVersion}.img` };
  },
};
