// Command lines as plain data. Every external program hnforge runs is described
// here first, so tests can check argv without running anything and the dry run
// can print exactly what a real run would execute. Each builder is a catalogue
// entry (./catalogue.ts) that names the host program it runs.

import { entry } from './catalogue.ts';

export interface Command {
  file: string;
  args: string[];
  /** Kill the command (its whole process group) after this long. */
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
}

/**
 * Debian package that provides each host tool, for preflight messages and
 * auto-install. The one home of this mapping: a unit test fails when a
 * catalogue entry a stage declares runs a program missing here.
 */
export const HOST_TOOL_PACKAGES: Record<string, string> = {
  truncate: 'coreutils',
  cp: 'coreutils',
  sync: 'coreutils',
  mknod: 'coreutils',
  touch: 'coreutils',
  dd: 'coreutils',
  find: 'findutils',
  sh: 'dash',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  'dpkg-query': 'dpkg',
  wipefs: 'util-linux',
  blockdev: 'util-linux',
  mtype: 'mtools',
  mlabel: 'mtools',
  losetup: 'mount',
  mount: 'mount',
  umount: 'mount',
  chroot: 'coreutils',
  fsfreeze: 'util-linux',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  filefrag: 'e2fsprogs',
  'mkfs.btrfs': 'btrfs-progs',
  btrfs: 'btrfs-progs',
  'mkfs.vfat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  sgdisk: 'gdisk',
  partx: 'util-linux',
  flock: 'util-linux',
  fstrim: 'util-linux',
  mmdebstrap: 'mmdebstrap',
  'grub-mkstandalone': 'grub-efi-amd64-bin',
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
  cpio: 'cpio',
  zstd: 'zstd',
  gpg: 'gpg',
  openssl: 'openssl',
  gpgv: 'gpgv',
  gzip: 'gzip',
  git: 'git',
  depmod: 'kmod',
  tar: 'tar',
  xz: 'xz-utils',
  // The benchmark's peer (bench/debian.ts).
  mkosi: 'mkosi',
  debootstrap: 'debootstrap',
  'systemd-nspawn': 'systemd-container',
};

const MINUTE = 60_000;
const c = (file: string, args: string[], timeoutMs = MINUTE): Command => ({ file, args, timeoutMs });

export const cmd = {
  truncate: entry('truncate', (file: string, bytes: number) => c('truncate', ['-s', String(bytes), file])),

  mkfs: entry(['mkfs.ext4', 'mkfs.btrfs'], (fs: 'ext4' | 'btrfs', target: string, label: string): Command => {
    if (fs === 'ext4') {
      // lazy_itable_init keeps mkfs from writing every inode table of a 15 GiB image
      // up front; -F because the target is a regular file, not a block device.
      return c('mkfs.ext4', ['-F', '-q', '-L', label, '-E', 'lazy_itable_init=1,lazy_journal_init=1,discard', target], 5 * MINUTE);
    }
    return c('mkfs.btrfs', ['-f', '-q', '-L', label, target], 5 * MINUTE);
  }),

  /** Locks the open file the command inherits as `fd` (exit 1 if another holder has it). */
  flockExclusive: entry('flock', (fd: number) => c('flock', ['--nonblock', '--exclusive', String(fd)])),

  losetupAttach: entry('losetup', (file: string) => c('losetup', ['--find', '--show', file])),
  losetupDetach: entry('losetup', (device: string) => c('losetup', ['--detach', device])),
  losetupList: entry('losetup', () => c('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])),
  /** With the backing file's inode: a path alone may name another tree's file. */
  losetupListIdentity: entry('losetup', () => c('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE'])),

  mount: entry('mount', (source: string, target: string, opts: { type?: string; options?: string[]; bind?: boolean } = {}): Command => {
    const args: string[] = [];
    if (opts.bind) args.push('--bind');
    if (opts.type) args.push('-t', opts.type);
    if (opts.options?.length) args.push('-o', opts.options.join(','));
    args.push(source, target);
    return c('mount', args);
  }),
  umount: entry('umount', (target: string, opts: { recursive?: boolean } = {}) =>
    c('umount', [...(opts.recursive ? ['--recursive'] : []), target], 2 * MINUTE)),

  fsfreeze: entry('fsfreeze', (mountpoint: string, freeze: boolean) => c('fsfreeze', [freeze ? '--freeze' : '--unfreeze', mountpoint])),
  fstrim: entry('fstrim', (mountpoint: string) => c('fstrim', [mountpoint], 5 * MINUTE)),
  /** -f forces a full check; -y answers yes; the exit code carries the verdict (0 clean, 1 fixed). */
  e2fsck: entry('e2fsck', (image: string) => c('e2fsck', ['-f', '-y', image], 10 * MINUTE)),
  btrfsCheck: entry('btrfs', (image: string) => c('btrfs', ['check', '--readonly', image], 10 * MINUTE)),

  /** Only chroot is a host program: argv runs the image's own programs. */
  chroot: entry('chroot', (root: string, argv: string[], timeoutMs = 30 * MINUTE, env: Record<string, string> = {}): Command => ({
    file: 'chroot',
    args: [root, ...argv],
    timeoutMs,
    // A predictable environment inside the image: nothing of the caller's shell leaks in.
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', HOME: '/root', ...env },
  })),

  /** Sparse-aware copy; reflinks where the filesystem has them, so a snapshot costs nothing there. */
  copySparse: entry('cp', (from: string, to: string) => c('cp', ['--sparse=always', '--reflink=auto', from, to], 10 * MINUTE)),

  sync: entry('sync', () => c('sync', [])),

  /** The commit of a checkout (the report's gitRevision). */
  gitHead: entry('git', (dir: string) => c('git', ['-C', dir, 'rev-parse', '--verify', 'HEAD'])),
  /** Changed tracked files; untracked ones (a node_modules link, build output) are not the code that ran. */
  gitChanges: entry('git', (dir: string) => c('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'])),
};

export function formatCommand(command: Command): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [command.file, ...command.args].map(quote).join(' ');
}
