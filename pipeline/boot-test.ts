// `hnforge boot-test`: boots a built image the way a server does and passes
// when the booted system reports itself. A copy of the image gets a oneshot
// unit (written offline with debugfs: no loop device, no mount) that prints the
// HN-USERSPACE marker on the serial console once multi-user.target is reached;
// the copy is provisioned onto a disk file (GPT, EFI-BOOT with GRUB, hostpart
// holding hn-root.img: the same provision() a real disk gets) and booted under
// qemu with OVMF (pipeline/qemu.ts). The image itself is never changed.
//
// The marker line also names the root device and its backing file, so a pass
// means the root really is hn-root.img loop-mounted from the host partition.
// Images whose /sbin/init prints the marker itself (the busybox test images)
// pass the same way; the unit is then simply never started.

import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HnError, usageError } from './errors.ts';
import { provision, PROVISION_COMMANDS } from './provision.ts';
import { bootDisk, type BootResult } from './qemu.ts';
import { bootCmd } from './seam/boot-commands.ts';
import type { CatalogueEntry } from './seam/catalogue.ts';
import { cmd } from './seam/command.ts';
import { withDeclaredCommands } from './seam/declared.ts';
import { run } from './seam/run.ts';

/** The line a booted system prints; the boot tests wait for the same marker. */
export const USERSPACE_MARKER = 'HN-USERSPACE';

/** Every command boot-test runs (its host tools; qemu and OVMF are added by the CLI's package check). */
export const BOOT_TEST_COMMANDS: readonly CatalogueEntry[] = [...PROVISION_COMMANDS, bootCmd.debugfs, bootCmd.qemu];

/** Debian packages boot-test needs beyond its commands' programs: the UEFI firmware is a file, not a program. */
export const BOOT_TEST_EXTRA_PACKAGES = ['ovmf'];

/** What the report unit runs: one marker line describing the root, then a normal poweroff. */
export const REPORT_SCRIPT = `#!/bin/sh
rootdev=$(awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)
rootmode=$(awk '$2 == "/" { split($4, o, ","); m = o[1] } END { print m }' /proc/mounts)
backing=$(cat "/sys/block/\${rootdev##*/}/loop/backing_file" 2>/dev/null)
hp=$(awk '$2 == "/hostpart" { print $1 "," $3 "," $4 }' /proc/mounts)
exitrd=no; [ -x /run/initramfs/shutdown ] && exitrd=yes
# Each line through a fresh open of the serial port: the serial getty starting beside this
# unit hangs up the terminal, and a descriptor opened before that writes nowhere.
echo >/dev/ttyS0 "${USERSPACE_MARKER} uname=$(uname -r) root=$rootdev rootmode=$rootmode backing=$backing hostpart=$hp data0=$(readlink /data0) exitrd=$exitrd uptime=$(cut -d' ' -f1 /proc/uptime)"
[ -d /data0/ ] && echo >/dev/ttyS0 "HN-DATA0 ok"
systemctl --no-block poweroff
`;

// After multi-user.target: the marker means the node finished booting, not just that PID 1 started.
export const REPORT_UNIT = `[Unit]
Description=hnforge boot test report
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/hn-test-report
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
`;


/** True when `file` holds an ext2/3/4 filesystem (superblock magic 0xEF53 at byte 1080). */
async function isExtFilesystem(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(2);
    await fh.read(buf, 0, 2, 1080);
    return buf.readUInt16LE(0) === 0xef53;
  } finally {
    await fh.close();
  }
}

/** A oneshot test unit: its script goes to /usr/local/sbin/<name>, the unit to /etc/systemd/system/<name>.service, enabled. */
export interface BootUnit {
  name: string;
  script: string;
  unit: string;
}

/**
 * Writes a script and its enabled unit into an ext4 image file, offline.
 * debugfs goes on after a failed request (a directory that already exists), so
 * the result is checked by reading the unit back.
 */
export async function addBootUnit(image: string, workDir: string, u: BootUnit): Promise<void> {
  const scriptPath = `/usr/local/sbin/${u.name}`;
  const unitPath = `/etc/systemd/system/${u.name}.service`;
  const wantsLink = `/etc/systemd/system/multi-user.target.wants/${u.name}.service`;
  const script = join(workDir, u.name);
  const unit = join(workDir, `${u.name}.service`);
  await writeFile(script, u.script, { mode: 0o755 });
  await writeFile(unit, u.unit);
  const requests = [
    'mkdir /usr', 'mkdir /usr/local', 'mkdir /usr/local/sbin',
    `rm ${scriptPath}`, `write ${script} ${scriptPath}`, `sif ${scriptPath} mode 0100755`,
    'mkdir /etc', 'mkdir /etc/systemd', 'mkdir /etc/systemd/system', 'mkdir /etc/systemd/system/multi-user.target.wants',
    `rm ${unitPath}`, `write ${unit} ${unitPath}`,
    `rm ${wantsLink}`, `symlink ${wantsLink} ${unitPath}`,
  ];
  for (const r of requests) await run(bootCmd.debugfs(image, r, true), { capture: true });
  const { stdout } = await run(bootCmd.debugfs(image, `cat ${unitPath}`), { capture: true });
  if (!stdout.includes(`ExecStart=${scriptPath}`)) {
    throw new HnError('EBOOT_TEST', `could not write the test unit ${u.name} into a copy of ${image} with debugfs`);
  }
}

/** The report unit boot-test adds: HN-USERSPACE once multi-user.target is reached, then poweroff. */
export const addReportUnit = (image: string, workDir: string): Promise<void> => addBootUnit(image, workDir, { name: 'hn-test-report', script: REPORT_SCRIPT, unit: REPORT_UNIT });

