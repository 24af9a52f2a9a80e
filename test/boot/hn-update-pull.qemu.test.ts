// A node pulls its next image for real: two versions of the test-min profile
// are built and published (signed) into a directory store that Debian's
// nginx-light serves on 127.0.0.1; a disk provisioned with the first version
// boots under qemu with restricted user networking whose only way out is a
// guestfwd rule to that nginx. In the guest, hn-update (the image's own
// copy, with curl, gpgv, zstd and sha256sum from the image) fetches and checks
// the channel, stages the second version with its sidecar and reboots; the
// boot chain promotes it and the node comes up on it.
//
// The harness adds one thing to a copy of the first version: a oneshot unit
// that waits for the DHCP address and runs `hn-update --reboot` (the image's
// timer would run it hours later). The second version is booted exactly as
// published.

import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTPART_FILES, KERNEL_PARAMS } from '../../pipeline/boot/contract.ts';
import { addBootUnit } from '../../pipeline/boot-test.ts';
import { provision } from '../../pipeline/provision.ts';
import { KEY_FILES, keygen } from '../../pipeline/publish/keygen.ts';
import { bootDisk } from '../../pipeline/qemu.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge } from '../support/cli.ts';
import { TEST_CACHE } from '../support/test-cache.ts';
import { startNginx, type Nginx } from '../publish/nginx-fixture.ts';
import { freePort } from '../publish/registry-fixtures.ts';
import { catHostpart, TEST_GRUB, type Disk } from './fixtures.ts';

const FIRST = '20261201.1';
const SECOND = '20261202.1';
/** Where the guest finds the store: qemu's guestfwd rule hands this address to nginx on the host. */
const STORE_ADDRESS = '10.0.2.100';

const PULL_SCRIPT = `#!/bin/sh
# Every line opens the serial port anew: the serial getty starting beside this
# unit hangs up the terminal, and output on a descriptor opened before is lost.
say() { while IFS= read -r line; do echo "$line" >/dev/ttyS0; done; }
. /etc/hn-release
echo "HN-PULL running $HN_VERSION" | say
# systemd-networkd asks qemu's DHCP for an address; nothing on a node waits for the network.
i=0
while ! ip -4 addr show | grep -q 'inet 10\\.0\\.2\\.'; do
	i=$((i + 1)); [ "$i" -gt 240 ] && break; sleep 0.5
done
/usr/sbin/hn-update --store http://${STORE_ADDRESS} --json --reboot 2>&1 | say
echo "HN-PULL hn-update ended" | say
systemctl --no-block poweroff
`;

const PULL_UNIT = `[Unit]
Description=hnforge test: pull the next image now
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/hn-test-pull
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`;

/** Relays one guest connection (stdin/stdout) to nginx on 127.0.0.1: qemu starts one per connection. */
const RELAY = `const net = require('node:net');
const s = net.connect(Number(process.argv[2]), '127.0.0.1');
process.stdin.pipe(s);
s.pipe(process.stdout);
s.on('close', () => process.exit(0));
s.on('error', () => process.exit(1));
`;

/** /etc/hn-release of an image on the disk's host partition, read offline with debugfs. */
async function releaseOf(disk: Disk, image: string, work: string): Promise<string> {
  const copy = join(work, `${image}.dumped`);
  try {
    await run({ file: 'debugfs', args: ['-R', `dump /${image} ${copy}`, `${disk.path}?offset=${disk.hostpartOffset}`], timeoutMs: 600_000 }, { capture: true });
    return (await run({ file: 'debugfs', args: ['-R', 'cat /etc/hn-release', copy], timeoutMs: 60_000 }, { capture: true })).stdout;
  } finally {
    await rm(copy, { force: true });
  }
}

