// Command lines of the boot chain (initramfs, disks, GRUB, qemu) as plain
// data, like pipeline/seam/command.ts (which this file extends without editing).
// Each builder is a catalogue entry naming its host program (./catalogue.ts).

import { entry } from './catalogue.ts';
import type { Command } from './command.ts';

const MINUTE = 60_000;
const c = (file: string, args: string[], timeoutMs = MINUTE, extra: Partial<Command> = {}): Command => ({ file, args, timeoutMs, ...extra });

export const bootCmd = {
  /** depmod against a tree that is not the running system (Debian kernel .debs ship no modules.dep). */
  depmod: entry('depmod', (baseDir: string, kernelVersion: string) => c('depmod', ['-b', baseDir, kernelVersion])),

  /** newc archive of the files listed on stdin (paths relative to cwd), owned by root, stable order and times. */
  cpioCreate: entry('cpio', (cwd: string, output: string, fileList: string[]) =>
    c('cpio', ['--create', '--format=newc', '--owner=0:0', '--reproducible', '--quiet', `--file=${output}`], MINUTE, {
      cwd,
      input: fileList.join('\n') + '\n',
    })),

  /** -n: no name or time in the header, so equal input gives equal output. */
  gzip: entry('gzip', (file: string) => c('gzip', ['-n', '-9', '-f', file], 2 * MINUTE)),

  /** Every file of a tree gets the same mtime (reproducible archives and filesystems). */
  touchTree: entry(['find', 'touch'], (dir: string, epoch: number) =>
    c('find', [dir, '-exec', 'touch', '-h', '-d', `@${epoch}`, '{}', '+'], 2 * MINUTE)),

  /** The image's (or a test's) busybox, run by its path: no host program. */
  busyboxList: entry([], (busybox: string) => c(busybox, ['--list'])),

  /** A character device node (the initramfs's /dev/console). */
  mknodChar: entry('mknod', (path: string, major: number, minor: number, mode = '600') =>
    c('mknod', ['-m', mode, path, 'c', String(major), String(minor)], 10_000)),

  sgdiskZap: entry('sgdisk', (disk: string) => c('sgdisk', ['--zap-all', disk])),
  /** GPT: 1 = EFI system partition (EFI-BOOT), 2 = Linux filesystem (hostpart) taking the rest. */
  sgdiskLayout: entry('sgdisk', (disk: string, efiMiB: number) =>
    c('sgdisk', [
      '--clear',
      `--new=1:1MiB:+${efiMiB}MiB`, '--typecode=1:ef00', '--change-name=1:EFI-BOOT',
      '--new=2:0:0', '--typecode=2:8300', '--change-name=2:hostpart',
      disk,
    ])),
  /** START and SECTORS of every partition, one line each, no header (sectors of 512 bytes). */
  partxList: entry('partx', (disk: string) => c('partx', ['--show', '--noheadings', '--bytes', '--output', 'NR,START,SECTORS', disk])),
  /** Tells the kernel about a block device's new partition table. */
  partxUpdate: entry('partx', (disk: string) => c('partx', ['--update', disk])),
  /** Signatures (partition tables, filesystems) on a disk, as JSON; changes nothing. */
  wipefsProbe: entry('wipefs', (disk: string) => c('wipefs', ['--no-act', '--json', disk])),
  wipefsAll: entry('wipefs', (disk: string) => c('wipefs', ['--all', '--quiet', disk])),
  blockdevSize: entry('blockdev', (device: string) => c('blockdev', ['--getsize64', device], 30_000)),

  /** FAT32 on a partition device. */
  mkfsVfat: entry('mkfs.vfat', (device: string, label: string) => c('mkfs.vfat', ['-F', '32', '-s', '1', '-n', label, device])),
  /** FAT32 straight into a disk image at a sector offset (no loop device, the host kernel may lack vfat). */
  mkfsVfatAt: entry('mkfs.vfat', (disk: string, offsetSectors: number, sizeKiB: number, label: string) =>
    c('mkfs.vfat', ['-F', '32', '-s', '1', '-n', label, `--offset=${offsetSectors}`, disk, String(sizeKiB)])),
  /** mtools address a partition of a disk image as FILE@@OFFSET. */
  mmd: entry('mmd', (disk: string, offsetBytes: number, dirs: string[]) => c('mmd', ['-D', 'o', '-i', `${disk}@@${offsetBytes}`, ...dirs.map((d) => `::${d}`)])),
  mcopy: entry('mcopy', (disk: string, offsetBytes: number, from: string, to: string) =>
    c('mcopy', ['-o', '-i', `${disk}@@${offsetBytes}`, from, `::${to}`])),
  mtype: entry('mtype', (disk: string, offsetBytes: number, path: string) => c('mtype', ['-i', `${disk}@@${offsetBytes}`, `::${path}`])),

  /** ext4 from a directory on a partition device. */
  mkfsExt4Device: entry('mkfs.ext4', (device: string, label: string, fromDir: string) =>
    c('mkfs.ext4', ['-F', '-q', '-L', label, '-d', fromDir, device], 30 * MINUTE)),
  /** ext4 from a directory straight into a disk image at a byte offset; size with an explicit unit. */
  mkfsExt4At: entry('mkfs.ext4', (disk: string, offsetBytes: number, sizeKiB: number, label: string, fromDir?: string) =>
    c('mkfs.ext4', [
      // 4 KiB blocks even on a small filesystem: GRUB reads a loop image through 1 KiB blocks several times slower.
      '-F', '-q', '-b', '4096', '-L', label,
      '-E', `offset=${offsetBytes},lazy_itable_init=0,lazy_journal_init=0`,
      ...(fromDir ? ['-d', fromDir] : []),
      disk, `${sizeKiB}k`,
    ], 5 * MINUTE)),
  /** ext4 image file from a directory (a root image). */
  mkfsExt4Image: entry('mkfs.ext4', (image: string, sizeKiB: number, label: string, fromDir: string) =>
    c('mkfs.ext4', ['-F', '-q', '-b', '4096', '-L', label, '-d', fromDir, image, `${sizeKiB}k`], 5 * MINUTE)),
  mkfsBtrfsImage: entry('mkfs.btrfs', (image: string, label: string, fromDir?: string) =>
    c('mkfs.btrfs', ['-f', '-q', '-L', label, ...(fromDir ? ['--rootdir', fromDir] : []), image], 5 * MINUTE)),
  /** Copies a file into a disk image at a byte offset without truncating it, keeping holes. */
  ddInto: entry('dd', (from: string, disk: string, offsetBytes: number) =>
    c('dd', [`if=${from}`, `of=${disk}`, 'bs=1M', `seek=${offsetBytes}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'], 10 * MINUTE)),

  /** debugfs on an ext4 filesystem inside a disk image ("disk?offset=N" is an e2fsprogs io option). */
  debugfs: entry('debugfs', (fsSpec: string, request: string, write = false) => c('debugfs', [...(write ? ['-w'] : []), '-R', request, fsSpec])),
  /** Read-only check: exit 0 means clean, nothing to recover. */
  e2fsckCheck: entry('e2fsck', (fsSpec: string) => c('e2fsck', ['-n', '-f', fsSpec], 5 * MINUTE)),
  /** Replays a dirty journal and fixes what it can (host side, after a power cut). */
  e2fsckFix: entry('e2fsck', (fsSpec: string) => c('e2fsck', ['-p', fsSpec], 5 * MINUTE)),

  grubMkstandalone: entry('grub-mkstandalone', (output: string, embeddedCfg: string) =>
    c('grub-mkstandalone', [
      '--format=x86_64-efi',
      `--output=${output}`,
      '--locales=', '--fonts=', '--themes=',
      '--modules=part_gpt part_msdos fat ext2 btrfs loopback linux gzio search search_label regexp normal echo test sleep reboot halt configfile loadenv',
      `boot/grub/grub.cfg=${embeddedCfg}`,
    ], 3 * MINUTE)),

  dpkgExtract: entry('dpkg-deb', (deb: string, dir: string) => c('dpkg-deb', ['--extract', deb, dir], 5 * MINUTE)),
  aptDownload: entry('apt-get', (cwd: string, packages: string[]) => c('apt-get', ['download', ...packages], 10 * MINUTE, { cwd })),

  /** A read-only loop device over a byte range of a disk (a partition, offline). */
  losetupReadOnlyRange: entry('losetup', (disk: string, offsetBytes: number, sizeBytes: number) =>
    c('losetup', ['--find', '--show', '--read-only', `--offset=${offsetBytes}`, `--sizelimit=${sizeBytes}`, disk], 30_000)),
  /** hn-status (boot/hn-status, POSIX sh) run on the host against a mounted host partition. */
  hnStatus: entry('sh', (script: string, args: string[]) => c('sh', [script, ...args], 2 * MINUTE)),

  qemu: entry('qemu-system-x86_64', (args: string[], timeoutMs: number) => c('qemu-system-x86_64', args, timeoutMs)),
};
