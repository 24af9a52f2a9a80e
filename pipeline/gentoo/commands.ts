// Command lines of the Gentoo pipeline, as plain data (see ../seam/command.ts).
// Tests check these argv lists without running anything, and the dry run
// prints them exactly as a real run executes them.

import { entry } from '../seam/catalogue.ts';
import { type Command, cmd } from '../seam/command.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const c = (file: string, args: string[], timeoutMs = MINUTE): Command => ({ file, args, timeoutMs });

/** Where the pipeline puts its build-time files inside the image (removed by the scrub). */
export const IMAGE_WORK_DIR = '/var/tmp/hnforge';

export interface GenkernelOptions {
  kernelConfig: string;
  linuxrc: string;
  initramfsOverlay: string;
  /** Host-partition filesystems the initramfs must be able to mount. */
  filesystems: ReadonlyArray<'ext4' | 'btrfs'>;
  makeopts?: string;
  compress?: 'xz' | 'zstd' | 'gzip' | 'lz4' | 'best' | 'fastest';
}

export const gentooCmd = {
  /** Turns an armored public key file into a binary keyring gpgv can read. */
  gpgDearmor: entry('gpg', (homedir: string, armoredKey: string, keyring: string) =>
    c('gpg', ['--batch', '--no-tty', '--homedir', homedir, '--yes', '--dearmor', '--output', keyring, armoredKey])),

  /** Imports keys into a keyring made for one check (the pinned repository commit's signer). */
  gpgImport: entry('gpg', (homedir: string, keyFile: string) => c('gpg', ['--batch', '--homedir', homedir, '--import', keyFile])),

  /**
   * Verifies a detached signature. gpgv trusts every key of the keyring and
   * nothing else; status lines go to stdout (fd 1) for the fingerprint check,
   * human messages to stderr. Exit code 1 = bad signature, 2 = missing key.
   */
  gpgvDetached: entry('gpgv', (keyring: string, signature: string, file: string) =>
    c('gpgv', ['--status-fd', '1', '--keyring', keyring, signature, file], 10 * MINUTE)),

  /** Verifies a clearsigned file and writes only the signed text to `output`. */
  gpgvClearsigned: entry('gpgv', (keyring: string, signedFile: string, output: string) =>
    c('gpgv', ['--status-fd', '1', '--keyring', keyring, '--output', output, signedFile])),

  /** Decompresses an .xz file to a plain file (the tar that is scanned is the tar that is extracted). */
  xzDecompress: entry(['sh', 'xz'], (input: string, output: string) =>
    c('sh', ['-c', 'exec xz --decompress --stdout -- "$1" > "$2"', 'hnforge-xz', input, output], 15 * MINUTE)),

  /** Gentoo's documented stage3 unpack: keep permissions, xattrs (file capabilities) and numeric owners. */
  tarExtract: entry('tar', (tarFile: string, root: string, opts: { stripComponents?: number } = {}) =>
    c(
      'tar',
      [
        'xpf', tarFile,
        '--xattrs', "--xattrs-include=*.*",
        '--numeric-owner',
        ...(opts.stripComponents ? [`--strip-components=${opts.stripComponents}`] : []),
        '-C', root,
      ],
      20 * MINUTE,
    )),

  /** Sets up the keyring portage uses to check the binhost's package signatures. */
  getuto: entry(cmd.chroot.programs, (root: string) => cmd.chroot(root, ['getuto'], 5 * MINUTE)),

  /** Emerges the profile's packages (adding them to @world) and updates @world around them. */
  emerge: entry(cmd.chroot.programs, (root: string, atoms: string[], opts: { jobs?: number } = {}) =>
    cmd.chroot(
      root,
      [
        'emerge',
        '--ask=n', '--verbose', '--color=n', '--nospinner',
        '--update', '--deep', '--newuse', '--with-bdeps=y',
        ...(opts.jobs ? [`--jobs=${opts.jobs}`] : []),
        '@world', ...atoms,
      ],
      12 * HOUR,
    )),

  /**
   * The whole plan of the same set without building anything: portage
   * resolves the graph and reports every mask, keyword, USE, REQUIRED_USE,
   * licence and blocker problem (exit 1), in seconds rather than hours in.
   */
  emergePretend: entry(cmd.chroot.programs, (root: string, atoms: string[]) =>
    cmd.chroot(
      root,
      [
        'emerge',
        '--pretend', '--verbose', '--color=n', '--nospinner',
        '--autounmask=y', '--autounmask-write=n', '--autounmask-continue=n',
        '--update', '--deep', '--newuse', '--with-bdeps=y',
        '@world', ...atoms,
      ],
      30 * MINUTE,
    )),

  /** Rebuilds kernel and initramfs with the hnforge linuxrc and boot module. */
  genkernel: entry(cmd.chroot.programs, (root: string, o: GenkernelOptions) =>
    cmd.chroot(
      root,
      [
        'genkernel',
        // --mrproper: start from --kernel-config, never from a .config left in the sources.
        '--no-menuconfig', '--mrproper', '--no-mountboot', '--bootdir=/boot', '--no-symlink',
        '--no-color', '--save-config',
        `--kernel-config=${o.kernelConfig}`,
        '--kernel-filename=vmlinuz-%%KV%%',
        '--initramfs-filename=initramfs-%%KV%%.img',
        `--linuxrc=${o.linuxrc}`,
        `--initramfs-overlay=${o.initramfsOverlay}`,
        '--busybox',
        ...(o.filesystems.includes('ext4') ? ['--e2fsprogs'] : []),
        ...(o.filesystems.includes('btrfs') ? ['--btrfs'] : []),
        `--compress-initramfs-type=${o.compress ?? 'xz'}`,
        ...(o.makeopts ? [`--makeopts=${o.makeopts}`] : []),
        'all',
      ],
      6 * HOUR,
    )),

  /** Pins a git checkout of the Gentoo repository to one commit (profile.gentoo.repository.gitCommit). */
  gitFetchCommit: entry('git', (dir: string, url: string, commit: string): Command[] => [
    c('git', ['init', '--quiet', dir]),
    c('git', ['-C', dir, 'fetch', '--depth=1', url, commit], 60 * MINUTE),
    c('git', ['-C', dir, 'checkout', '--quiet', '--detach', commit], 10 * MINUTE),
  ]),
  /** Checks the pinned commit's OpenPGP signature with a keyring made for the purpose (git runs gpg for it). */
  gitVerifyCommit: entry(['git', 'gpg'], (dir: string, gnupgHome: string, commit: string): Command => ({
    ...c('git', ['-C', dir, 'verify-commit', '--raw', commit]),
    env: { GNUPGHOME: gnupgHome, PATH: process.env.PATH ?? '/usr/bin:/bin' },
  })),
  copyTree: entry('cp', (from: string, to: string) => c('cp', ['-a', '--', `${from}/.`, to], 20 * MINUTE)),
};
