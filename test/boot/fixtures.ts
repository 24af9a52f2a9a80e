// Test images and disks for the boot-chain tests, built through the seam
// without loop mounts. A test image is a small ext4 file holding a Debian
// kernel (from its .deb, cached), the project's initramfs (built by
// stages/boot-initramfs.ts, the same code the pipeline runs) and a busybox
// userspace whose /sbin/init prints markers on the serial console and then
// shuts down the way systemd does (through the /run/initramfs exitrd).
// Until the engine can build the test-min profile, this helper stands in.

import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile, readFile } from 'node:fs/promises';
import { TEST_CACHE } from '../support/test-cache.ts';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bootCmd } from '../../pipeline/seam/boot-commands.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { buildInitramfs, listTree, type InitramfsResult } from '../../stages/boot-initramfs.ts';
import { IMAGE_PATHS, type HealthCheck } from '../../pipeline/boot/contract.ts';
import { isUnit, NODE_FILES } from '../../pipeline/node-files.ts';
import { healthConfText } from '../../stages/node-tools.ts';
import { grubConfig, grubKernelArgsFile, type GrubConfigOptions } from '../../pipeline/boot/grub.ts';
import { REPO } from './sh-harness.ts';

export const CACHE = TEST_CACHE;

/** The module list of profiles/node-base.yaml (kept here so the test does not depend on the profile loader). */
export const NODE_MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk',
  'crc32c-intel', 'crc32c_generic', 'jbd2', 'mbcache', 'crc16', 'ext4', 'loop',
  'libcrc32c', 'zstd_compress', 'raid6_pq', 'xor', 'blake2b_generic', 'btrfs',
  'fat', 'vfat', 'nls_cp437', 'nls_ascii',
  'softdog',
];

const MINUTE = 60_000;

/** Extracts (once) the newest cached linux-image-*-<flavour> .deb, downloading it first if needed. */
export async function ensureKernel(flavour: 'amd64' | 'cloud-amd64'): Promise<{ dir: string; version: string }> {
  const debs = join(CACHE, 'debs');
  await mkdir(debs, { recursive: true });
  const pattern = new RegExp(`^linux-image-(\\d+\\.\\d+\\.\\d+-\\d+-${flavour})_.*\\.deb$`);
  let found = (await readdir(debs)).filter((f) => pattern.test(f)).sort();
  if (!found.length) {
    const { stdout } = await run({ file: 'apt-cache', args: ['depends', `linux-image-${flavour}`], timeoutMs: MINUTE }, { capture: true });
    const pkg = /Depends:\s*(linux-image-\d\S*)/.exec(stdout)?.[1];
    if (!pkg) throw new Error(`cannot resolve linux-image-${flavour} to a kernel package`);
    await run(bootCmd.aptDownload(debs, [pkg]));
    found = (await readdir(debs)).filter((f) => pattern.test(f)).sort();
  }
  const deb = found.at(-1)!;
  const version = pattern.exec(deb)![1]!;
  const dir = join(CACHE, 'kernels', deb.replace(/\.deb$/, ''));
  if (!existsSync(join(dir, '.extracted'))) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await run(bootCmd.dpkgExtract(join(debs, deb), dir));
    await writeFile(join(dir, '.extracted'), deb + '\n');
  }
  return { dir, version };
}

