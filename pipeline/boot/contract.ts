// The boot contract: every name the factory, GRUB, the initramfs and the node's
// own tools must agree on. This file is its one home; boot/hn-boot.sh carries a
// generated copy of the shell-facing part (`npm run generate`), and a test
// fails when the copy and this file differ.

/** Filesystem labels GRUB and the initramfs search for. */
export const LABELS = {
  efi: 'EFI-BOOT',
  hostpart: 'hostpart',
} as const;

/** Files on the host partition, relative to its root (the rotation's state). */
export const HOSTPART_FILES = {
  current: 'hn-root.img',
  next: 'hn-root-new.img',
  nextSidecar: 'hn-root-new.img.sha256',
  previous: 'hn-root-old.img',
  broken: 'hn-root-broken.img',
  revertFlag: 'system-revert',
  bootLog: 'hn-boot.log',
  /** The updater's download of the compressed artifact, kept across runs so the next one resumes it. */
  nextDownload: 'hn-root-new.img.zst.part',
  /** The updater's decompressed image before it verified; renamed to `next` only when whole. */
  nextPartial: 'hn-root-new.img.part',
  /** One line per updater decision. */
  updateLog: 'hn-update.log',
  /** Held (a directory with the holder's pid and boot id) while hn-update runs. */
  updateLock: 'hn-update.lock',
  /**
   * A trial is running: hn-root.img is unconfirmed. Written by the initramfs when it
   * promotes an image (before the rename), removed by hn-health's confirmation or by a
   * revert. GRUB `source`s it (hn_trial_id, hn_trial_budget) to count trial boots.
   */
  trial: 'hn-trial.cfg',
  /** One line per trial event (promotion, each trial boot, health result, confirmation, revert). */
  trialLog: 'hn-trial.log',
  /** The kernel/initramfs identity mismatch state: `pending <pair>` or `settled <pair>`. */
  bootMismatch: 'hn-boot.mismatch',
} as const;

/** Files on the EFI-BOOT partition (relative to its root). */
export const EFI_FILES = {
  grubConfig: 'grub/grub.cfg',
  /**
   * GRUB's environment block (1024 bytes, rewritten in place by save_env): the trial
   * boot count. Written only by GRUB, before it loads a kernel.
   */
  grubEnv: 'grub/grubenv',
} as const;

/** GRUB variables of the trial count (grub.cfg, hn-trial.cfg, grubenv). */
export const GRUB_VARS = {
  /** Sourced from hn-trial.cfg: the trial's id. */
  trialId: 'hn_trial_id',
  /** Sourced from hn-trial.cfg: the budget as a string of 'x' (GRUB has no arithmetic). */
  trialBudget: 'hn_trial_budget',
  /** In grubenv: the id of the trial the count belongs to. */
  trialSeen: 'hn_trial_seen',
  /** In grubenv: one 'x' per trial boot GRUB started. */
  trialTries: 'hn_trial_tries',
  /** Exported to the entries: the hn.trial=... kernel argument. */
  trialArg: 'hn_trial_arg',
} as const;

/** Values of the hn.trial kernel parameter GRUB passes (or a string of 'x', one per trial boot so far). */
export const TRIAL_STATES = {
  /** No trial running; GRUB found its environment block (trials can be counted). */
  off: 'off',
  /** GRUB cannot count (no grubenv on EFI-BOOT, or save_env failed). */
  noGrubEnv: 'nogrubenv',
  /** The budget is spent: GRUB booted hn-root-old.img (when it exists). */
  spent: 'spent',
} as const;

/** Trial defaults (the profile's boot.trial section overrides them). */
export const TRIAL_DEFAULTS = {
  /** Boots a new image gets to confirm itself before GRUB goes back to the previous one. */
  budget: 2,
  /** Seconds from the initramfs to hn-health's confirmation before the watchdog reboots. */
  timeoutSec: 600,
  /** Highest budget (the count is a string of 'x' in a 1 KiB environment block). */
  maxBudget: 9,
} as const;

