// Publishing speed, side by side in one run (printed, never asserted):
//   hnforge publish (hash, compress, sign, upload to a directory store and
//   read back) against `zstd -T0 -3` alone on the same image; and what the raw
//   image's SHA-256 costs within the publish pass against coreutils `sha256sum`
//   on it: the pass computing it, less the pass given it (as after a build,
//   whose seal computed it), beside the whole pass. Targets: publish <= 1.0x
//   zstd; SHA-256 within publish <= 0.2x sha256sum.
// The sides take turns going first, round after round, and each starts with
// the image in the page cache (the cold case favours hnforge, which reads only
// the image's extents: ~0.5x of zstd's time in a cold first round).
//   npm run bench -- publish [--image out/hn-debian/hn-root.img] [--rounds N]
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { imageBenchArgs, seconds } from './image-args.ts';
import { KEY_FILES, keygen } from '../pipeline/publish/keygen.ts';
import { compressImage } from '../pipeline/publish/artifact.ts';

const { image, rounds, info } = await imageBenchArgs(process.argv.slice(2));

const repo = resolve(import.meta.dirname, '..');
const work = await mkdtemp(join(info.isFile() ? resolve(image, '..') : '/tmp', '.bench-publish-'));
const HOUR = 3_600_000;

try {
  await keygen({ out: join(work, 'keys') });
  console.log(`image ${image}: ${(info.size / 2 ** 30).toFixed(1)} GiB apparent, ${((info.blocks * 512) / 2 ** 20).toFixed(0)} MiB used`);
  const sides = {
    zstd: () => seconds(() => execa('sh', ['-c', 'zstd -T0 -3 -q -c "$1" > "$2"', 'sh', image, join(work, 'ref.zst')], { timeout: HOUR })),
    publish: async () => {
      await rm(join(work, 'store'), { recursive: true, force: true });
      return seconds(() =>
        execa(join(repo, 'bin/hnforge'), ['publish', '--image', image, '--store', `file://${join(work, 'store')}`, '--signing-key', join(work, 'keys', KEY_FILES.privateKey)], { timeout: HOUR }),
      );
    },
    sha256sum: () => seconds(() => execa('sha256sum', [image], { timeout: HOUR })),
    pass: () => seconds(() => compressImage(image, join(work, 'pass.zst'))),
    passKnown: () => seconds(() => compressImage(image, join(work, 'pass-known.zst'), { knownSha256: '0'.repeat(64) })),
  };
  // Every side starts with the image in the page cache: otherwise whoever goes first pays for the disk.
  const warm = () => execa('sh', ['-c', 'cat "$1" > /dev/null', 'sh', image], { timeout: HOUR });
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? (['zstd', 'publish', 'sha256sum', 'pass', 'passKnown'] as const) : (['publish', 'zstd', 'passKnown', 'pass', 'sha256sum'] as const);
    const t: Record<string, number> = {};
    for (const side of order) {
      await warm();
      t[side] = await sides[side]();
    }
    const hashCost = Math.max(0, t.pass! - t.passKnown!);
    console.log(
      `round ${round}: zstd -T0 -3 ${t.zstd!.toFixed(1)} s | hnforge publish ${t.publish!.toFixed(1)} s | ratio ${(t.publish! / t.zstd!).toFixed(2)} (target <= 1.00)\n` +
        `         sha256sum ${t.sha256sum!.toFixed(1)} s | SHA-256 within publish ${hashCost.toFixed(1)} s (pass ${t.pass!.toFixed(1)} s - pass given the sha256 ${t.passKnown!.toFixed(1)} s)` +
        ` | ratio ${(hashCost / t.sha256sum!).toFixed(2)} (target <= 0.20) | whole pass with SHA-256 ${(t.pass! / t.sha256sum!).toFixed(2)}`,
    );
  }
  const [ref, mine] = await Promise.all([stat(join(work, 'ref.zst')), stat(join(work, 'pass.zst'))]);
  console.log(`compressed: zstd -T0 -3 ${(ref.size / 2 ** 20).toFixed(1)} MiB | hnforge ${(mine.size / 2 ** 20).toFixed(1)} MiB | ratio ${(mine.size / ref.size).toFixed(3)}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
