// Which kernel an image boots: one rule for every base and every stage that
// asks (layout points /boot/kernel at it, the Debian initramfs is built for
// it, the Gentoo kernel stage checks that genkernel produced it).

import { HnError } from '../errors.ts';
import type { ImageFs } from '../seam/image-fs.ts';

export interface ImageKernel {
  /** File name in the image's /boot. */
  file: string;
  version: string;
}

// Debian packages and genkernel 4 install vmlinuz-<version>; genkernel 3 named it kernel-genkernel-<arch>-<version>.
const KERNEL_NAME = /^(?:vmlinuz-|kernel-genkernel-x86_64-)(.+)$/;

const byVersion = (a: ImageKernel, b: ImageKernel) => a.version.localeCompare(b.version, undefined, { numeric: true });

/**
 * The highest version (in numeric order: 6.1.10 after 6.1.9) among the regular
 * kernel files in the image's /boot. Version order, not modification time: an
 * image holding two kernels boots the same one however it was assembled.
 */
export async function findImageKernel(image: ImageFs): Promise<ImageKernel> {
  const kernels: ImageKernel[] = [];
  for (const file of await image.list('/boot')) {
    const m = KERNEL_NAME.exec(file);
    if (m && (await image.lstat(`/boot/${file}`))?.isFile()) kernels.push({ file, version: m[1]! });
  }
  const newest = kernels.sort(byVersion).at(-1);
  if (!newest) throw new HnError('ENOKERNEL', "no kernel in the image's /boot (vmlinuz-<version>); add a kernel package (linux-image-amd64) to the profile");
  return newest;
}