/** Health checks hn-health knows (profile: health.checks). */
export const HEALTH_CHECKS = ['hostpart', 'data0', 'docker', 'lxc', 'qemu', 'warehouse'] as const;
export type HealthCheck = (typeof HEALTH_CHECKS)[number];
/** What a profile that declares nothing gets (warehouse only where the profile declares it). */
export const DEFAULT_HEALTH_CHECKS: readonly HealthCheck[] = ['hostpart', 'data0', 'docker', 'lxc', 'qemu'];

/** hn-health's exit codes. */
export const HEALTH_EXIT = {
  ok: 0,
  /** A declared check failed. */
  failed: 1,
  usage: 2,
  /** A trial check failed and this init system cannot reboot for it: the caller must reboot. */
  rebootNeeded: 3,
} as const;

/** The checksum sidecar: `key=value` lines, unknown keys ignored by readers. */
export const SIDECAR = {
  format: 'hnforge-sidecar-1',
  /** Suffix of a sidecar beside its image (hn-root.img.sha256). */
  suffix: '.sha256',
} as const;

/** Kernel parameters the initramfs reads (names only; values are per boot). */
export const KERNEL_PARAMS = {
  realRoot: 'real_root',
  hostpart: 'raw_loop_root_host_partition',
  hostpartTimeout: 'hn.hostpart_timeout',
  onFail: 'hn.onfail',
  verify: 'hn.verify',
  testStopAfter: 'hn.test.stop_after',
  /** Set by GRUB on every entry: a TRIAL_STATES value or the trial boots so far ('x' per boot). */
  trial: 'hn.trial',
  /** From the image's kernel arguments (profile boot.trial.budget): the budget a promotion gives the new image. */
  trialBudget: 'hn.trial_budget',
  /** From the image's kernel arguments (profile boot.trial.timeoutSec): the watchdog of a trial boot. */
  trialTimeout: 'hn.trial_timeout',
} as const;

/**
 * The kernel command line a profile gets unless it says otherwise: the last
 * console= is /dev/console, so the initramfs and systemd write to the serial
 * port a server's serial-over-LAN shows, and the screen keeps the kernel's messages.
 */
export const DEFAULT_KERNEL_ARGS: readonly string[] = ['console=tty0', 'console=ttyS0,115200n8'];

/** Paths inside the image and the initramfs. */
export const IMAGE_PATHS = {
  kernel: '/boot/kernel',
  initramfs: '/boot/initramfs',
  /** GRUB `source`s this from the image it boots: `set hn_kernel_args='...'` (the profile's kernel command line). */
  grubKernelArgs: '/boot/hn-kernel-args.cfg',
  bootModule: '/lib/hn-boot.sh',
  initramfsId: '/etc/hn-initramfs-id',
  bootId: '/boot/hn-boot-id',
  hostpartMount: '/hostpart',
  /** The image's release identity, shell-sourceable: HN_VERSION, HN_PROFILE, HN_BASE, HN_BUILT. */
  hnRelease: '/etc/hn-release',
  /** Carries IMAGE_ID (the profile) and IMAGE_VERSION; a regular file, never a link to /usr/lib. */
  osRelease: '/etc/os-release',
  /** Binary OpenPGP keyring (gpgv --keyring) of the key that signs this image's store; absent in an unsigned build. */
  publishingKeyring: '/etc/hnforge/keyring.gpg',
  /** hn-update's configuration, written from the profile's `update` section. */
  updateConf: '/etc/hn-update.conf',
  /** hn-health's configuration (the profile's health section): HN_HEALTH_CHECKS, HN_HEALTH_WAIT. */
  healthConf: '/etc/hn-health.conf',
  /** State the initramfs hands to the running system in /run (a tmpfs): trial, watchdog device. */
  bootRunDir: '/run/hn-boot',
} as const;

/** hn-update's exit codes (the node's scripts and monitoring read them). */
export const UPDATE_EXIT = {
  ok: 0,
  /** --check only: the store has nothing newer than the running image. */
  upToDate: 1,
  usage: 2,
  /** The store could not be read, or a download failed. */
  store: 3,
  /** A signature, checksum or size did not verify: nothing was staged. */
  verify: 4,
  /** The host partition cannot hold the new image beside the current and old ones. */
  space: 5,
  /** Another hn-update holds the lock. */
  locked: 6,
} as const;

