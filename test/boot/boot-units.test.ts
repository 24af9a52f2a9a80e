// Unit tests of the boot chain's TypeScript side: module resolution, sidecar
// format (and that hn-boot.sh reads what TypeScript writes), grub.cfg rules,
// the identity check, and provision's refusals and dry run (disk image files
// only: no loop devices, no mounts).

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveModules } from '../../stages/boot-initramfs.ts';
import { formatSidecar, parseSidecar, writeSidecar } from '../../pipeline/boot/sidecar.ts';
import { grubConfig, grubEmbeddedConfig, grubKernelArgsFile } from '../../pipeline/boot/grub.ts';
import { formatPlan, provision } from '../../pipeline/provision.ts';
import { run } from '../../pipeline/seam/run.ts';
import { bootCmd } from '../../pipeline/seam/boot-commands.ts';
import { runRotation } from './sh-harness.ts';

const dirs: string[] = [];
async function tmp() {
  const d = await mkdtemp(join(tmpdir(), 'hn-boot-units-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop()!, { recursive: true, force: true });
});

describe('initramfs module resolution', () => {
  const dep = [
    'kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/raid6/raid6_pq.ko kernel/lib/libcrc32c.ko',
    'kernel/crypto/xor.ko:',
    'kernel/lib/raid6/raid6_pq.ko:',
    'kernel/lib/libcrc32c.ko:',
    'kernel/drivers/block/loop.ko:',
    'kernel/arch/x86/crypto/crc32c-intel.ko:',
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_ring.ko:',
  ].join('\n');
  const builtin = 'kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n';

  it('orders dependencies first, skips built-ins, reports missing, matches - and _', () => {
    const r = resolveModules(['virtio_blk', 'crc32c_intel', 'ext4', 'jbd2', 'loop', 'btrfs', 'nosuch'], dep, builtin);
    expect(r.files).toEqual([
      'kernel/drivers/virtio/virtio_ring.ko',
      'kernel/drivers/virtio/virtio.ko',
      'kernel/drivers/block/virtio_blk.ko',
      'kernel/arch/x86/crypto/crc32c-intel.ko',
      'kernel/drivers/block/loop.ko',
      'kernel/crypto/xor.ko',
      'kernel/lib/raid6/raid6_pq.ko',
      'kernel/lib/libcrc32c.ko',
      'kernel/fs/btrfs/btrfs.ko',
    ]);
    expect(r.builtin).toEqual(['ext4', 'jbd2']);
    expect(r.missing).toEqual(['nosuch']);
  });
});

describe('sidecar format', () => {
  it('round-trips and rejects malformed input', () => {
    const s = { size: 123, sha256: 'a'.repeat(64), version: 'hn 2026.11.28' };
    expect(parseSidecar(formatSidecar(s))).toEqual(s);
    expect(() => parseSidecar('format=other\nsize=1\n')).toThrow(/unknown sidecar format/);
    expect(() => parseSidecar(`format=hnforge-sidecar-1\nsize=x\nsha256=${'a'.repeat(64)}\n`)).toThrow(/size/);
    expect(() => formatSidecar({ size: 1, sha256: 'xyz' })).toThrow();
  });

  it('what TypeScript writes, hn-boot.sh accepts; one changed byte, it rejects', async () => {
    const hp = await tmp();
    await mkdir(join(hp, 'data'));
    await writeFile(join(hp, 'hn-root.img'), 'current\n');
    await writeFile(join(hp, 'hn-root-new.img'), 'the update\n');
    await writeSidecar(join(hp, 'hn-root-new.img'), join(hp, 'hn-root-new.img.sha256'), 'v2');
    expect((await runRotation(hp)).outcome).toBe('reboot');
    expect(await readFile(join(hp, 'hn-root.img'), 'utf8')).toBe('the update\n');

    await writeFile(join(hp, 'hn-root-new.img'), 'the update\n');
    await writeSidecar(join(hp, 'hn-root-new.img'), join(hp, 'hn-root-new.img.sha256'));
    await writeFile(join(hp, 'hn-root-new.img'), 'the updatE\n');
    expect((await runRotation(hp)).outcome).toBe('boot');
    expect(await readFile(join(hp, 'hn-root-new.img.rejected'), 'utf8')).toBe('the updatE\n');
  });
});

describe('grub.cfg', () => {
  const cfg = grubConfig({ extraKernelArgs: ['hn.test.stop_after=3'] });
  it('boots hn-root.img by default, falls back to hn-root-old.img, then reboots; never hn-root-new.img', () => {
    expect(cfg).toMatch(/set default=0\nset fallback="1 2"/);
    expect(cfg).not.toContain('hn-root-new.img');
    const entries = cfg.split('menuentry ').slice(1);
    expect(entries).toHaveLength(3);
    expect(entries[0]).toContain('loopback hncur ($root)/hn-root.img');
    expect(entries[0]).toContain('real_root=/hn-root.img raw_loop_root_host_partition=LABEL=hostpart rw panic=10 $hn_kernel_args $hn_trial_arg hn.test.stop_after=3');
    // The image's own kernel arguments (the profile's) replace the default when the image carries them.
    expect(entries[0]).toContain("set hn_kernel_args='console=tty0 console=ttyS0,115200n8'");
    expect(entries[0]).toContain('if [ -f (hncur)/boot/hn-kernel-args.cfg ]; then source (hncur)/boot/hn-kernel-args.cfg; fi');
    expect(entries[1]).toContain('source (hnold)/boot/hn-kernel-args.cfg');
    expect(entries[0]).toContain('initrd (hncur)/boot/initramfs');
    expect(entries[1]).toContain('loopback hnold ($root)/hn-root-old.img');
    expect(entries[1]).toContain('real_root=/hn-root-old.img');
    expect(entries[2]).toMatch(/reboot/);
    // An error inside an entry costs a 10 s "Press any key" wait: no loopback -d.
    expect(cfg).not.toContain('loopback -d');
  });
  it("GRUB's terminal is on the serial port too by default (serial-over-LAN shows the menu)", () => {
    expect(cfg).toContain('serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial');
    expect(grubConfig({ serial: false })).not.toContain('terminal_output');
  });
  it('the kernel-argument file an image carries is one GRUB `set`, refusing what would break out of its quotes', () => {
    expect(grubKernelArgsFile(['console=ttyS1,57600', 'quiet'])).toMatch(/^set hn_kernel_args='console=ttyS1,57600 quiet'$/m);
    expect(() => grubKernelArgsFile(["a'; reboot; '"])).toThrow(/not allowed/);
  });
  it('the embedded config keeps $prefix in the memdisk and reads grub/grub.cfg from EFI-BOOT', () => {
    expect(grubEmbeddedConfig()).not.toContain('set prefix');
    expect(grubEmbeddedConfig()).toContain('configfile ($hnefi)/grub/grub.cfg');
  });
});

describe('kernel/initramfs identity check (hn_check_identity)', () => {
  async function setup(mine: string, theirs: string | undefined) {
    const hp = await tmp();
    const root = join(hp, 'newroot');
    await mkdir(join(root, 'boot'), { recursive: true });
    await writeFile(join(hp, 'id'), `${mine}\n`);
    if (theirs !== undefined) await writeFile(join(root, 'boot/hn-boot-id'), `${theirs}\n`);
    return { hp, root, body: `HN_ID_FILE='${join(hp, 'id')}'; umount() { :; }; hn_check_identity '${root}' && echo "@@OK"` };
  }
  it('same id: boots', async () => {
    const s = await setup('A 123', 'A 123');
    const r = await runRotation(s.hp, { body: s.body });
    expect(r.lines.at(-1)).toBe('@@OK');
  });
  it('different id: reboots once (stale directory), then boots anyway the second time, and settles: no reboot on later power-ons', async () => {
    const s = await setup('A 123', 'B 456');
    const first = await runRotation(s.hp, { body: s.body });
    expect(first.outcome).toBe('reboot');
    expect(first.lines.join('\n')).toMatch(/GRUB loaded kernel\/initramfs A 123 but \/hn-root.img holds B 456/);
    const second = await runRotation(s.hp, { body: s.body });
    expect(second.lines.at(-1)).toBe('@@OK');
    expect(second.lines.join('\n')).toMatch(/second boot in a row: persistent, settled: booting anyway/);
    // The defect: every power-on was a double boot. Settled once, later boots go straight on, logged on the console only.
    for (let i = 0; i < 2; i++) {
      const later = await runRotation(s.hp, { body: s.body });
      expect(later.outcome).toBe('boot');
      expect(later.lines.join('\n')).toMatch(/settled earlier/);
    }
    expect((await readFile(join(s.hp, 'hn-boot.log'), 'utf8')).match(/settled/g)).toHaveLength(1);
    // A different mismatch (another image) starts over with one reboot.
    await writeFile(join(s.root, 'boot/hn-boot-id'), 'C 789\n');
    expect((await runRotation(s.hp, { body: s.body })).outcome).toBe('reboot');
  });
  it('only the hash decides (the label is informational)', async () => {
    const s = await setup('image-A 123', 'image-B 123');
    expect((await runRotation(s.hp, { body: s.body })).lines.at(-1)).toBe('@@OK');
  });
  it('an image without an id (e.g. genkernel) is not checked', async () => {
    const s = await setup('A 123', undefined);
    expect((await runRotation(s.hp, { body: s.body })).lines.at(-1)).toBe('@@OK');
  });
});

describe('[root] provision on disk image files', () => {
  it('dry run lists what it would destroy and changes nothing; refuses a partitioned disk without --force and anything without --yes', async () => {
    const d = await tmp();
    const image = join(d, 'img');
    await run({ file: 'truncate', args: ['-s', '8M', image], timeoutMs: 10_000 });
    const disk = join(d, 'disk');
    await run({ file: 'truncate', args: ['-s', '300M', disk], timeoutMs: 10_000 });
    await run(bootCmd.sgdiskLayout(disk, 32));
    const before = await readFile(disk);

    const plan = await provision({ disk, image, dryRun: true });
    expect(plan.performed).toBe(false);
    expect(plan.existingPartitions.map((p) => p.nr)).toEqual([1, 2]);
    expect(formatPlan(plan)).toMatch(/This DESTROYS:\n {2}- partition 1: 32 MiB/);
    expect((await readFile(disk)).equals(before)).toBe(true);

    await expect(provision({ disk, image, yes: true })).rejects.toMatchObject({ code: 'EDISKNOTEMPTY' });
    await expect(provision({ disk, image, force: true })).rejects.toMatchObject({ code: 'ECONFIRM' });
    expect((await readFile(disk)).equals(before)).toBe(true);
    await expect(provision({ disk: join(d, 'nodisk'), image, yes: true })).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(provision({ disk: join(d, 'small'), image, yes: true, sizeBytes: 64 * 2 ** 20 })).rejects.toMatchObject({ code: 'EDISKSMALL' });
  });

  it.each(['ext4', 'btrfs'] as const)('lays out GPT, EFI-BOOT with GRUB, hostpart (%s) with hn-root.img and data/', async (fs) => {
    const d = await tmp();
    const image = join(d, 'img');
    await writeFile(image, 'an image\n');
    await run({ file: 'truncate', args: ['-s', '40M', image], timeoutMs: 10_000 });
    const disk = join(d, 'disk');
    const r = await provision({ disk, image, hostpartFs: fs, yes: true, sizeBytes: 400 * 2 ** 20, hostpartFiles: { 'data/README': 'hi\n' } });
    expect(r.performed).toBe(true);
    const { stdout: gpt } = await run({ file: 'sgdisk', args: ['--print', disk], timeoutMs: 10_000 }, { capture: true });
    expect(gpt).toMatch(/1\s+2048\s+\d+\s+128\.0 MiB\s+EF00\s+EFI-BOOT/);
    expect(gpt).toMatch(/2\s+\d+\s+\d+\s+\S+ MiB\s+8300\s+hostpart/);
    const { stdout: efi } = await run(bootCmd.mtype(disk, r.efiOffsetBytes!, 'grub/grub.cfg'), { capture: true });
    expect(efi).toContain('loopback hncur ($root)/hn-root.img');
    const { stdout: label } = await run({ file: 'mlabel', args: ['-s', '-i', `${disk}@@${r.efiOffsetBytes}`, '::'], timeoutMs: 10_000 }, { capture: true });
    expect(label).toMatch(/EFI-BOOT/);
    await run(bootCmd.mtype(disk, r.efiOffsetBytes!, 'EFI/BOOT/BOOTX64.EFI'), { capture: true });
    if (fs === 'ext4') {
      const { stdout } = await run({ file: 'debugfs', args: ['-R', 'ls -p /', `${disk}?offset=${r.hostpartOffsetBytes}`], timeoutMs: 10_000 }, { capture: true });
      expect(stdout).toMatch(/\/hn-root.img\/41943040\//);
      expect(stdout).toContain('/data/');
    } else {
      const part = join(d, 'part');
      await run({ file: 'dd', args: [`if=${disk}`, `of=${part}`, 'bs=1M', `skip=${r.hostpartOffsetBytes}`, 'iflag=skip_bytes', 'status=none'], timeoutMs: 60_000 });
      const { stdout } = await run({ file: 'btrfs', args: ['filesystem', 'show', part], timeoutMs: 10_000 }, { capture: true });
      expect(stdout).toMatch(/Label: 'hostpart'/);
      // A hard-linked source once gave "link count wrong" here (mkfs.btrfs --rootdir).
      await run({ file: 'btrfs', args: ['check', '--readonly', part], timeoutMs: 60_000 });
    }
  });
});

