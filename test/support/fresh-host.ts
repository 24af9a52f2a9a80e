// A fresh Debian 12 "machine" to run hnforge on as a new user would: a minimal
// bookworm tree (mmdebstrap --variant=minbase, from the host's own apt mirror)
// holding nothing of the host but node and npm, with a clone of this
// repository at /root/hnforge, entered as root through chroot with proc, sys,
// dev and dev/pts mounted. Whatever a command inside needs beyond that, it has
// to install itself (as `npm run build` and `npm test` do).
//
// Cleaning up ends processes left inside, unmounts everything below the tree
// (also what a build inside mounted), detaches loop devices backed by files in
// it, and only then removes it.

import { execFileSync } from 'node:child_process';
import { chmod, copyFile, cp, link, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { endProcessesIn, mountsBelow, umountPatiently } from '../../pipeline/seam/system.ts';
import { hostMirror } from '../../stages/debian-mirror.ts';

const MINUTE = 60_000;
const SUITE = 'bookworm';
/** Where the clone lives inside the tree (a /root clone is what the README's reader has). */
export const FRESH_REPO = '/root/hnforge';

export interface FreshHostOptions {
  /** The repository to clone (its committed HEAD: commit first). */
  repoDir: string;
  /** Parent directory of the tree (default /var/tmp). */
  parentDir?: string;
  /**
   * Bind the host's npm cache at /root/.npm inside, so `npm ci` fetches
   * nothing it fetched before. Only a download cache: the packages are still
   * installed inside by npm itself. Default true.
   */
  shareNpmCache?: boolean;
  /**
   * Directories of already downloaded .debs, hard-linked into the tree's apt
   * archives (its bootstrap and the packages a command installs) and into the
   * build's package cache (/var/cache/hnforge/apt/archives) to save the
   * downloads. Download caches only: nothing is installed from them unless a
   * command inside asks apt for that package. Missing directories (or another
   * filesystem, where a hard link is impossible) are skipped.
   */
  debCaches?: { apt?: string[]; build?: string[] };
  log?: (line: string) => void;
}

export interface FreshHost {
  /** The tree on the host. */
  root: string;
  /** Runs `argv` as root inside the tree, in /root/hnforge; resolves to its exit code. */
  run(argv: string[], opts?: { timeoutMs?: number; onLine?: (line: string) => void }): Promise<number>;
  /** Unmounts and detaches everything below the tree; removes it unless `keep`. */
  dispose(opts?: { keep?: boolean }): Promise<{ unmounted: string[]; detached: string[] }>;
}

/** The environment a root login on a fresh machine has, nothing of ours (proxy settings excepted). */
function freshEnv(sharedNpmCache: boolean): Record<string, string> {
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb' };
  // With the host's npm cache bound in, take what it holds without revalidating each tarball
  // with the registry (npm ci took 3 min for 128 packages doing that); the rest is downloaded.
  if (sharedNpmCache) env.npm_config_prefer_offline = 'true';
  for (const k of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) if (process.env[k]) env[k] = process.env[k]!;
  return env;
}

/** node and npm exactly as the host has them: the binary, npm's directory, the npm and npx links. */
async function copyNode(root: string) {
  await copyFile('/usr/bin/node', join(root, 'usr/bin/node'));
  await chmod(join(root, 'usr/bin/node'), 0o755);
  await mkdir(join(root, 'usr/lib/node_modules'), { recursive: true });
  await cp('/usr/lib/node_modules/npm', join(root, 'usr/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
  for (const link of ['npm', 'npx']) await symlink(await readlink(`/usr/bin/${link}`), join(root, 'usr/bin', link));
}

/** Loop devices whose backing file lies below `dir` (a build inside attached them). */
async function loopsBelow(dir: string): Promise<string[]> {
  const { stdout } = await run(cmd.losetupList(), { capture: true });
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([device, file]) => device && file?.startsWith(dir + '/'))
    .map(([device]) => device!);
}

/** Hard-links every .deb of `from` (if it exists, on the same filesystem) into `to`; returns how many. */
async function linkDebs(from: readonly string[], to: string): Promise<number> {
  await mkdir(join(to, 'partial'), { recursive: true });
  let n = 0;
  for (const dir of from) {
    for (const name of (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.deb'))) {
      if (await link(join(dir, name), join(to, name)).then(() => true, () => false)) n++;
    }
  }
  return n;
}

async function sweep(root: string, log: (line: string) => void): Promise<{ unmounted: string[]; detached: string[] }> {
  const ended = await endProcessesIn(root);
  if (ended.length) log(`ended processes left inside: ${ended.join(' ')}`);
  // Deepest first: the build's image mount before its root's parent, dev/pts before dev.
  const unmounted = await mountsBelow(root);
  for (const m of unmounted) await umountPatiently(m);
  const detached = await loopsBelow(root);
  for (const device of detached) await run(cmd.losetupDetach(device));
  return { unmounted, detached };
}

export async function createFreshHost(opts: FreshHostOptions): Promise<FreshHost> {
  const log = opts.log ?? (() => {});
  if (process.getuid?.() !== 0) throw new Error('a fresh host needs root (mmdebstrap --mode=root, mounts, chroot)');
  const mirror = await hostMirror(SUITE);
  if (!mirror) throw new Error(`no ${SUITE} mirror in this host's apt sources`);
  const parent = opts.parentDir ?? '/var/tmp';
  const root = await mkdtemp(join(parent, 'hnforge-fresh-host-'));
  let disposed = false;

  const dispose: FreshHost['dispose'] = async ({ keep = false } = {}) => {
    if (disposed) return { unmounted: [], detached: [] };
    const swept = await sweep(root, log);
    const left = await mountsBelow(root);
    // Never remove a tree with anything still mounted in it: /dev is bound there.
    if (left.length) throw new Error(`still mounted below ${root} (not removed): ${left.join(', ')}`);
    disposed = true;
    if (keep) log(`kept ${root}`);
    else await rm(root, { recursive: true, force: true });
    return swept;
  };

  try {
    const t0 = Date.now();
    log(`mmdebstrap --variant=minbase ${SUITE} ${root} ${mirror}`);
    const aptArchives = join(root, 'var/cache/apt/archives');
    const seeded = await linkDebs(opts.debCaches?.apt ?? [], aptArchives);
    await run({
      file: 'mmdebstrap',
      args: [
        '--mode=root', '--variant=minbase', '--quiet',
        // A throwaway tree: dpkg need not fsync every file.
        '--dpkgopt=force-unsafe-io',
        // Package lists stay, as on an installed machine (apt-get install works without an update first).
        '--skip=cleanup/apt/lists',
        // The target already holds the offered .debs.
        '--skip=check/empty',
        SUITE, root, mirror,
      ],
      timeoutMs: 15 * MINUTE,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', TMPDIR: '/tmp' },
    });
    log(`bootstrapped in ${((Date.now() - t0) / 1000).toFixed(0)} s (${seeded} cached .debs offered)`);
    // The bootstrap's clean-up removed them: offered again for what a command installs.
    await linkDebs(opts.debCaches?.apt ?? [], aptArchives);
    await linkDebs(opts.debCaches?.build ?? [], join(root, 'var/cache/hnforge/apt/archives'));
    await copyNode(root);
    // The host's git clones (the fresh machine has no git: its reader downloaded the clone somehow).
    execFileSync('git', ['clone', '--quiet', opts.repoDir, join(root, FRESH_REPO)], { stdio: 'inherit' });
    await copyFile('/etc/resolv.conf', join(root, 'etc/resolv.conf'));
    // What Debian's installer writes on every installed machine and a minbase tree lacks:
    // without it `localhost` does not resolve (vitest's server binds to it).
    await writeFile(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n');
    await writeFile(join(root, 'etc/hostname'), 'fresh-debian\n');
    const mounts: [string, string, Parameters<typeof cmd.mount>[2]][] = [
      ['proc', 'proc', { type: 'proc' }],
      ['sysfs', 'sys', { type: 'sysfs' }],
      // The host's /dev: loop devices a build inside attaches appear there.
      ['/dev', 'dev', { bind: true }],
      ['devpts', 'dev/pts', { type: 'devpts', options: ['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] }],
    ];
    const npmCache = join(homedir(), '.npm');
    if (opts.shareNpmCache !== false) {
      await mkdir(npmCache, { recursive: true });
      mounts.push([npmCache, 'root/.npm', { bind: true }]);
    }
    for (const [source, target, o] of mounts) {
      await mkdir(join(root, target), { recursive: true });
      await run(cmd.mount(source, join(root, target), o));
    }
  } catch (e) {
    await dispose().catch((cleanup: Error) => log(`cleanup after a failed set-up: ${cleanup.message}`));
    throw e;
  }

  return {
    root,
    async run(argv, o = {}) {
      const inside = cmd.chroot(root, ['sh', '-c', `cd ${FRESH_REPO} && exec "$@"`, 'fresh-host', ...argv], o.timeoutMs ?? 30 * MINUTE);
      const { exitCode } = await run(
        { ...inside, env: freshEnv(opts.shareNpmCache !== false) },
        // Any exit code is the command's answer, returned to the caller.
        { okExitCodes: Array.from({ length: 255 }, (_, i) => i + 1), onLine: o.onLine },
      );
      return exitCode;
    },
    dispose,
  };
}
