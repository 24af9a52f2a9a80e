// One rule picks the kernel an image boots (pipeline/boot/kernel.ts), for both bases.
import { mkdtemp, mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findImageKernel } from '../../pipeline/boot/kernel.ts';
import { imageFs } from '../../pipeline/seam/image-fs.ts';

const dirs: string[] = [];
async function imageWith(files: Record<string, string | { link: string }>) {
  const root = await mkdtemp(join(tmpdir(), 'hnkernel-'));
  dirs.push(root);
  await mkdir(join(root, 'boot'));
  for (const [name, what] of Object.entries(files)) {
    if (typeof what === 'string') await writeFile(join(root, 'boot', name), what);
    else await symlink(what.link, join(root, 'boot', name));
  }
  return imageFs(root);
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('the kernel an image boots', () => {
  it('is the highest version in numeric order, whatever the modification times', async () => {
    const image = await imageWith({ 'vmlinuz-6.1.0-9-amd64': 'a', 'vmlinuz-6.1.0-10-amd64': 'b', 'config-6.1.0-11-amd64': 'c' });
    // The older kernel written last: a modification-time rule would pick it.
    await utimes(join(image.root, 'boot/vmlinuz-6.1.0-9-amd64'), new Date(), new Date(Date.now() + 60_000));
    expect(await findImageKernel(image)).toEqual({ file: 'vmlinuz-6.1.0-10-amd64', version: '6.1.0-10-amd64' });
  });
  it("knows genkernel 3's name and ignores symlinks (/boot/kernel itself, vmlinuz -> ...)", async () => {
    const image = await imageWith({ 'kernel-genkernel-x86_64-6.6.30-gentoo': 'k', 'vmlinuz-9.9': { link: 'kernel-genkernel-x86_64-6.6.30-gentoo' } });
    expect(await findImageKernel(image)).toEqual({ file: 'kernel-genkernel-x86_64-6.6.30-gentoo', version: '6.6.30-gentoo' });
  });
  it('no kernel: one line naming what to add', async () => {
    await expect(findImageKernel(await imageWith({ 'System.map-6.1': 'x' }))).rejects.toThrow(/no kernel in the image's \/boot.*linux-image-amd64/);
  });
});
