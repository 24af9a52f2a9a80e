// genkernel glue: the linuxrc hook, the kernel configuration built from a base
// config plus the profile's fragment, the check that the fragment survived
// `make olddefconfig`, and the /boot/kernel and /boot/initramfs symlinks.

import { imageFs } from '../seam/image-fs.ts';
import { findImageKernel } from '../boot/kernel.ts';
import { gentooError } from './errors.ts';

/** Where genkernel 4 keeps its default linuxrc inside the image. */
export const GENKERNEL_LINUXRC = '/usr/share/genkernel/defaults/linuxrc';
/**
 * genkernel 4's generic x86_64 kernel configs, the base the fragment is
 * applied to: the first that exists, in the order genkernel itself tries them.
 */
export const GENKERNEL_BASE_CONFIGS = ['/usr/share/genkernel/arch/x86_64/generated-config', '/usr/share/genkernel/arch/x86_64/kernel-config'];
/**
 * The hook goes right before this line of genkernel 4's linuxrc: by then udev
 * has run, modules are loaded and ${NEW_ROOT} exists, and genkernel has not
 * yet started looking for a root device.
 */
export const LINUXRC_ANCHOR = '# Determine root device';
/** Where the boot module sits in the initramfs (same path as in the Debian initramfs). */
export const BOOT_MODULE_PATH = '/lib/hn-boot.sh';

export const HOOK_BEGIN = '# >>> hnforge boot hook (inserted at build time by hnforge gentoo-kernel)';
export const HOOK_END = '# <<< hnforge boot hook';

/** Where the shutdown script of the exitrd sits in the initramfs (same path as in the Debian initramfs). */
export const SHUTDOWN_PATH = '/lib/hn-shutdown';

/**
 * The hook: the boot module's hn_prepare_root does everything up to the image
 * mounted at ${NEW_ROOT} with the host partition moved into it (the same entry
 * point the Debian /init calls), hn_setup_exitrd prepares systemd's shutdown
 * initramfs, and the root is handed over the way the Debian /init does it, so
 * genkernel's own root search never runs. A boot module that provides
 * hn_genkernel_main gets the whole job instead.
 */
export function linuxrcHook(modulePath: string = BOOT_MODULE_PATH): string {
  return [
    HOOK_BEGIN,
    `if [ -r ${modulePath} ]; then`,
    `\tHN_BOOT_SH=${modulePath}`,
    `\t. ${modulePath}`,
    '\tif command -v hn_genkernel_main >/dev/null 2>&1; then',
    '\t\thn_genkernel_main "${NEW_ROOT}"',
    '\telif command -v hn_prepare_root >/dev/null 2>&1; then',
    '\t\thn_prepare_root "${NEW_ROOT}"',
    `\t\thn_setup_exitrd ${SHUTDOWN_PATH} || hn_log "no exitrd: shutdown will leave the host partition dirty"`,
    '\t\t# genkernel started udevd; it must not outlive the initramfs.',
    '\t\tudevadm control --exit >/dev/null 2>&1',
    '\t\tfor hn_api in /dev /proc /sys /run; do',
    '\t\t\tmount --move "$hn_api" "${NEW_ROOT}$hn_api" 2>/dev/null || umount -l "$hn_api"',
    '\t\tdone',
    '\t\texec switch_root "${NEW_ROOT}" "${REAL_INIT:-/sbin/init}"',
    '\t\thn_fail "switch_root to the image failed"',
    '\telse',
    `\t\tbad_msg 'hnforge: ${modulePath} has no hn_prepare_root; falling back to genkernel root detection'`,
    '\tfi',
    'else',
    `\tbad_msg 'hnforge: ${modulePath} is missing from this initramfs; falling back to genkernel root detection'`,
    'fi',
    HOOK_END,
  ].join('\n');
}

/**
 * Inserts `hook` before the single line equal to `anchor` (whitespace-trimmed).
 * Refuses a linuxrc without the anchor, with it twice, or already patched: any
 * of those means genkernel changed and the hook must be re-placed by a person.
 */
export function patchLinuxrc(original: string, opts: { anchor?: string; hook?: string; source?: string } = {}): string {
  const anchor = opts.anchor ?? LINUXRC_ANCHOR;
  const hook = opts.hook ?? linuxrcHook();
  const source = opts.source ?? 'linuxrc';
  if (original.includes(HOOK_BEGIN)) {
    throw gentooError('EGENTOO_LINUXRC_ANCHOR', `${source} already contains the hnforge hook; start from genkernel's unmodified linuxrc`);
  }
  const lines = original.split('\n');
  const at = lines.flatMap((l, i) => (l.trim() === anchor ? [i] : []));
  if (at.length !== 1) {
    throw gentooError(
      'EGENTOO_LINUXRC_ANCHOR',
      `${source}: the anchor line '${anchor}' occurs ${at.length} times (expected once); genkernel's linuxrc changed, update LINUXRC_ANCHOR in pipeline/gentoo/kernel.ts`,
    );
  }
  lines.splice(at[0]!, 0, hook, '');
  return lines.join('\n');
}

/** Parses CONFIG_X=y|m|"str"|n and "# CONFIG_X is not set" lines. */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const set = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (set) {
      out.set(set[1]!, set[2]!);
      continue;
    }
    const unset = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/.exec(line);
    if (unset) out.set(unset[1]!, 'n');
  }
  return out;
}

