// Side-by-side benchmark of hn-debian against mkosi 14 building the same
// package set into the same 15 GiB sparse ext4 image, in one run, on this
// machine. Prints seconds and ratios; asserts nothing (targets are read off).
//
//   npm run bench              cold mkosi vs cold hnforge, no-change and late-stage rebuilds, disk use
//   npm run bench -- --no-peer skip mkosi
import { execFileSync, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveProfile } from '../pipeline/profiles.ts';
import { hostMirror } from '../stages/debian-mirror.ts';

const repo = join(import.meta.dirname, '..');
const skipPeer = process.argv.includes('--no-peer');
const work = await mkdtemp('/var/tmp/hnbench-');

function timed(file: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<{ seconds: number; code: number | null; out: string }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs ?? 1_200_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ seconds: (Date.now() - t0) / 1000, code, out });
    });
  });
}

/**
 * Peak bytes allocated under `dir` (du: sparse files count their blocks only) while `fn`
 * runs, sampled every 250 ms. Measured on the build's own directories rather than the whole
 * filesystem, so other work on the machine does not count; -x keeps du out of the
 * mounted image (its blocks are counted through the image file) and its /proc.
 */
async function peakDisk<T>(dir: string, fn: () => Promise<T>): Promise<{ result: T; peakBytes: number }> {
  let peak = 0;
  let sampling = false;
  const timer = setInterval(() => {
    if (sampling) return;
    sampling = true;
    const child = spawn('du', ['-s', '-x', '--block-size=1', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('exit', () => {
      peak = Math.max(peak, Number(text.split('\t')[0]) || 0);
      sampling = false;
    });
  }, 250);
  try {
    return { result: await fn(), peakBytes: peak };
  } finally {
    clearInterval(timer);
  }
}

const du = (path: string) => Number(execFileSync('du', ['-sb', path]).toString().split('\t')[0]);
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const rows: string[][] = [];
const row = (...cells: string[]) => {
  rows.push(cells);
  console.log(cells.join('  |  '));
};

const profile = await resolveProfile(join(repo, 'profiles'), 'hn-debian');
const mirror = (await hostMirror('bookworm'))!;

let mkosiCold: number | undefined;
if (!skipPeer) {
  const dir = join(work, 'mkosi');
  await mkdir(join(dir, 'mkosi.cache'), { recursive: true });
  await writeFile(
    join(dir, 'mkosi.conf'),
    [
      '[Distribution]', 'Distribution=debian', 'Release=bookworm', `Mirror=${mirror}`, '',
      '[Output]', 'Format=gpt_ext4', 'Output=image.raw', '',
      '[Content]', 'WithDocs=yes', `Packages=${profile.packages.join(',')}`, '',
      '[Partitions]', 'RootSize=15G', '',
    ].join('\n'),
  );
  const r = await timed('mkosi', ['--force', 'build'], { cwd: dir });
  if (r.code !== 0) console.error(`mkosi failed (${r.code}):\n${r.out.slice(-3000)}`);
  mkosiCold = r.seconds;
  row('mkosi 14 cold (empty package cache)', `${r.seconds.toFixed(1)} s`, r.code === 0 ? 'ok' : 'FAILED');
  await rm(dir, { recursive: true, force: true });
}

const cache = join(work, 'hn-cache');
const out = join(work, 'hn-out');
// Like for like: mkosi writes no checksum by default, so the timed builds skip the sidecar;
// its cost is measured on its own below.
const build = (extra: string[] = []) => timed(join(repo, 'bin/hnforge'), ['build', '--profile', 'hn-debian', '--cache', cache, '--output', out, '--json', '--no-sidecar', ...extra]);
const statuses = (json: string) => {
  const r = JSON.parse(json.slice(json.indexOf('{'))) as { stages: { name: string; status: string }[] };
  return r.stages.filter((s) => s.status === 'ran').map((s) => s.name);
};

const { result: cold, peakBytes } = await peakDisk(work, () => build());
if (cold.code !== 0) throw new Error(`hnforge cold build failed:\n${cold.out.slice(-3000)}`);
const report = JSON.parse(await readFile(join(out, 'hn-debian/hn-root.report.json'), 'utf8')) as { usedBytes: number };
row('hnforge hn-debian cold (empty package cache)', `${cold.seconds.toFixed(1)} s`, mkosiCold ? `ratio hnforge/mkosi ${(cold.seconds / mkosiCold).toFixed(2)} (target <= 1.00)` : '');

const noChange = await build();
row('hnforge rebuild, nothing changed', `${noChange.seconds.toFixed(1)} s`, `target < 15 s; stages run: ${statuses(noChange.out).join(', ') || 'none'}`);

// Late-stage change: only the layout (hostname) differs, in a copy of the profiles.
const profiles = join(work, 'profiles');
await cp(join(repo, 'profiles'), profiles, { recursive: true });
const text = await readFile(join(profiles, 'hn-debian.yaml'), 'utf8');
await writeFile(join(profiles, 'hn-debian.yaml'), `${text}layout:\n  hostname: hn-bench-changed\n`);
const late = await build(['--profiles-dir', profiles]);
row('hnforge rebuild, late stage (layout) changed', `${late.seconds.toFixed(1)} s`, `stages run: ${statuses(late.out).join(', ')}`);

const withSidecar = await timed(join(repo, 'bin/hnforge'), ['build', '--profile', 'hn-debian', '--cache', cache, '--output', out, '--json', '--profiles-dir', profiles]);
row('checksum sidecar of the 15 GiB image (sha256)', `${withSidecar.seconds.toFixed(1)} s`, 'nothing else changed: the whole run is the hash plus a republish');

const pkgCache = du(join(cache, 'apt'));
row(
  'host disk during the cold build',
  MiB(peakBytes),
  `budget 2 x ${MiB(report.usedBytes)} used + ${MiB(pkgCache)} package cache = ${MiB(2 * report.usedBytes + pkgCache)}; ratio ${(peakBytes / (2 * report.usedBytes + pkgCache)).toFixed(2)} (target <= 1.00)`,
);

await rm(work, { recursive: true, force: true });
console.log('\nsummary');
for (const r of rows) console.log(`  ${r[0]!.padEnd(48)} ${r[1]!.padStart(10)}  ${r[2] ?? ''}`);
