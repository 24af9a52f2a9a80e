// Everything that runs on a node (boot module, updater, health check,
// instantiation, status) lives in boot/ and is installed from this one list:
// by the Debian build (stages/node-tools.ts) and by the Gentoo node package
// (pipeline/gentoo/overlay.ts writes the list beside the files; the ebuild
// installs what it names). Both images get the same files at the same paths.

export interface NodeFile {
  /** Path in this repository. */
  source: string;
  /** Absolute path in the image. */
  target: string;
  mode: number;
  /** A systemd unit enabled by a link in <wantedBy>.wants/. */
  wantedBy?: string;
}

const UNIT_DIR = '/usr/lib/systemd/system';

export const NODE_FILES: readonly NodeFile[] = [
  // Sourced, not run: the initramfs's own module, kept in the image so the running system reads the same logic.
  { source: 'boot/hn-boot.sh', target: '/usr/lib/hnforge/hn-boot.sh', mode: 0o644 },
  { source: 'boot/hn-update', target: '/usr/sbin/hn-update', mode: 0o755 },
  { source: 'boot/units/hn-update.service', target: `${UNIT_DIR}/hn-update.service`, mode: 0o644 },
  { source: 'boot/units/hn-update.timer', target: `${UNIT_DIR}/hn-update.timer`, mode: 0o644, wantedBy: 'timers.target' },
  // The node's identity, early in every boot; synced again once /warehouse is mounted.
  { source: 'boot/hn-instantiate', target: '/usr/sbin/hn-instantiate', mode: 0o755 },
  { source: 'boot/units/hn-instantiate.service', target: `${UNIT_DIR}/hn-instantiate.service`, mode: 0o644, wantedBy: 'sysinit.target' },
  { source: 'boot/units/hn-instantiate-sync.service', target: `${UNIT_DIR}/hn-instantiate-sync.service`, mode: 0o644, wantedBy: 'warehouse.mount' },
  // Confirms a new image on its trial boot (boot/README.md, "Trial boots").
  { source: 'boot/hn-health', target: '/usr/sbin/hn-health', mode: 0o755 },
  { source: 'boot/units/hn-health.service', target: `${UNIT_DIR}/hn-health.service`, mode: 0o644, wantedBy: 'multi-user.target' },
  // Images, trial and last revert as the host partition says.
  { source: 'boot/hn-status', target: '/usr/sbin/hn-status', mode: 0o755 },
];

/** True for files systemd reads as units (the Gentoo package installs them with systemd_dounit). */
export const isUnit = (f: NodeFile): boolean => f.target.startsWith(`${UNIT_DIR}/`);

/**
 * The list as the Gentoo package reads it (files/node-files.list): one line
 * per file, `<octal mode> <target> <name in files/>`, names without spaces.
 */
export function nodeFilesList(files: readonly NodeFile[] = NODE_FILES): string {
  return files.map((f) => `${f.mode.toString(8).padStart(4, '0')} ${f.target} ${fileNameOf(f)}`).join('\n') + '\n';
}

export const fileNameOf = (f: NodeFile): string => f.source.slice(f.source.lastIndexOf('/') + 1);
