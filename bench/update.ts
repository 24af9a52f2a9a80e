// A node's pull, side by side in one run (printed, never asserted):
//   boot/hn-update fetching a published version from nginx on 127.0.0.1 (index,
//   signature check, manifest, artifact, sparse decompression, SHA-256 of the
//   image, sidecar) against the plain pipeline a sysadmin would script:
//   `curl -o` + `zstd -d --sparse` + `sha256sum` of the same artifact.
// Wall time and bytes transferred (from nginx's access log). Target: hn-update
// <= 1.1x the plain pipeline. The sides take turns going first.
//   npm run bench -- update [--image out/hn-debian/hn-root.img] [--rounds N]
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { imageBenchArgs, seconds } from './image-args.ts';
import { KEY_FILES, keygen } from '../pipeline/publish/keygen.ts';
import { updateConfText } from '../stages/node-tools.ts';
import { startNginx } from '../test/publish/nginx-fixture.ts';
import { freePort } from '../test/publish/registry-fixtures.ts';

const { image, rounds, info } = await imageBenchArgs(process.argv.slice(2));

const repo = resolve(import.meta.dirname, '..');
const work = await mkdtemp(join(resolve(image, '..'), '.bench-update-'));
const HOUR = 3_600_000;

const accessLog = join(work, 'access.log');
/** Bytes nginx sent since the last call (body bytes of every request). */
let counted = 0;
const bytesSent = async () => {
  const lines = (await readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const total = lines.reduce((n, l) => n + Number(l.split(' ')[0]), 0);
  const since = total - counted;
  counted = total;
  return since;
};
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

const nginxDir = join(work, 'nginx');
let stopNginx: (() => Promise<void>) | undefined;
try {
  await keygen({ out: join(work, 'keys') });
  const store = join(work, 'store');
  const published = await execa(join(repo, 'bin/hnforge'), ['publish', '--image', image, '--store', `file://${store}`, '--channel', 'nightly', '--signing-key', join(work, 'keys', KEY_FILES.privateKey), '--json'], { timeout: HOUR });
  const { profile, version } = JSON.parse(published.stdout) as { profile: string; version: string };
  const artifact = `${profile}/nightly/hn-root_${version}.img.zst`;
  console.log(`image ${image}: ${(info.size / 2 ** 30).toFixed(1)} GiB apparent; published ${profile} ${version}, artifact ${mib((await stat(join(store, artifact))).size)}`);
  const nginx = await startNginx({ root: store, port: await freePort(), workDir: nginxDir, accessLog });
  stopNginx = nginx.stop;

  // A node: its host partition (a directory here), its release file (an older version) and its configuration.
  const node = join(work, 'node');
  await mkdir(join(node, 'hostpart'), { recursive: true });
  await writeFile(join(node, 'hn-release'), `HN_VERSION="0"\nHN_PROFILE="${profile}"\n`);
  await writeFile(join(node, 'hn-update.conf'), `${updateConfText({ store: nginx.url, channel: 'nightly', schedule: 'daily', randomDelay: '1h', allowUnsigned: false })}HN_UPDATE_KEYRING="${join(work, 'keys', KEY_FILES.keyring)}"\n`);

  const plain = join(work, 'plain');
  const sides = {
    pipeline: async () => {
      await rm(plain, { recursive: true, force: true });
      await mkdir(plain);
      const s = await seconds(() =>
        execa('sh', ['-c', 'curl -fsS -o "$2/a.zst" "$1" && zstd -d -q --sparse "$2/a.zst" -o "$2/a.img" && sha256sum "$2/a.img"', 'sh', `${nginx.url}/${artifact}`, plain], { timeout: HOUR }),
      );
      await rm(plain, { recursive: true, force: true });
      return s;
    },
    'hn-update': async () => {
      await rm(join(node, 'hostpart'), { recursive: true, force: true });
      await mkdir(join(node, 'hostpart'));
      return seconds(() =>
        execa('sh', [join(repo, 'boot/hn-update'), '--hostpart', join(node, 'hostpart'), '--config', join(node, 'hn-update.conf')], {
          env: { HN_UPDATE_RELEASE: join(node, 'hn-release') },
          timeout: HOUR,
        }),
      );
    },
  };
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? (['pipeline', 'hn-update'] as const) : (['hn-update', 'pipeline'] as const);
    const t: Record<string, number> = {};
    const b: Record<string, number> = {};
    await bytesSent();
    for (const side of order) {
      t[side] = await sides[side]();
      b[side] = await bytesSent();
    }
    console.log(
      `round ${round}: curl + zstd -d + sha256sum ${t.pipeline!.toFixed(1)} s, ${mib(b.pipeline!)} | hn-update ${t['hn-update']!.toFixed(1)} s, ${mib(b['hn-update']!)}` +
        ` | ratio ${(t['hn-update']! / t.pipeline!).toFixed(2)} (target <= 1.10), bytes ${(b['hn-update']! / b.pipeline!).toFixed(3)}`,
    );
  }
} finally {
  await stopNginx?.();
  await rm(work, { recursive: true, force: true });
}