/**
 * Node identity (hn-instantiate): where a node's record lives and what it holds.
 * The state repository is `<warehouse>/<profile's instantiate.statePath>/`, with a
 * copy on the host partition (`<hostpart>/<IDENTITY.hostpartState>/`) used
 * while the cluster storage is not mounted; both hold `nodes/<id>/` (one
 * record per node) and `cluster/` (what all nodes share).
 */
export const IDENTITY = {
  warehouseMount: '/warehouse',
  hostpartState: 'data/hn-state',
  nodesDir: 'nodes',
  clusterDir: 'cluster',
  /** Written by the build from the profile's `instantiate` section. */
  conf: '/etc/hn-instantiate.conf',
  /** One line per decision (identity source, sync, conflicts, fallbacks), in the record and on the host partition. */
  recordLog: 'log',
  hostpartLog: 'hn-instantiate.log',
  /** The cluster's XtreemFS capability secret (MRC and OSD of every node must agree), in cluster/. */
  xtreemfsSecret: 'xtreemfs.secret',
  networkFile: '/etc/systemd/network/50-hn-node.network',
  xtreemfsConfigDir: '/etc/xos/xtreemfs',
  puppetConf: '/etc/puppetlabs/puppet/puppet.conf',
} as const;

/** hn-instantiate's exit codes. */
export const INSTANTIATE_EXIT = {
  ok: 0,
  /** The node applied a generated identity for a record file that was invalid (the record's log says which). */
  fallback: 1,
  usage: 2,
  /** Nothing identifies the node (no DMI UUID, serial or physical NIC), or a write failed. */
  failed: 3,
} as const;

/**
 * The node record's files: each key with whether it is required and the
 * extended regular expression (grep -E) its value must match. The one schema:
 * hn-instantiate carries a generated copy, `hnforge node` reads this one.
 */