/** The test userspace: markers, one write to /hostpart/data, then systemd's exitrd hand-over. */
export const TEST_INIT = `#!/bin/sh
export PATH=/bin:/sbin
[ -e /proc/self ] || mount -t proc proc /proc
[ -e /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
rootdev=$(awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)
backing=$(cat "/sys/block/\${rootdev##*/}/loop/backing_file" 2>/dev/null)
hp=$(awk '$2 == "/hostpart" { print $1 "," $3 "," $4 }' /proc/mounts)
echo "HN-USERSPACE uname=$(uname -r) image=$(cat /etc/hn-image-id) root=$rootdev backing=$backing hostpart=$hp data0=$(readlink /data0) uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "HN-CMDLINE $(cat /proc/cmdline)"
if [ -d /data0/ ] && [ -f /data0/precious ]; then echo "HN-DATA0 ok precious=$(cat /data0/precious)"; else echo "HN-DATA0 missing"; fi
echo "$(cat /etc/hn-image-id)" >>/hostpart/data/boots
sync
echo "HN-FILES $(ls /hostpart | tr '\\n' ' ')"
echo "HN-BOOTLOG $(tail -n 3 /hostpart/hn-boot.log 2>/dev/null | tr '\\n' '|')"
case " $(cat /proc/cmdline) " in
*" hn.test.userspace=hang "*) echo "HN-HANG userspace hangs before the health check"; while :; do sleep 60; done ;;
esac
# What hn-health.service does on a systemd image.
action=poweroff
if [ -x /usr/sbin/hn-health ]; then
	/usr/sbin/hn-health --boot
	rc=$?
	echo "HN-HEALTH-RC $rc"
	[ "$rc" = 3 ] && action=reboot
fi
case " $(cat /proc/cmdline) " in
*" hn.test.end=dirty "*) echo "HN-END dirty poweroff"; poweroff -f ;;
esac
echo "HN-END exitrd $action"
# What systemd-shutdown does at the end of every shutdown: pivot into
# /run/initramfs with the old root at /oldroot and exec /shutdown.
if [ ! -x /run/initramfs/shutdown ]; then echo "HN-END no exitrd"; poweroff -f; fi
mount --bind /run/initramfs /run/initramfs
for d in dev proc sys; do mount --move /$d /run/initramfs/$d; done
cd /run/initramfs
pivot_root . oldroot
exec chroot . /shutdown $action
`;

export interface TestImage {
  path: string;
  id: string;
  kernelVersion: string;
  initramfs: InitramfsResult;
  bytes: number;
}

