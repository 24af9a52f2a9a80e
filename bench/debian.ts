// Side-by-side benchmark of hn-debian against mkosi 14 building the same
// package set into the same 15 GiB sparse ext4 image, in one run, on this
// machine. Prints seconds and ratios; asserts nothing (targets are read off).
// Cold builds run in rounds, the peer and hnforge taking turns going first
// (bench/rounds.ts), so neither alone profits from a mirror the other warmed.
//
//   npm run bench                          two rounds of cold builds side by side, then
//                                          no-change and late-stage rebuilds, sidecar, disk use
//   npm run bench -- --no-peer             skip mkosi
//   npm run bench -- --rounds N            N rounds of cold builds (default 2)
import { execFileSync, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureHostPackages } from '../pipeline/host-packages.ts';
import { missingTools } from '../pipeline/preflight.ts';
import { resolveProfile } from '../pipeline/profiles.ts';
import { hostMirror } from '../stages/debian-mirror.ts';
import { parseBenchArgs, roundOrder, type BenchOptions } from './rounds.ts';

/** The peer's host tools: mkosi 14 runs debootstrap and systemd-nspawn. Installed like hnforge's own. */
const PEER_TOOLS = ['mkosi', 'debootstrap', 'systemd-nspawn'];

const repo = join(import.meta.dirname, '..');
let opts: BenchOptions;
try {
  opts = parseBenchArgs(process.argv.slice(2));
} catch (e) {
  console.error(`hnforge-bench: ${(e as Error).message}`);
  process.exit(2);
}
if (opts.peer) {
  await ensureHostPackages(PEER_TOOLS, (line) => console.error(`hnforge-bench: ${line}`));
  const missing = await missingTools(PEER_TOOLS);
  if (missing.length) {
    console.error(`hnforge-bench: the peer needs ${missing.join(', ')}; run as root to install them, or pass --no-peer`);
    process.exit(3);
  }
}
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
const secs = (t: number | undefined) => (t === undefined ? '-' : `${t.toFixed(1)} s`);
const rows: string[][] = [];
const row = (...cells: string[]) => {
  rows.push(cells);
  console.log(cells.join('  |  '));
};

const profile = await resolveProfile(join(repo, 'profiles'), 'hn-debian');
const mirror = (await hostMirror('bookworm'))!;

/** mkosi 14, cold: an empty package cache of its own, removed afterwards. */
async function peerCold(round: number): Promise<number | undefined> {
  const dir = join(work, `mkosi-${round}`);
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
  await rm(dir, { recursive: true, force: true });
  if (r.code !== 0) console.error(`mkosi failed (${r.code}):\n${r.out.slice(-3000)}`);
  row(`round ${round}: mkosi 14 cold (empty package cache)`, secs(r.seconds), r.code === 0 ? 'ok' : 'FAILED');
  return r.code === 0 ? r.seconds : undefined;
}

// Like for like: mkosi writes no checksum by default, so the timed builds skip the sidecar;
// its cost is measured on its own below.
const hnforge = (dir: string, extra: string[] = []) =>
  timed(join(repo, 'bin/hnforge'), ['build', '--profile', 'hn-debian', '--cache', join(dir, 'cache'), '--output', join(dir, 'out'), '--json', '--no-sidecar', ...extra]);
const statuses = (json: string) => {
  const r = JSON.parse(json.slice(json.indexOf('{'))) as { stages: { name: string; status: string }[] };
  return r.stages.filter((s) => s.status === 'ran').map((s) => s.name);
};

