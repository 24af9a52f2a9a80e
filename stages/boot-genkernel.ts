// The Gentoo side of the boot chain: genkernel builds the initramfs, with
//   --linuxrc=<patched linuxrc>       genkernel's own linuxrc (read at build time
//                                      from the genkernel installed in the image)
//                                      with the hnforge hook inserted at two anchors
//   --initramfs-overlay=<dir>         adds /lib/hn-boot.sh and /lib/hn-shutdown
//                                      (new paths only: genkernel's cpio
//                                      de-duplication keeps the first copy of a path)
// No genkernel text is stored in this repository: the patch is computed from
// the installed file and fails loudly when an anchor is missing or ambiguous.
//
// The hook: when the kernel command line carries raw_loop_root_host_partition=,
// hn_prepare_root (boot/hn-boot.sh, the same function the Debian initramfs
// calls) mounts the image at ${NEW_ROOT} with the host partition moved into
// it, and genkernel's own "determine root device" block is skipped.

import { copyFile, mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { HnError } from '../pipeline/errors.ts';

/** genkernel 4.x linuxrc: the comment lines opening and closing its root-device loop. */
export const LINUXRC_ANCHORS = {
  begin: '# Determine root device',
  end: '# End determine root device',
} as const;

const HOOK_BEGIN = [
  '# >>> hnforge boot chain (stages/boot-genkernel.ts)',
  'HN_ROOT_DONE=',
  "if grep -q 'raw_loop_root_host_partition=' /proc/cmdline; then",
  '\t. /lib/hn-boot.sh',
  '\thn_prepare_root "${NEW_ROOT}"',
  '\thn_setup_exitrd /lib/hn-shutdown || hn_log "no exitrd: the host partition will need recovery after shutdown"',
  '\tHN_ROOT_DONE=1',
  '\tgot_good_root=1',
  'fi',
  'if [ -z "${HN_ROOT_DONE}" ]; then',
  '# <<< hnforge',
];
const HOOK_END = ['# >>> hnforge', 'fi', '# <<< hnforge'];

function lineIndexes(lines: string[], anchor: string): number[] {
  return lines.flatMap((l, i) => (l.trim() === anchor ? [i] : []));
}

/** Inserts the hook around genkernel's root-device block; throws if an anchor is missing or not unique. */
export function patchLinuxrc(linuxrc: string, source = 'linuxrc'): string {
  if (linuxrc.includes('hnforge boot chain')) throw new HnError('ELINUXRC', `${source} is already patched`);
  const lines = linuxrc.split('\n');
  const begin = lineIndexes(lines, LINUXRC_ANCHORS.begin);
  const end = lineIndexes(lines, LINUXRC_ANCHORS.end);
  for (const [name, found] of [['begin', begin], ['end', end]] as const) {
    if (found.length !== 1) {
      throw new HnError(
        'ELINUXRC',
        `${source}: anchor '${LINUXRC_ANCHORS[name]}' found ${found.length} times (expected once); this genkernel's linuxrc changed, update stages/boot-genkernel.ts`,
      );
    }
  }
  if (begin[0]! >= end[0]!) throw new HnError('ELINUXRC', `${source}: anchors out of order`);
  return [...lines.slice(0, begin[0]), ...HOOK_BEGIN, ...lines.slice(begin[0], end[0]! + 1), ...HOOK_END, ...lines.slice(end[0]! + 1)].join('\n');
}

export interface GenkernelBootFiles {
  /** Pass as --linuxrc=. */
  linuxrc: string;
  /** Pass as --initramfs-overlay=. */
  overlay: string;
}

/**
 * Writes the patched linuxrc and the overlay under `outDir`. `installedLinuxrc`
 * is genkernel's file inside the image (usually <root>/usr/share/genkernel/defaults/linuxrc).
 */
export async function prepareGenkernelBoot(repoDir: string, installedLinuxrc: string, outDir: string): Promise<GenkernelBootFiles> {
  const original = await readFile(installedLinuxrc, 'utf8').catch((e: unknown) => {
    throw new HnError('ELINUXRC', `cannot read genkernel's linuxrc at ${installedLinuxrc}; is sys-kernel/genkernel installed?`, { cause: e });
  });
  const linuxrc = join(outDir, 'linuxrc');
  const overlay = join(outDir, 'overlay');
  await mkdir(join(overlay, 'lib'), { recursive: true });
  await writeFile(linuxrc, patchLinuxrc(original, installedLinuxrc));
  await chmod(linuxrc, 0o755);
  await copyFile(join(repoDir, 'boot/hn-boot.sh'), join(overlay, 'lib/hn-boot.sh'));
  await copyFile(join(repoDir, 'boot/shutdown'), join(overlay, 'lib/hn-shutdown'));
  await chmod(join(overlay, 'lib/hn-shutdown'), 0o755);
  return { linuxrc, overlay };
}

/** genkernel arguments for the boot chain (the Gentoo kernel stage adds its own). */
export function genkernelBootArgs(files: GenkernelBootFiles): string[] {
  return [
    `--linuxrc=${files.linuxrc}`,
    `--initramfs-overlay=${files.overlay}`,
    '--busybox',
    '--btrfs',
    '--e2fsprogs',
  ];
}
