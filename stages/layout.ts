// The node's own layout inside the image (ARCHITECTURE.md, "node layout"):
// fstab as the seed gives it, /data0, the mount points, a network set-up that
// never makes boot wait for a network, and the /boot/kernel symlink.

import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { HnError } from '../pipeline/errors.ts';
import type { StageDef } from '../pipeline/stage.ts';

/**
 * The seed's two lines, with two changes the boot chain needs: a line for / so
 * systemd remounts the image read-write (GRUB passes `ro`, and with no / line
 * nothing would), and pass 0 for the host partition, which the initramfs has
 * already mounted read-write (a second fsck of a mounted filesystem is what
 * the boot chain must not do).
 */
export function fstab(image: { label: string }): string {
  return [
    '# hn-root.img is loop-mounted from the host partition by the initramfs.',
    `LABEL=${image.label} / auto defaults,noatime 0 0`,
    'LABEL=EFI-BOOT /boot/loader vfat noauto,noatime 1 2',
    'LABEL=hostpart /hostpart auto noatime 0 0',
    '',
  ].join('\n');
}

// DHCP on every wired interface; the node's instantiation rewrites this per host.
const NETWORK = ['[Match]', 'Name=en* eth*', '', '[Network]', 'DHCP=yes', '', '[DHCPv4]', 'ClientIdentifier=mac', ''].join('\n');

// Host keys are scrubbed from the image; each node makes its own on first boot.
const SSH_KEYGEN_UNIT = [
  '[Unit]',
  'Description=Generate this node\'s SSH host keys',
  'ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key',
  'Before=ssh.service sshd.service',
  '',
  '[Service]',
  'Type=oneshot',
  'ExecStart=/usr/bin/ssh-keygen -A',
  '',
  '[Install]',
  'WantedBy=multi-user.target',
  '',
].join('\n');

async function replaceSymlink(target: string, path: string) {
  await rm(path, { force: true });
  await symlink(target, path);
}

/** Newest file in /boot matching `prefix`-<version> (by version order). */
export async function newestBootFile(root: string, prefix: string): Promise<string | undefined> {
  const files = (await readdir(join(root, 'boot')).catch(() => [] as string[])).filter((f) => f.startsWith(prefix));
  return files.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1);
}

export const layout: StageDef = {
  name: 'layout',
  title: 'Lay out the node (fstab, /data0, mount points, network)',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  inputs: (ctx) => ({ layout: ctx.profile.layout, fstab: fstab(ctx.profile.image), network: NETWORK, unit: SSH_KEYGEN_UNIT }),
  plan: () => ['write /etc/fstab, /etc/hostname, /etc/systemd/network/50-wired.network', 'ln -s /hostpart/data /data0', 'ln -s vmlinuz-<version> /boot/kernel'],
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const at = (p: string) => join(root, p);
    for (const dir of ctx.profile.layout.directories) await mkdir(at(dir), { recursive: true });
    await writeFile(at('etc/fstab'), fstab(ctx.profile.image));
    await writeFile(at('etc/hostname'), `${ctx.profile.layout.hostname}\n`);
    await replaceSymlink('/hostpart/data', at('data0'));

    const systemdDir = at('etc/systemd/system');
    await mkdir(at('etc/systemd/network'), { recursive: true });
    await writeFile(at('etc/systemd/network/50-wired.network'), NETWORK);
    await mkdir(join(systemdDir, 'multi-user.target.wants'), { recursive: true });
    await replaceSymlink('/lib/systemd/system/systemd-networkd.service', join(systemdDir, 'multi-user.target.wants/systemd-networkd.service'));
    // Nothing on a node may wait for "network online": measured 147 s instead of 38 s to boot when it did.
    await replaceSymlink('/dev/null', join(systemdDir, 'systemd-networkd-wait-online.service'));
    await writeFile(join(systemdDir, 'hn-ssh-keygen.service'), SSH_KEYGEN_UNIT);
    await replaceSymlink('/etc/systemd/system/hn-ssh-keygen.service', join(systemdDir, 'multi-user.target.wants/hn-ssh-keygen.service'));

    const kernel = (await newestBootFile(root, 'vmlinuz-')) ?? (await newestBootFile(root, 'kernel-'));
    if (!kernel) throw new HnError('ENOKERNEL', 'no kernel in the image\'s /boot; add a kernel package (linux-image-amd64) to the profile');
    await replaceSymlink(kernel, at('boot/kernel'));
    io.log(`/boot/kernel -> ${kernel}`);
  },
};