/** The base config with the fragment appended: kconfig keeps the last assignment of a symbol. */
export function mergeKernelConfig(base: string, fragment: string): string {
  return `${base.replace(/\n*$/, '\n')}\n# ---- hnforge kernel fragment ----\n${fragment.replace(/\n*$/, '\n')}`;
}

/** An option the final kernel config must have: `y` built in, `m` a module or built in. */
export interface RequiredOption {
  option: string;
  value: 'y' | 'm';
  /** The "## " header above it in the list: what needs it. */
  group: string;
}

/** The filesystem option each host-partition filesystem of the profile (boot.hostpartFilesystems) needs. */
export const FILESYSTEM_OPTIONS: Record<'ext4' | 'btrfs', string> = { ext4: 'CONFIG_EXT4_FS', btrfs: 'CONFIG_BTRFS_FS' };

/**
 * Reads the list of required options (pipeline/gentoo/kernel/required.config):
 * `CONFIG_X=y|m` lines grouped under `## <what needs them>` headers. Anything
 * else that is not blank or a `#` comment is an error, so a typo cannot drop
 * a requirement silently.
 */
export function parseRequiredOptions(text: string, source = 'required.config'): RequiredOption[] {
  const out: RequiredOption[] = [];
  let group = 'required';
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line.startsWith('## ')) {
      group = line.slice(3).trim();
      return;
    }
    if (line === '' || line.startsWith('#')) return;
    const m = /^(CONFIG_[A-Z0-9_]+)=([ym])$/.exec(line);
    if (!m) throw gentooError('EGENTOO_PROFILE', `${source}:${i + 1}: '${line}' is not CONFIG_<NAME>=y or =m`);
    if (out.some((o) => o.option === m[1])) throw gentooError('EGENTOO_PROFILE', `${source}:${i + 1}: ${m[1]} is listed twice`);
    out.push({ option: m[1]!, value: m[2] as 'y' | 'm', group });
  });
  return out;
}

/** The list plus the host-partition filesystems of the profile (as modules at least) that it does not name. */
export function requiredWithFilesystems(list: RequiredOption[], filesystems: ReadonlyArray<'ext4' | 'btrfs'>): RequiredOption[] {
  const extra = filesystems
    .map((fs) => FILESYSTEM_OPTIONS[fs])
    .filter((o) => !list.some((r) => r.option === o))
    .map((option): RequiredOption => ({ option, value: 'm', group: 'host partition filesystems (profile boot.hostpartFilesystems)' }));
  return [...list, ...extra];
}

const satisfies = (want: string, got: string): boolean =>
  want === 'y' ? got === 'y' : want === 'm' ? got === 'm' || got === 'y' : want === 'n' ? got === 'n' : got === want;

/**
 * Compares the fragment and the required options with the final config.
 * `wrong`: the kernel knows a fragment option but it is set otherwise (=y
 * needs y; =m accepts m or y; "is not set" needs n; strings and numbers must
 * match). `missing`: a required option is off or absent (each names what
 * needs it). `absent`: a fragment option that is not required and that the
 * final config does not mention at all (unknown to this kernel version),
 * reported as a warning. A required option that fails is listed once, under
 * `missing`.
 */
export function checkKernelOptions(
  fragment: string,
  finalConfig: string,
  required: RequiredOption[] = [],
): { wrong: string[]; absent: string[]; missing: string[] } {
  const want = parseKernelConfig(fragment);
  const have = parseKernelConfig(finalConfig);
  const failed = new Set<string>();
  const wrong: string[] = [];
  const absent: string[] = [];
  const missing: string[] = [];
  for (const r of required) {
    const got = have.get(r.option);
    if (got === undefined || !satisfies(r.value, got)) {
      failed.add(r.option);
      missing.push(`${r.option}=${r.value} (${got === undefined ? 'absent' : got === 'n' ? 'not set' : `got ${got}`}; needed for ${r.group})`);
    }
  }
  for (const [key, value] of want) {
    if (failed.has(key)) continue;
    const got = have.get(key);
    if (got === undefined) {
      if (value !== 'n') absent.push(`${key}=${value}`);
      continue;
    }
    if (!satisfies(value, got)) wrong.push(`${key}=${value} (got ${got === 'n' ? 'not set' : got})`);
  }
  return { wrong, absent, missing };
}

export interface KernelOutputs {
  kernel: string;
  initramfs: string;
  config?: string;
  version: string;
}

/**
 * Finds what genkernel installed in <root>/boot: the kernel the image boots
 * (pipeline/boot/kernel.ts, the one rule every base uses) and its initramfs,
 * initramfs-<KV>.img (the name hnforge asks for) or genkernel 3's
 * initramfs-genkernel-<arch>-<KV>.
 */
export async function findKernelOutputs(root: string): Promise<KernelOutputs> {
  const image = imageFs(root);
  const k = await findImageKernel(image).catch(() => {
    throw gentooError('EGENTOO_KERNEL_OUTPUT', 'genkernel finished but /boot holds no vmlinuz-* kernel; see the stage log for genkernel errors');
  });
  const names = await image.list('/boot');
  const initramfs = [`initramfs-${k.version}.img`, `initramfs-genkernel-x86_64-${k.version}`].find((n) => names.includes(n));
  if (!initramfs) throw gentooError('EGENTOO_KERNEL_OUTPUT', `genkernel built ${k.file} but no initramfs-${k.version}.img; see the stage log`);
  return { kernel: k.file, initramfs, version: k.version };
}