/** Builds a small bootable hn-root image (ext4) with busybox userspace. */
/** `kernelArgs`: the image carries them for GRUB (as a profile's boot.kernelArgs); without, GRUB's default applies. */
export async function buildTestImage(opts: { workDir: string; id: string; flavour: 'amd64' | 'cloud-amd64'; out: string; kernelArgs?: string[]; healthChecks?: HealthCheck[] }): Promise<TestImage> {
  const kernel = await ensureKernel(opts.flavour);
  const tree = await mkdtemp(join(opts.workDir, `tree-${opts.id}-`));
  try {
    const t = (p: string) => join(tree, p);
    for (const d of ['bin', 'boot', 'dev', 'proc', 'sys', 'run', 'tmp', 'etc', 'hostpart', 'boot/loader', 'oldroot']) await mkdir(t(d), { recursive: true });
    await symlink('bin', t('sbin'));
    await copyFile('/bin/busybox', t('bin/busybox'));
    await chmod(t('bin/busybox'), 0o755);
    const { stdout } = await run(bootCmd.busyboxList('/bin/busybox'), { capture: true });
    for (const a of stdout.split('\n').map((l) => l.trim()).filter((l) => l && l !== 'busybox' && l !== 'init')) {
      await symlink('busybox', t(`bin/${a}`)).catch(() => {});
    }
    await writeFile(t('bin/init'), TEST_INIT);
    await chmod(t('bin/init'), 0o755);
    await writeFile(t('etc/hn-image-id'), `${opts.id}\n`);
    await writeFile(t(IMAGE_PATHS.hnRelease.slice(1)), `HN_VERSION=${opts.id}\nHN_PROFILE=test\nHN_BASE=busybox\n`);
    // The node's tools from the one list (units aside: this userspace has no systemd; TEST_INIT runs hn-health --boot as hn-health.service does).
    for (const f of NODE_FILES.filter((x) => !isUnit(x))) {
      await mkdir(t(dirname(f.target).slice(1)), { recursive: true });
      await copyFile(join(REPO, f.source), t(f.target.slice(1)));
      await chmod(t(f.target.slice(1)), f.mode);
    }
    await writeFile(t(IMAGE_PATHS.healthConf.slice(1)), healthConfText({ checks: opts.healthChecks ?? ['hostpart', 'data0'], waitSec: 0 }));
    if (opts.kernelArgs) await writeFile(t(IMAGE_PATHS.grubKernelArgs.slice(1)), grubKernelArgsFile(opts.kernelArgs));
    await symlink('/hostpart/data', t('data0'));
    await copyFile(join(kernel.dir, `boot/vmlinuz-${kernel.version}`), t(`boot/vmlinuz-${kernel.version}`));
    const initramfs = await buildInitramfs({
      root: tree,
      modulesRoot: kernel.dir,
      kernelVersion: kernel.version,
      modules: NODE_MODULES,
      repoDir: REPO,
      workDir: opts.workDir,
      id: `image-${opts.id}`,
      run: (c, o) => run(c, o),
    });
    let bytes = 0;
    for (const f of await listTree(tree)) {
      const s = await lstat(join(tree, f));
      if (s.isFile()) bytes += s.size;
    }
    const sizeKiB = Math.ceil((bytes * 1.3 + 8 * 2 ** 20) / 2 ** 20) * 1024;
    await rm(opts.out, { force: true });
    await run(bootCmd.mkfsExt4Image(opts.out, sizeKiB, `hn-${opts.id}`.slice(0, 16), tree));
    return { path: opts.out, id: opts.id, kernelVersion: kernel.version, initramfs, bytes: (await stat(opts.out)).size };
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

// The default kernel arguments put the console on ttyS0, which qemu's -serial reads; OVMF
// already mirrors its console (and so GRUB's) on the serial port: GRUB's own serial terminal is off.
export const TEST_GRUB: GrubConfigOptions = { serial: false, timeoutSec: 0 };

// ------------------------------------------------------- offline disk edits

export interface Disk {
  path: string;
  efiOffset: number;
  hostpartOffset: number;
}

export const fsSpec = (d: Disk) => `${d.path}?offset=${d.hostpartOffset}`;

/** Runs debugfs requests (one per line) against the host partition. */
export async function debugfs(d: Disk, requests: string[], write = false): Promise<string> {
  const dir = await mkdtemp(join(CACHE, 'dbg-'));
  try {
    const f = join(dir, 'requests');
    await writeFile(f, requests.join('\n') + '\n');
    const { stdout } = await run(
      { file: 'debugfs', args: [...(write ? ['-w'] : []), '-f', f, fsSpec(d)], timeoutMs: 2 * MINUTE },
      { capture: true },
    );
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes host files onto the host partition (replacing existing ones). */
export async function putFiles(d: Disk, files: Record<string, string>) {
  await debugfs(d, Object.entries(files).flatMap(([dest, src]) => [`rm ${dest}`, `write ${src} ${dest}`]), true);
}

export async function removeFiles(d: Disk, names: string[]) {
  await debugfs(d, names.map((n) => `rm ${n}`), true);
}

/** Names in the top directory of the host partition. */
export async function listHostpart(d: Disk): Promise<string[]> {
  const out = await debugfs(d, ['ls -p /']);
  return out
    .split('\n')
    .map((l) => l.split('/'))
    .filter((f) => f.length >= 7 && f[5] && f[5] !== '.' && f[5] !== '..')
    .map((f) => f[5]!)
    .sort();
}

export async function catHostpart(d: Disk, path: string): Promise<string> {
  // debugfs -f echoes each request as "debugfs: <request>" before its output.
  return (await debugfs(d, [`cat ${path}`])).replace(/^debugfs: .*\n/m, '');
}

/** Filesystem state of the host partition: clean and no journal to replay. */
export async function hostpartState(d: Disk): Promise<{ clean: boolean; needsRecovery: boolean; fsck: number }> {
  const { stdout } = await run({ file: 'dumpe2fs', args: ['-h', fsSpec(d)], timeoutMs: MINUTE }, { capture: true });
  const state = /Filesystem state:\s*(.*)/.exec(stdout)?.[1]?.trim() ?? '';
  const features = /Filesystem features:\s*(.*)/.exec(stdout)?.[1] ?? '';
  const fsck = await run(bootCmd.e2fsckCheck(fsSpec(d)), { okExitCodes: [0, 1, 2, 4, 8] });
  return { clean: state === 'clean', needsRecovery: features.includes('needs_recovery'), fsck: fsck.exitCode };
}

/** Replaces grub/grub.cfg on the EFI partition (e.g. with test kernel arguments). */
export async function setGrubConfig(d: Disk, o: GrubConfigOptions, workDir: string) {
  const f = join(workDir, `grub-${process.pid}-${Date.now()}.cfg`);
  await writeFile(f, grubConfig({ ...TEST_GRUB, ...o }));
  await run(bootCmd.mcopy(d.path, d.efiOffset, f, 'grub/grub.cfg'));
  await rm(f, { force: true });
}

export async function copyDisk(from: Disk, to: string): Promise<Disk> {
  await run(cmd.copySparse(from.path, to));
  return { ...from, path: to };
}

export async function readText(path: string) {
  return readFile(path, 'utf8');
}
