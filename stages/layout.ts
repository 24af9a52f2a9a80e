// The node's own layout inside the image (ARCHITECTURE.md, "node layout"):
// fstab as the seed gives it, /data0, the mount points, a network set-up that
// never makes boot wait for a network, and the /boot/kernel symlink.

import { need } from '../pipeline/context.ts';
import { IMAGE_PATHS, LABELS } from '../pipeline/boot/contract.ts';
import { grubKernelArgsFile, imageKernelArgs } from '../pipeline/boot/grub.ts';
import { findImageKernel } from '../pipeline/boot/kernel.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
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
    `LABEL=${LABELS.efi} /boot/loader vfat noauto,noatime 1 2`,
    `LABEL=${LABELS.hostpart} ${IMAGE_PATHS.hostpartMount} auto noatime 0 0`,
    '',
  ].join('\n');
}

// A safety net only: hn-instantiate writes each node's own network file
// (50-hn-node.network, which networkd reads first); if it could not run, every
// wired interface still gets DHCP. SSH host keys, hostname and machine-id are
// hn-instantiate's too (boot/hn-instantiate).
export const FALLBACK_NETWORK_FILE = 'etc/systemd/network/99-hn-fallback-dhcp.network';
const NETWORK = ['# Used only when hn-instantiate wrote no network file for this node.', '[Match]', 'Name=en* eth*', '', '[Network]', 'DHCP=yes', '', '[DHCPv4]', 'ClientIdentifier=mac', ''].join('\n');

export const layout: StageDef = {
  name: 'layout',
  needs: ['root'],
  provides: ['kernel'],
  title: 'Lay out the node (fstab, /data0, mount points, network)',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 3,
  inputs: (ctx) => ({ layout: ctx.profile.layout, fstab: fstab(ctx.profile.image), network: NETWORK, kernelArgs: grubKernelArgsFile(imageKernelArgs(ctx.profile.boot)) }),
  plan: () => [`write /etc/fstab, /etc/hostname (placeholder), /${FALLBACK_NETWORK_FILE}`, 'ln -s /hostpart/data /data0', 'ln -s vmlinuz-<version> /boot/kernel'],
  async run(ctx, io) {
    // Every path resolved inside the image: its own symlinks never lead the host's writes out of it.
    const image = imageFs(need(ctx, 'root'));
    for (const dir of ctx.profile.layout.directories) await image.mkdirp(dir);
    await image.write('etc/fstab', fstab(ctx.profile.image));
    await image.write('etc/hostname', `${ctx.profile.layout.hostname}\n`);
    await image.symlink('/hostpart/data', 'data0');

    const systemdDir = 'etc/systemd/system';
    await image.write(FALLBACK_NETWORK_FILE, NETWORK);
    await image.symlink('/lib/systemd/system/systemd-networkd.service', `${systemdDir}/multi-user.target.wants/systemd-networkd.service`);
    // Nothing on a node may wait for "network online": measured 147 s instead of 38 s to boot when it did.
    await image.symlink('/dev/null', `${systemdDir}/systemd-networkd-wait-online.service`);

    const kernel = await findImageKernel(image);
    await image.symlink(kernel.file, IMAGE_PATHS.kernel);
    io.log(`${IMAGE_PATHS.kernel} -> ${kernel.file}`);
    // The profile's kernel command line travels with the image: GRUB reads it before booting it.
    await image.write(IMAGE_PATHS.grubKernelArgs, grubKernelArgsFile(imageKernelArgs(ctx.profile.boot)));
    return { kernel };
  },
};