/** Boot milestones in the order a boot passes them, each recognised on the serial console. */
const MILESTONES: { name: string; seen: RegExp }[] = [
  { name: 'GRUB (loading the image from hostpart)', seen: /HN-GRUB: loading/ },
  { name: 'the kernel', seen: /Linux version |^\[\s*\d+\.\d+\] / },
  { name: 'the initramfs', seen: /HN-INITRAMFS / },
  // GRUB greets with "Welcome to GRUB!"; systemd with "Welcome to Debian GNU/Linux 12 (bookworm)!".
  { name: 'the booted root, before multi-user.target', seen: /HN-TIME initramfs-done|systemd\[1\]|Welcome to (?!GRUB)/ },
];

/** Lines after which this boot cannot succeed any more (each is followed by a reboot loop). */
const FATAL = /HN-BOOT: FAIL|HN-GRUB: no bootable|Kernel panic/;

/**
 * Where a boot that never printed the marker stopped: the furthest milestone,
 * and the first fatal line (the cause; what follows it is the reboot it
 * announces), else the last HN- line.
 */
export function whereStopped(lines: readonly string[]): string {
  let reached = 'the firmware (no GRUB output)';
  for (const m of MILESTONES) if (lines.some((l) => m.seen.test(l))) reached = m.name;
  const last = lines.find((l) => FATAL.test(l)) ?? [...lines].reverse().find((l) => /HN-[A-Z]/.test(l));
  return `it stopped in ${reached}${last ? ` (last: ${JSON.stringify(last.trim().slice(0, 200))})` : ''}`;
}

export interface BootTestOptions {
  image: string;
  timeoutMs: number;
  /** Serial console log, kept after the run (default: beside the image, <name>.boot-test.log). */
  logFile?: string;
  /** Scratch space for the image copy and the disk (default: a temporary directory beside the image). */
  workDir?: string;
  memoryMiB?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface BootTestResult {
  ok: true;
  image: string;
  log: string;
  /** The marker line as printed (a getty prompt sharing the line is cut off). */
  marker: string;
  /** Milliseconds from qemu start to the marker. */
  atMs: number;
  durationMs: number;
}

/** The user's mistakes about --image, found before anything is installed or copied. */
export async function checkBootImage(image: string) {
  const st = await stat(image).catch(() => undefined);
  if (!st?.isFile()) throw usageError(`--image ${image}: no such image file (build one with: hnforge build --profile NAME)`);
  if (!(await isExtFilesystem(image))) {
    throw usageError(`--image ${image}: not an ext4 image; boot-test writes its report unit into a copy with debugfs, which needs ext2/3/4`);
  }
  return st;
}

export const defaultLogFile = (image: string) => join(dirname(image), `${basename(image).replace(/\.img$/, '')}.boot-test.log`);

export function bootTest(o: BootTestOptions): Promise<BootTestResult> {
  return withDeclaredCommands('hnforge boot-test', BOOT_TEST_COMMANDS, () => bootTestDeclared(o));
}

async function bootTestDeclared(o: BootTestOptions): Promise<BootTestResult> {
  const t0 = Date.now();
  const say = o.log ?? (() => {});
  const st = await checkBootImage(o.image);
  const logFile = o.logFile ?? defaultLogFile(o.image);
  // bootDisk appends; a kept log must describe this run only.
  await writeFile(logFile, '');
  const work = await mkdtemp(join(o.workDir ?? dirname(o.image), '.hn-boot-test-'));
  let r: BootResult;
  try {
    const copy = join(work, 'hn-root.img');
    say(`copying ${o.image} (sparse) and adding the report unit`);
    await run(cmd.copySparse(o.image, copy), { signal: o.signal });
    await addReportUnit(copy, work);
    const disk = join(work, 'disk.img');
    // Room for the image, EFI-BOOT and the filesystem's own overhead; a sparse file costs only what is written.
    const sizeBytes = Math.ceil((st.size * 1.1 + 2 ** 29) / 2 ** 20) * 2 ** 20;
    await provision({ disk, image: copy, hostpartFs: 'ext4', yes: true, sizeBytes, workDir: work, log: say });
    say(`booting under qemu (timeout ${Math.round(o.timeoutMs / 1000)} s); serial log: ${logFile}`);
    r = await bootDisk({
      disk, logFile, timeoutMs: o.timeoutMs, memoryMiB: o.memoryMiB ?? 1024, signal: o.signal,
      // Stop at the marker, or as soon as the boot cannot succeed (a failure reboots and would loop until the timeout).
      stopAt: new RegExp(`${USERSPACE_MARKER} |${FATAL.source}`),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new HnError('EINTERRUPTED', 'interrupted; the boot was stopped and its files removed');
  const found = r.markers.find((m) => m.line.includes(`${USERSPACE_MARKER} `));
  const where = `serial log: ${logFile}`;
  if (!found) {
    const how = { timeout: ` within ${Math.round(o.timeoutMs / 1000)} s`, poweroff: ' before the guest powered off', error: ` (qemu: ${r.error})`, stopped: '' }[r.end];
    throw new HnError('EBOOT_TEST', `${o.image} did not reach the booted system (${USERSPACE_MARKER})${how}: ${whereStopped(r.lines)}; ${where}`);
  }
  const marker = found.line.slice(found.line.indexOf(`${USERSPACE_MARKER} `));
  if (!/ backing=\/hostpart\/hn-root\.img( |$)/.test(marker)) {
    throw new HnError('EBOOT_TEST', `${o.image} booted, but its root is not hn-root.img loop-mounted from the host partition (${marker.slice(0, 200)}); ${where}`);
  }
  return { ok: true, image: o.image, log: logFile, marker, atMs: found.atMs, durationMs: Date.now() - t0 };
}
