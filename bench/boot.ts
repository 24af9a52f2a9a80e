// Boot-chain timings under qemu (software emulation, UEFI), printed, not asserted:
// time from qemu start to userspace, and what the initramfs spends finding the
// host partition and rotating an update (renames: the target is under 1 s
// whatever the image size). Uses the test fixtures' small images.
//   npm run bench -- boot     (bin/hnforge-bench boot)
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { provision } from '../pipeline/provision.ts';
import { bootDisk, type BootResult } from '../pipeline/qemu.ts';
import { writeSidecar } from '../pipeline/boot/sidecar.ts';
import { buildTestImage, CACHE, copyDisk, putFiles, TEST_GRUB, type Disk } from '../test/boot/fixtures.ts';

await mkdir(CACHE, { recursive: true });
const work = await mkdtemp(join(CACHE, 'bench-boot-'));
try {
  const A = await buildTestImage({ workDir: work, id: 'A', flavour: 'cloud-amd64', out: join(work, 'A.img') });
  const B = await buildTestImage({ workDir: work, id: 'B', flavour: 'amd64', out: join(work, 'B.img') });
  await writeSidecar(B.path, join(work, 'B.img.sha256'), 'bench B');
  const p = await provision({
    disk: join(work, 'base.disk'), image: A.path, hostpartFs: 'ext4', yes: true, sizeBytes: 384 * 2 ** 20, grub: TEST_GRUB, workDir: work,
  });
  const base: Disk = { path: join(work, 'base.disk'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };

  const report = (name: string, r: BootResult) => {
    const all = r.lines.join('\n');
    const userspace = r.markers.filter((m) => m.line.startsWith('HN-USERSPACE')).map((m) => `${(m.atMs / 1000).toFixed(1)} s`);
    const hostpart = [...all.matchAll(/HN-TIME hostpart=(\S+)/g)].map((m) => m[1]);
    const rotate = [...all.matchAll(/HN-TIME rotate=(\S+)( \(update[^)]*\))?/g)].map((m) => `${m[1]}${m[2] ?? ''}`);
    const verify = [...all.matchAll(/HN-TIME verify=(\S+)/g)].map((m) => m[1]);
    console.log(`${name.padEnd(26)} total ${(r.durationMs / 1000).toFixed(1)} s | userspace at ${userspace.join(', ') || '-'} | hostpart found in ${hostpart.join(', ') || '-'} | verify ${verify.join(', ') || '-'} | rotation ${rotate.join(', ') || '-'}`);
  };

  const plain = await copyDisk(base, join(work, 'plain.disk'));
  report('plain boot', await bootDisk({ disk: plain.path, logFile: join(work, 'plain.log'), timeoutMs: 240_000 }));

  const update = await copyDisk(base, join(work, 'update.disk'));
  await putFiles(update, { '/hn-root-new.img': B.path, '/hn-root-new.img.sha256': join(work, 'B.img.sha256') });
  report(`update (${(B.bytes / 2 ** 20).toFixed(0)} MiB new image)`, await bootDisk({ disk: update.path, logFile: join(work, 'update.log'), timeoutMs: 360_000 }));
} finally {
  await rm(work, { recursive: true, force: true });
}