export const NODE_RECORD_SCHEMA: Record<string, Record<string, { required: boolean; ere: string; doc: string }>> = {
  'node.conf': {
    id: { required: true, ere: '^([0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|serial-[a-z0-9._-]{1,64}|mac-[0-9a-f]{12})$', doc: 'the node id: DMI product UUID (lowercase), serial-<serial> or mac-<lowest physical MAC>' },
    id_source: { required: false, ere: '^(dmi-uuid|serial|mac|operator)$', doc: 'what the id was read from' },
    hostname: { required: true, ere: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', doc: 'host name (one DNS label)' },
    domain: { required: false, ere: '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', doc: 'DNS domain; the FQDN is hostname.domain' },
    created: { required: false, ere: '^[0-9TZ:.+-]{1,40}$', doc: 'when the record was made' },
  },
  'network.conf': {
    mode: { required: true, ere: '^(dhcp|static)$', doc: 'dhcp, or static with address' },
    match: { required: false, ere: '^[A-Za-z0-9*?:._ -]{1,200}$', doc: 'systemd-networkd [Match] Name= (default: en* eth*)' },
    address: { required: false, ere: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$', doc: 'IPv4 address with prefix length (static)' },
    gateway: { required: false, ere: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$', doc: 'IPv4 default gateway (static)' },
    dns: { required: false, ere: '^[0-9.: ]{1,200}$', doc: 'resolvers, space-separated' },
  },
  'machine-id': {
    // A file of one line: the value itself (systemd's format), validated as the key `machine_id`.
    machine_id: { required: true, ere: '^[0-9a-f]{32}$', doc: '/etc/machine-id: 32 lowercase hex digits' },
  },
  'xtreemfs.conf': {
    dir_uuid: { required: true, ere: '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$', doc: 'UUID of this node\'s XtreemFS DIR' },
    mrc_uuid: { required: true, ere: '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$', doc: 'UUID of this node\'s MRC' },
    osd_uuid: { required: true, ere: '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$', doc: 'UUID of this node\'s OSD' },
  },
  'puppet.conf': {
    certname: { required: true, ere: '^[a-z0-9.-]{1,253}$', doc: 'Puppet certname (default: the FQDN)' },
  },
};

/** SSH host key types a record holds (ssh_host_<type>_key and .pub; the private file 0600). */
export const NODE_SSH_KEY_TYPES = ['ed25519', 'rsa', 'ecdsa'] as const;

/** The constants hn-instantiate adds to the boot contract's. */
export function identityShellConstants(): [string, string][] {
  return [
    ['HN_WAREHOUSE', IDENTITY.warehouseMount],
    ['HN_HP_STATE', IDENTITY.hostpartState],
    ['HN_NODES_DIR', IDENTITY.nodesDir],
    ['HN_CLUSTER_DIR', IDENTITY.clusterDir],
    ['HN_INSTANTIATE_CONF', IDENTITY.conf],
    ['HN_RECORD_LOG', IDENTITY.recordLog],
    ['HN_INSTANTIATE_LOG', IDENTITY.hostpartLog],
    ['HN_XTREEMFS_SECRET', IDENTITY.xtreemfsSecret],
    ['HN_NETWORK_FILE', IDENTITY.networkFile],
    ['HN_XTREEMFS_CONFIG_DIR', IDENTITY.xtreemfsConfigDir],
    ['HN_PUPPET_CONF', IDENTITY.puppetConf],
    ['HN_SSH_KEY_TYPES', NODE_SSH_KEY_TYPES.join(',')],
    ...Object.entries(INSTANTIATE_EXIT).map(([name, code]): [string, string] => [`HN_INST_EXIT_${name.toUpperCase()}`, String(code)]),
  ];
}

/** The record schema as shell data: one `file key required|optional ERE` line per key. */
export function recordSchemaLines(): string[] {
  const lines: string[] = [];
  for (const [file, keys] of Object.entries(NODE_RECORD_SCHEMA)) {
    for (const [key, k] of Object.entries(keys)) {
      if (/['\s]/.test(k.ere.replace(/ /g, ''))) throw new Error(`record schema ${file} ${key}: an ERE may hold no quote or whitespace but a space`);
      lines.push(`${file} ${key} ${k.required ? 'required' : 'optional'} ${k.ere}`);
    }
  }
  return lines;
}

/** The shell constants hn-boot.sh needs, in the order they are written. */
export function shellConstants(): [string, string][] {
  return [
    ['HN_CUR', HOSTPART_FILES.current],
    ['HN_NEW', HOSTPART_FILES.next],
    ['HN_SIDECAR', HOSTPART_FILES.nextSidecar],
    ['HN_OLD', HOSTPART_FILES.previous],
    ['HN_BROKEN', HOSTPART_FILES.broken],
    ['HN_FLAG', HOSTPART_FILES.revertFlag],
    ['HN_LOG', HOSTPART_FILES.bootLog],
    ['HN_SIDECAR_FORMAT', SIDECAR.format],
    ['HN_HOSTPART_LABEL', LABELS.hostpart],
    ['HN_KP_REAL_ROOT', KERNEL_PARAMS.realRoot],
    ['HN_KP_HOSTPART', KERNEL_PARAMS.hostpart],
    ['HN_KP_TIMEOUT', KERNEL_PARAMS.hostpartTimeout],
    ['HN_KP_ONFAIL', KERNEL_PARAMS.onFail],
    ['HN_KP_VERIFY', KERNEL_PARAMS.verify],
    ['HN_KP_STOP_AFTER', KERNEL_PARAMS.testStopAfter],
    ['HN_DEFAULT_BOOT_SH', IMAGE_PATHS.bootModule],
    ['HN_DEFAULT_ID_FILE', IMAGE_PATHS.initramfsId],
    ['HN_DEFAULT_HP', IMAGE_PATHS.hostpartMount],
    ['HN_DOWNLOAD', HOSTPART_FILES.nextDownload],
    ['HN_PARTIAL', HOSTPART_FILES.nextPartial],
    ['HN_UPDATE_LOG', HOSTPART_FILES.updateLog],
    ['HN_UPDATE_LOCK', HOSTPART_FILES.updateLock],
    ['HN_RELEASE_FILE', IMAGE_PATHS.hnRelease],
    ['HN_DEFAULT_KEYRING', IMAGE_PATHS.publishingKeyring],
    ['HN_UPDATE_CONF', IMAGE_PATHS.updateConf],
    ['HN_TRIAL', HOSTPART_FILES.trial],
    ['HN_TRIAL_LOG', HOSTPART_FILES.trialLog],
    ['HN_MISMATCH', HOSTPART_FILES.bootMismatch],
    ['HN_KP_TRIAL', KERNEL_PARAMS.trial],
    ['HN_KP_TRIAL_BUDGET', KERNEL_PARAMS.trialBudget],
    ['HN_KP_TRIAL_TIMEOUT', KERNEL_PARAMS.trialTimeout],
    ['HN_TRIAL_OFF', TRIAL_STATES.off],
    ['HN_TRIAL_NOGRUBENV', TRIAL_STATES.noGrubEnv],
    ['HN_TRIAL_SPENT', TRIAL_STATES.spent],
    ['HN_TRIAL_DEFAULT_BUDGET', String(TRIAL_DEFAULTS.budget)],
    ['HN_TRIAL_DEFAULT_TIMEOUT', String(TRIAL_DEFAULTS.timeoutSec)],
    ['HN_TRIAL_MAX_BUDGET', String(TRIAL_DEFAULTS.maxBudget)],
    ['HN_GRUB_TRIAL_ID', GRUB_VARS.trialId],
    ['HN_GRUB_TRIAL_BUDGET', GRUB_VARS.trialBudget],
    ['HN_HEALTH_CONF', IMAGE_PATHS.healthConf],
    ['HN_RUN_DIR', IMAGE_PATHS.bootRunDir],
    ...Object.entries(HEALTH_EXIT).map(([name, code]): [string, string] => [`HN_HEALTH_EXIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`, String(code)]),
    ...Object.entries(UPDATE_EXIT).map(([name, code]): [string, string] => [`HN_EXIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`, String(code)]),
  ];
}

/** Shell files (relative to the repository) that carry the generated block. */
export const SHELL_FILES_WITH_CONTRACT = ['boot/hn-boot.sh', 'boot/hn-update', 'boot/hn-instantiate', 'boot/hn-health', 'boot/hn-status'];

export const SHELL_BLOCK_BEGIN = '# BEGIN boot contract: generated from pipeline/boot/contract.ts by `npm run generate`; do not edit';
export const SHELL_BLOCK_END = '# END boot contract';

/** Shell files that carry the node identity constants and the record schema besides the boot contract. */
export const SHELL_FILES_WITH_IDENTITY = ['boot/hn-instantiate'];

/** The generated block of shell file `rel` (the boot contract; plus identity and schema for hn-instantiate). */
export function shellContractBlock(rel?: string): string {
  const safe = /^[\w.,/-]+$/;
  const identity = rel !== undefined && SHELL_FILES_WITH_IDENTITY.includes(rel);
  const constants = identity ? [...shellConstants(), ...identityShellConstants()] : shellConstants();
  const lines = constants.map(([name, value]) => {
    if (!safe.test(value)) throw new Error(`boot contract value for ${name} needs quoting: ${value}`);
    return `${name}=${value}`;
  });
  if (identity) lines.push(`HN_RECORD_SCHEMA='${recordSchemaLines().join('\n')}'`);
  return [SHELL_BLOCK_BEGIN, ...lines, SHELL_BLOCK_END].join('\n');
}

/** The generated block as it stands in a shell file, or undefined if the markers are missing. */
export function extractShellBlock(text: string): string | undefined {
  const begin = text.indexOf(SHELL_BLOCK_BEGIN);
  const end = text.indexOf(SHELL_BLOCK_END);
  if (begin < 0 || end < begin) return undefined;
  return text.slice(begin, end + SHELL_BLOCK_END.length);
}

export function withShellBlock(text: string, rel?: string): string {
  const current = extractShellBlock(text);
  if (current === undefined) throw new Error(`no '${SHELL_BLOCK_BEGIN}' ... '${SHELL_BLOCK_END}' block to replace`);
  return text.replace(current, () => shellContractBlock(rel));
}
