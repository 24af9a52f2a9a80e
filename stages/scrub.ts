// Removes what identifies the build host or would make every node look the
// same (ARCHITECTURE.md section 6). Rules are data: paths relative to the
// image root, where the last component may hold a '*' wildcard.

import { need } from '../pipeline/context.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { StageDef } from '../pipeline/stage.ts';

/** Deleted (files or whole trees). */
export const SCRUB_REMOVE = [
  'etc/ssh/ssh_host_*',
  'var/lib/dbus/machine-id',
  'var/lib/systemd/random-seed',
  'var/lib/misc/random-seed',
  'var/lib/dhcp/*',
  'var/lib/dhcpcd/*',
  'var/lib/apt/lists/*',
  'var/cache/apt/*.bin',
  'var/cache/apt/archives/*.deb',
  'var/cache/debconf/*-old',
  'var/cache/distfiles/*',
  'var/cache/binpkgs/*',
  'var/cache/binhost/*',
  'var/log/portage/*',
  'var/lib/docker/*',
  'var/lib/containerd/*',
  'var/lib/lxc/*',
  'var/lib/libvirt/dnsmasq/*',
  'var/lib/xtreemfs/*',
  'etc/puppetlabs/puppet/ssl',
  'root/.bash_history',
  'root/.ssh',
  'tmp/*',
  'var/tmp/*',
  'var/backups/*',
  'var/crash/*',
  'var/spool/cron/crontabs/*',
  'var/mail/*',
  'etc/passwd-',
  'etc/shadow-',
  'etc/group-',
  'etc/gshadow-',
  'etc/dpkg/dpkg.cfg.d/99mmdebstrap',
  'etc/apt/apt.conf.d/99mmdebstrap',
  'etc/udev/rules.d/70-persistent-net.rules',
];

/** Emptied but kept (their presence matters). */
export const SCRUB_TRUNCATE = ['var/log/*.log', 'var/log/lastlog', 'var/log/wtmp', 'var/log/btmp', 'var/run/utmp'];

export async function scrubTree(root: string, log: (line: string) => void): Promise<number> {
  // Resolved inside the image: Debian's /var/run -> /run must lead to the image's /run, not the host's.
  const image = imageFs(root);
  let n = 0;
  for (const pattern of SCRUB_REMOVE) {
    for (const path of await image.glob(pattern)) {
      await image.remove(path);
      log(`removed ${path}`);
      n++;
    }
  }
  for (const pattern of SCRUB_TRUNCATE) {
    for (const path of await image.glob(pattern)) {
      // Only a regular file in its own right: a log name that is a symlink is left alone.
      if ((await image.lstat(path))?.isFile()) await image.truncate(path);
      n++;
    }
  }
  // Empty, not missing: systemd makes a fresh id on each node's first boot without treating
  // it as a factory reset (a missing file or 'uninitialized' would re-apply presets).
  await image.write('etc/machine-id', '');
  return n;
}

export const scrub: StageDef = {
  name: 'scrub',
  needs: ['root'],
  title: 'Scrub host identity',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 3,
  inputs: () => ({ remove: SCRUB_REMOVE, truncate: SCRUB_TRUNCATE }),
  plan: () => [`remove ${SCRUB_REMOVE.length} path patterns, empty ${SCRUB_TRUNCATE.length} logs, empty /etc/machine-id`],
  async run(ctx, io) {
    const n = await scrubTree(need(ctx, 'root'), io.log);
    io.progress(`${n} paths scrubbed`);
  },
};