/** hnforge, cold: a cache and output of its own (kept: the last round's serves the rebuilds below). */
async function hnforgeCold(round: number): Promise<{ seconds: number; peakBytes: number; budgetBytes: number }> {
  const dir = join(work, `hn-${round}`);
  await mkdir(dir, { recursive: true });
  const { result: cold, peakBytes } = await peakDisk(dir, () => hnforge(dir));
  if (cold.code !== 0) throw new Error(`hnforge cold build failed:\n${cold.out.slice(-3000)}`);
  const report = JSON.parse(await readFile(join(dir, 'out/hn-debian/hn-root.report.json'), 'utf8')) as { usedBytes: number };
  const budgetBytes = 2 * report.usedBytes + du(join(dir, 'cache/apt'));
  row(`round ${round}: hnforge hn-debian cold (empty package cache)`, secs(cold.seconds), `disk peak ${MiB(peakBytes)}, budget ${MiB(budgetBytes)}`);
  return { seconds: cold.seconds, peakBytes, budgetBytes };
}

// 1. Cold builds, round by round, taking turns going first.
const rounds: { order: string; peer?: number; hn: { seconds: number; peakBytes: number; budgetBytes: number } }[] = [];
const plan = roundOrder(opts);
for (const [i, order] of plan.entries()) {
  const round = i + 1;
  let peer: number | undefined;
  let hn: (typeof rounds)[number]['hn'] | undefined;
  for (const who of order) {
    if (who === 'peer') peer = await peerCold(round);
    else hn = await hnforgeCold(round);
  }
  rounds.push({ order: order.map((w) => (w === 'peer' ? 'mkosi' : 'hnforge')).join(' then '), peer, hn: hn! });
  if (round < plan.length) await rm(join(work, `hn-${round}`), { recursive: true, force: true });
}

// 2. Rebuilds on the last round's cache.
const last = join(work, `hn-${plan.length}`);
const noChange = await hnforge(last);
row('hnforge rebuild, nothing changed', secs(noChange.seconds), `target < 15 s; stages run: ${statuses(noChange.out).join(', ') || 'none'}`);

// Late-stage change: only the layout (hostname) differs, in a copy of the profiles.
const profiles = join(work, 'profiles');
await cp(join(repo, 'profiles'), profiles, { recursive: true });
const text = await readFile(join(profiles, 'hn-debian.yaml'), 'utf8');
await writeFile(join(profiles, 'hn-debian.yaml'), `${text}layout:\n  hostname: hn-bench-changed\n`);
const late = await hnforge(last, ['--profiles-dir', profiles]);
row('hnforge rebuild, late stage (layout) changed', secs(late.seconds), `stages run: ${statuses(late.out).join(', ')}`);

const withSidecar = await timed(join(repo, 'bin/hnforge'), ['build', '--profile', 'hn-debian', '--cache', join(last, 'cache'), '--output', join(last, 'out'), '--json', '--profiles-dir', profiles]);
row('checksum sidecar of the 15 GiB image (sha256)', secs(withSidecar.seconds), 'nothing else changed: the whole run is the hash plus a republish');

await rm(work, { recursive: true, force: true });

console.log('\ncold builds, side by side (each with an empty package cache of its own)');
console.log(`  ${'round'.padEnd(6)} ${'order'.padEnd(18)} ${'mkosi 14'.padStart(9)} ${'hnforge'.padStart(9)}  ${'hnforge/mkosi'.padEnd(14)} host disk (peak / budget)`);
for (const [i, r] of rounds.entries()) {
  const ratio = r.peer ? (r.hn.seconds / r.peer).toFixed(2) : '-';
  const disk = `${MiB(r.hn.peakBytes)} / ${MiB(r.hn.budgetBytes)} = ${(r.hn.peakBytes / r.hn.budgetBytes).toFixed(2)}`;
  console.log(`  ${String(i + 1).padEnd(6)} ${r.order.padEnd(18)} ${secs(r.peer).padStart(9)} ${secs(r.hn.seconds).padStart(9)}  ${ratio.padEnd(14)} ${disk}`);
}
console.log('  targets: hnforge/mkosi <= 1.00 in every round; disk peak / budget <= 1.00 (budget: 2 x the image\'s used blocks + the package cache)');
console.log('\nsummary');
for (const r of rows) console.log(`  ${r[0]!.padEnd(52)} ${r[1]!.padStart(10)}  ${r[2] ?? ''}`);