describe('[qemu][root] a node pulls its next image from nginx and boots it', { timeout: 1_800_000 }, () => {
  let work: string;
  let disk: Disk;
  let nginx: Nginx | undefined;
  const images: Record<string, string> = {};

  beforeAll(async () => {
    await mkdir(TEST_CACHE, { recursive: true });
    work = await mkdtemp(join(TEST_CACHE, 'qemu-pull-'));
    await keygen({ out: join(work, 'keys') });
    const store = `file://${join(work, 'store')}`;
    for (const version of [FIRST, SECOND]) {
      const out = join(work, `out-${version}`);
      const r = await hnforge(
        ['build', '--profile', 'test-min', '--cache', TEST_CACHE, '--output', out, '--version', version, '--store', store, '--channel', 'nightly', '--signing-key', join(work, 'keys', KEY_FILES.privateKey)],
        { timeoutMs: 1_200_000 },
      );
      if (r.code !== 0) throw new Error(`building test-min ${version} failed (${r.code}): ${r.stderr.slice(-2000)}`);
      images[version] = join(out, 'test-min/hn-root.img');
    }
    const copy = join(work, 'hn-root.img');
    await run(cmd.copySparse(images[FIRST]!, copy));
    await addBootUnit(copy, work, { name: 'hn-test-pull', script: PULL_SCRIPT, unit: PULL_UNIT });
    const size = statSync(copy).size;
    const p = await provision({
      disk: join(work, 'disk'), image: copy, hostpartFs: 'ext4', yes: true, sizeBytes: Math.ceil((size * 2.5 + 2 ** 30) / 2 ** 20) * 2 ** 20,
      // hn-update checked the image's sha256 before staging it: the documented setting for such nodes
      // spares the initramfs a second hash of the 2 GiB image (minutes under emulation).
      grub: { ...TEST_GRUB, extraKernelArgs: [`${KERNEL_PARAMS.verify}=size`] }, workDir: work,
    });
    disk = { path: join(work, 'disk'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };
    nginx = await startNginx({ root: join(work, 'store'), port: await freePort(), workDir: join(work, 'nginx') });
    await writeFile(join(work, 'relay.cjs'), RELAY);
  }, 2_400_000);

  afterAll(async () => {
    await nginx?.stop();
    if (work && process.env.HNFORGE_TEST_KEEP !== '1') await rm(work, { recursive: true, force: true });
  });

  it('hn-update stages the next version with its sidecar, reboots, and the boot chain promotes it', async () => {
    const port = Number(new URL(nginx!.url).port);
    let promoted = false;
    const r = await bootDisk({
      disk: disk.path, logFile: join(work, 'serial.log'), timeoutMs: 1_200_000, memoryMiB: 1024,
      guestfwd: { guestAddress: STORE_ADDRESS, guestPort: 80, command: `${process.execPath} ${join(work, 'relay.cjs')} ${port}` },
      // The second version has no test unit: once promoted, its systemd starting is the end.
      stopAt: (line) => (promoted ||= /HN-BOOT: updated: /.test(line)) && /Welcome to Debian/.test(line),
    });
    const all = r.lines.join('\n');
    expect(r.end, all.slice(-4000)).toBe('stopped');
    expect(all).toContain(`HN-PULL running ${FIRST}`);
    expect(all).toMatch(new RegExp(`"state":"staged","running":"${FIRST}","newest":"${SECOND}","staged":"${SECOND}"`));
    // Promoted by the initramfs after the reboot hn-update asked for.
    expect(all).toContain(`HN-BOOT: updated: ${HOSTPART_FILES.next} is now ${HOSTPART_FILES.current}`);

    const bootLog = await catHostpart(disk, `/${HOSTPART_FILES.bootLog}`);
    expect(bootLog).toMatch(/updated: hn-root-new\.img is now hn-root\.img, previous image kept as hn-root-old\.img/);
    const updateLog = await catHostpart(disk, `/${HOSTPART_FILES.updateLog}`);
    expect(updateLog).toContain(`staged ${SECOND} as ${HOSTPART_FILES.next}`);
    expect(updateLog).toMatch(/downloading hn-root_20261202\.1\.img\.zst/);
    // The node now runs the second version (its image changed as it ran: only its release file can tell).
    expect(await releaseOf(disk, HOSTPART_FILES.current, work)).toContain(`HN_VERSION="${SECOND}"`);
    expect(await releaseOf(disk, HOSTPART_FILES.previous, work)).toContain(`HN_VERSION="${FIRST}"`);
  });
});
