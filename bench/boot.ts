// Boot-chain timings under qemu (software emulation, UEFI), printed, not asserted:
// time from qemu start to userspace, and what the initramfs spends finding the
// host partition and rotating an update (renames: the target is under 1 s
// whatever the image size); then, per broken-image scenario of the rollback
// matrix (test/boot/rollback-images.ts), the way back: boots and seconds from
// the promotion of the broken image to userspace on the good one (goal: at
// most budget + 1 boots). Uses the test fixtures' small images.
//   npm run bench -- boot     (bin/hnforge-bench boot)
//   bin/hnforge-bench boot --rollback-only
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { provision } from '../pipeline/provision.ts';
import { bootDisk, type BootResult } from '../pipeline/qemu.ts';
import { writeSidecar } from '../pipeline/boot/sidecar.ts';
import pLimit from 'p-limit';
import { buildTestImage, CACHE, copyDisk, putFiles, TEST_GRUB, type Disk } from '../test/boot/fixtures.ts';
import { BROKEN, buildRollbackImages, TRIAL } from '../test/boot/rollback-images.ts';

const rollbackOnly = process.argv.includes('--rollback-only');

await mkdir(CACHE, { recursive: true });
const work = await mkdtemp(join(CACHE, 'bench-boot-'));
try {
  if (!rollbackOnly) {
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
  }

  // Rollback: promote each broken variant on a disk running A; count the boots
  // GRUB starts after the promotion and the seconds from the promotion (the
  // initramfs's "updated:" line) to A's userspace, in emulated (TCG) time.
  const rb = await buildRollbackImages(join(work));
  const rp = await provision({
    disk: join(work, 'rollback.disk'), image: rb.A.path, hostpartFs: 'ext4', yes: true, sizeBytes: 448 * 2 ** 20, grub: TEST_GRUB, workDir: work,
  });
  const rbase: Disk = { path: join(work, 'rollback.disk'), efiOffset: rp.efiOffsetBytes!, hostpartOffset: rp.hostpartOffsetBytes! };
  const limit = pLimit(Number(process.env.HNFORGE_TEST_BOOTS_IN_PARALLEL ?? 2));
  const rows = await Promise.all(BROKEN.map((kind) => limit(async () => {
    const d = await copyDisk(rbase, join(work, `rollback-${kind}.disk`));
    await putFiles(d, { '/hn-root-new.img': rb.broken[kind].image, '/hn-root-new.img.sha256': rb.broken[kind].sidecar });
    const r = await bootDisk({ disk: d.path, logFile: join(work, `rollback-${kind}.log`), timeoutMs: 900_000 });
    const promoted = r.markers.find((m) => m.line.includes('updated: hn-root-new.img is now hn-root.img'));
    const back = r.markers.find((m) => m.line.startsWith('HN-USERSPACE') && m.line.includes(' image=A '));
    const loads = r.lines.filter((l) => l.includes('HN-GRUB: loading'));
    const after = promoted ? r.lines.slice(r.lines.findIndex((l) => l.includes('updated: hn-root-new.img is now hn-root.img'))).filter((l) => l.includes('HN-GRUB: loading')).length : NaN;
    return { kind, ok: Boolean(promoted && back), boots: after, seconds: promoted && back ? (back.atMs - promoted.atMs) / 1000 : NaN, total: r.durationMs / 1000, all: loads.length };
  })));
  console.log(`\nrollback (budget ${TRIAL.budget}, trial watchdog ${TRIAL.timeoutSec} s; goal: at most ${TRIAL.budget + 1} boots after the promotion)`);
  console.log('scenario     boots after promotion   promotion -> userspace on A   whole run   result');
  for (const row of rows) {
    console.log(`${row.kind.padEnd(12)} ${String(row.boots).padEnd(23)} ${`${row.seconds.toFixed(1)} s`.padEnd(29)} ${`${row.total.toFixed(1)} s`.padEnd(11)} ${row.ok && row.boots <= TRIAL.budget + 1 ? 'ok' : 'FAILED'}`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
