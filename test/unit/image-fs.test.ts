// seam/image-fs.ts resolves paths as the chroot would; the scrub, layout and
// Gentoo scrub stages, run for real on image trees full of hostile symlinks,
// never touch a file outside the image. The image trees live in temp dirs; the
// "host" is a temp dir of canary files beside them, reached by absolute links
// and by relative links that climb out of the image.

import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildPaths } from '../../pipeline/plan.ts';
import { afterAll, describe, expect, it } from 'vitest';
import type { BuildContext } from '../../pipeline/context.ts';
import { HnError } from '../../pipeline/errors.ts';
import { BEGIN_BUILD_ONLY, END_BUILD_ONLY } from '../../pipeline/gentoo/portage-config.ts';
import { profileSchema } from '../../pipeline/profile-schema.ts';
import { imageFs, MAX_LINKS } from '../../pipeline/seam/image-fs.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { openStageIO } from '../../pipeline/stage-io.ts';
import { gentooScrub } from '../../stages/gentoo-scrub.ts';
import { layout } from '../../stages/layout.ts';
import { SCRUB_REMOVE, SCRUB_TRUNCATE, scrub, scrubTree } from '../../stages/scrub.ts';

const bases: string[] = [];
afterAll(async () => {
  for (const b of bases) await rm(b, { recursive: true, force: true });
});

/**
 * base/host: the "host" with its canaries; base/a/b/root: the image. From
 * root/etc, `../../../..` climbs to base (the old join(root, ...) followed it there).
 */
async function setup() {
  const base = await mkdtemp(join(tmpdir(), 'hnforge-imagefs-'));
  bases.push(base);
  const host = join(base, 'host');
  const root = join(base, 'a/b/root');
  const logs = join(base, 'logs');
  for (const d of [host, root, logs]) await mkdir(d, { recursive: true });
  return { base, host, root, logs };
}

/** Creates files ('text'), directories ({dir}) and symlinks ({link}) below `dir`. */
async function tree(dir: string, spec: Record<string, string | { link: string } | { dir: true }>) {
  for (const [path, what] of Object.entries(spec)) {
    const p = join(dir, path);
    await mkdir(dirname(p), { recursive: true });
    if (typeof what === 'string') await writeFile(p, what);
    else if ('link' in what) await symlink(what.link, p);
    else await mkdir(p, { recursive: true });
  }
}

/** Everything below `dir` (type, size, mtime, content hash, link target), skipping `exclude` subtrees. */
async function snapshot(dir: string, exclude: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string) => {
    if (exclude.includes(p)) return;
    const st = await lstat(p);
    if (st.isSymbolicLink()) out[p] = `link ${await readlink(p)}`;
    else if (st.isDirectory()) {
      out[p] = `dir ${st.mtimeMs}`;
      for (const n of await readdir(p)) await walk(join(p, n));
    } else out[p] = `file ${st.size} ${st.mtimeMs} ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
  };
  await walk(dir);
  return out;
}

const codeOf = async (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof HnError ? `${e.code}: ${e.message}` : String(e)));

async function runStage(stage: StageDef, root: string, logDir: string) {
  const profile = profileSchema.parse({
    name: 'hostile', description: 'hostile image tree', base: 'debian',
    image: { sizeGiB: 1, filesystem: 'ext4', label: 'hn-root', fileName: 'hn-root.img' },
    packages: [],
    layout: { hostname: 'hn-unconfigured', directories: ['/hostpart', '/boot/loader'] },
    boot: { modules: [], hostpartFilesystems: ['ext4'] },
  });
  const paths = { ...buildPaths(profile, { repoDir: '/nonexistent', cacheDir: logDir, outputDir: logDir }), root };
  const ctx: BuildContext = { profile, paths, repoDir: paths.repo, buildDir: paths.build, cacheDir: logDir, outputDir: logDir, stack: new ResourceStack(), dryRun: false, root };
  await mkdir(logDir, { recursive: true });
  const io = openStageIO(join(logDir, `${stage.name}.log`), new AbortController().signal, () => {});
  try {
    await stage.run(ctx, io);
  } finally {
    await io.close();
  }
}

describe('image-fs: paths resolved inside the image', () => {
  it('absolute links start from the image root; relative ones and `..` stop at it', async () => {
    const { host, root } = await setup();
    await tree(root, {
      'var/run': { link: '/run' },
      'run/utmp': 'x',
      'etc/ssh': { link: '../../../..' },
      'var/lib/docker': { link: host },
      'a': { link: 'b' },
      'b': { link: '/c' },
      'c': { dir: true },
    });
    const img = imageFs(root);
    expect(await img.resolve('var/run/utmp')).toBe(join(root, 'run/utmp'));
    expect(await img.canonical('/var/run/utmp')).toBe('/run/utmp');
    expect(await img.canonical('etc/ssh/ssh_host_rsa_key')).toBe('/ssh_host_rsa_key');
    expect(await img.canonical('../../../etc/passwd')).toBe('/etc/passwd');
    expect(await img.canonical('c/../../../x')).toBe('/x');
    // A link to the host's absolute path means that path inside the image.
    expect(await img.resolve('var/lib/docker/overlay2')).toBe(join(root, host, 'overlay2'));
    expect(await img.canonical('a/f')).toBe('/c/f');
  });

  it(`follows at most ${MAX_LINKS} links, then names the path and the loop`, async () => {
    const { root } = await setup();
    const chain: Record<string, { link: string } | { dir: true }> = { 'end': { dir: true }, 'loop1': { link: 'loop2' }, 'loop2': { link: '/loop1' }, 'self': { link: 'self' } };
    for (let i = 0; i < MAX_LINKS + 1; i++) chain[`l${i}`] = { link: i === 0 ? 'end' : `l${i - 1}` };
    await tree(root, chain);
    const img = imageFs(root);
    expect(await img.canonical(`l${MAX_LINKS - 1}/x`)).toBe('/end/x');
    for (const path of [`l${MAX_LINKS}/x`, 'loop1/x', 'self']) {
      const e = await codeOf(img.read(path));
      expect(e).toMatch(/^EIMAGE_PATH: image path \/\S+ \(image at .*\): more than 40 symbolic links/);
      expect(e).toContain(`/${path}`);
      expect(e).not.toContain('\n');
    }
  });

  it('the last component: followed (in the image) to read, truncate, chmod, stat; acted on itself to remove, replace, rename', async () => {
    const { base, host, root, logs } = await setup();
    await tree(host, { 'machine-id': 'host id', 'wtmp': 'host wtmp', 'secret': 'host secret' });
    await tree(root, {
      'etc/machine-id': { link: join(host, 'machine-id') },
      'etc/data': { link: '/srv/data' },
      'srv/data': 'image data',
      'var/log/wtmp': { link: join(host, 'wtmp') },
      [`${host.slice(1)}/wtmp`]: 'image wtmp',
      'etc/secret': { link: join(host, 'secret') },
      'etc/old': { link: join(host, 'secret') },
    });
    const before = await snapshot(base, [root, logs]);
    const img = imageFs(root);
    expect(await img.readText('etc/data')).toBe('image data');
    expect((await img.lstat('etc/data'))?.isSymbolicLink()).toBe(true);
    expect((await img.stat('etc/data'))?.size).toBe('image data'.length);
    expect(await img.stat('etc/machine-id')).toBeUndefined(); // dangling inside the image
    expect(await img.exists('etc/machine-id')).toBe(true);
    await img.truncate('var/log/wtmp');
    expect(await readFile(join(root, host, 'wtmp'), 'utf8')).toBe('');
    await img.chmod('etc/data', 0o600);
    expect((await stat(join(root, 'srv/data'))).mode & 0o777).toBe(0o600);
    await img.write('etc/machine-id', '');
    expect((await lstat(join(root, 'etc/machine-id'))).isFile()).toBe(true);
    await img.symlink('/dev/null', 'etc/secret');
    expect(await readlink(join(root, 'etc/secret'))).toBe('/dev/null');
    await img.rename('etc/old', 'etc/older');
    expect(await readlink(join(root, 'etc/older'))).toBe(join(host, 'secret'));
    await img.remove('etc/older');
    expect(await img.exists('etc/older')).toBe(false);
    expect(await snapshot(base, [root, logs])).toEqual(before);
  });

  it('mkdir -p and writes go through links inside the image; a file in the way and the root itself are refused', async () => {
    const { base, host, root, logs } = await setup();
    await tree(root, { 'opt': { link: '/srv/opt' }, 'etc/hostname': 'x', 'lib': { link: host } });
    const before = await snapshot(base, [root, logs]);
    const img = imageFs(root);
    expect(await img.mkdirp('opt/app/conf')).toBe(join(root, 'srv/opt/app/conf'));
    expect(await img.write('lib/modules/6.1/modules.dep', 'dep\n')).toBe(join(root, host, 'modules/6.1/modules.dep'));
    expect(await codeOf(img.mkdirp('etc/hostname/x'))).toMatch(/^EIMAGE_PATH: image path \/etc\/hostname\/x .*: \/etc\/hostname is not a directory$/);
    expect(await codeOf(img.write('etc', 'x'))).toMatch(/^EIMAGE_PATH: image path \/etc .*: is a directory, expected a file$/);
    expect(await codeOf(img.remove('/'))).toMatch(/refusing to remove the image root/);
    expect(await codeOf(img.remove('etc/..'))).toMatch(/refusing to remove the image root/);
    expect(await codeOf(img.read('etc/nothing'))).toMatch(/^EIMAGE_PATH: image path \/etc\/nothing .*: no such file$/);
    expect(await img.list('no/such/dir')).toEqual([]);
    expect(await snapshot(base, [root, logs])).toEqual(before);
  });

  it('glob: the directory resolved inside the image, a matching link returned as is', async () => {
    const { host, root } = await setup();
    await tree(host, { 'log/host.log': 'host' });
    await tree(root, { 'var/log': { link: '/logs' }, 'logs/a.log': 'a', 'logs/b.log': { link: join(host, 'log/host.log') }, 'logs/c.txt': 'c', 'var/lib/dhcp': { link: join(host, 'log') } });
    const img = imageFs(root);
    expect(await img.glob('var/log/*.log')).toEqual(['/logs/a.log', '/logs/b.log']);
    expect(await img.glob('var/log/c.txt')).toEqual(['/logs/c.txt']);
    expect(await img.glob('var/lib/dhcp/*')).toEqual([]);
    expect(await img.glob('var/nothing/*')).toEqual([]);
  });
});

describe('stages on a hostile image tree leave the host alone', () => {
  // Set once the scrub has been shown to stay inside a temp image; the test with
  // links to the real / and /run only runs after that.
  let scrubStaysInside = false;

  it('scrub: links to a host directory (absolute and climbing) are resolved inside the image', async () => {
    const { base, host, root, logs } = await setup();
    await tree(base, { 'ssh_host_rsa_key': 'host key', 'ssh_host_rsa_key.pub': 'host pub' });
    await tree(host, {
      'run/utmp': 'host utmp', 'docker/canary': 'host docker', 'dhcp/lease': 'host lease', 'dotssh/authorized_keys': 'host keys',
      'wtmp': 'host wtmp', 'machine-id': 'host machine id', 'tmp/file': 'host tmp',
    });
    // (Inside the image, links to the host dir lead below /tmp, which the scrub empties anyway.)
    await tree(root, {
      'etc/ssh': { link: '../../../..' },
      'ssh_host_image_key': 'image key',
      'var/run': { link: join(host, 'run') },
      'var/lib/docker': { link: join(host, 'docker') },
      'var/lib/dhcp': { link: '../../../../../host/dhcp' },
      'host/dhcp/lease': 'image lease',
      'root/.ssh': { link: join(host, 'dotssh') },
      'var/log': { link: '../srv/log' },
      'srv/log/wtmp': { link: join(host, 'wtmp') },
      'srv/log/syslog.log': 'image log',
      'etc/machine-id': { link: join(host, 'machine-id') },
      'var/tmp': { link: join(host, 'tmp') },
      'var/lib/apt/lists/deb_Packages': 'lists',
    });
    const before = await snapshot(base, [root, logs]);
    await runStage(scrub, root, logs);
    expect(await snapshot(base, [root, logs])).toEqual(before);

    // What the rules mean inside the image was done there.
    await expect(lstat(join(root, 'ssh_host_image_key'))).rejects.toThrow();
    await expect(lstat(join(root, 'host/dhcp/lease'))).rejects.toThrow();
    await expect(lstat(join(root, 'root/.ssh'))).rejects.toThrow();
    await expect(lstat(join(root, 'var/lib/apt/lists/deb_Packages'))).rejects.toThrow();
    expect(await readFile(join(root, 'srv/log/syslog.log'), 'utf8')).toBe('');
    expect((await lstat(join(root, 'srv/log/wtmp'))).isSymbolicLink()).toBe(true);
    const machineId = await lstat(join(root, 'etc/machine-id'));
    expect(machineId.isFile() && machineId.size === 0).toBe(true);
    scrubStaysInside = true;
  });

  it('scrub: a link loop fails with one line naming the image path', async () => {
    const { root } = await setup();
    await tree(root, { 'var/cache/apt': { link: 'apt2' }, 'var/cache/apt2': { link: '/var/cache/apt' } });
    expect(await codeOf(scrubTree(root, () => {}))).toMatch(/^EIMAGE_PATH: image path \/var\/cache\/apt .*more than 40 symbolic links/);
  });

  it('layout: links to a host directory (absolute and climbing) are resolved inside the image', async () => {
    const { base, host, root, logs } = await setup();
    await tree(base, { 'vmlinuz-9.9-host': 'host kernel' });
    await tree(host, { 'etc/fstab': 'host fstab', 'etc/hostname': 'host\n', 'data/keep': 'host data', 'hostpart/keep': 'host part' });
    await tree(root, {
      'etc': { link: join(host, 'etc') },
      'data0': { link: join(host, 'data') },
      'boot': { link: '../../..' }, // from root/: climbs to base
      'vmlinuz-6.1.0-9-amd64': 'image kernel',
      'hostpart': { link: join(host, 'hostpart') },
    });
    const before = await snapshot(base, [root, logs]);
    await runStage(layout, root, logs);
    expect(await snapshot(base, [root, logs])).toEqual(before);

    const etc = join(root, host.slice(1), 'etc');
    expect(await readFile(join(etc, 'fstab'), 'utf8')).toContain('LABEL=hn-root / auto');
    expect(await readFile(join(etc, 'hostname'), 'utf8')).toBe('hn-unconfigured\n');
    expect(await readlink(join(etc, 'systemd/system/systemd-networkd-wait-online.service'))).toBe('/dev/null');
    expect(await readlink(join(root, 'data0'))).toBe('/hostpart/data');
    expect(await readlink(join(root, 'kernel'))).toBe('vmlinuz-6.1.0-9-amd64');
    // The profile's kernel command line (schema default here, with the trial settings) is written where GRUB reads it.
    expect(await readFile(join(root, 'hn-kernel-args.cfg'), 'utf8')).toContain("set hn_kernel_args='console=tty0 console=ttyS0,115200n8 hn.trial_budget=2 hn.trial_timeout=600'");
    expect((await stat(join(root, host.slice(1), 'hostpart'))).isDirectory()).toBe(true);
  });

  it('gentoo-scrub: build-only files and make.conf behind links are handled inside the image', async () => {
    const { base, host, root, logs } = await setup();
    const makeConf = ['CFLAGS="-O2"', BEGIN_BUILD_ONLY, 'source /etc/portage/hnforge-build.conf', END_BUILD_ONLY, ''].join('\n');
    await tree(base, { 'hnforge/keep': 'host work dir' });
    await tree(host, { 'portage/make.conf': makeConf, 'portage/hnforge-build.conf': 'MAKEOPTS=-j64' });
    await tree(root, {
      'etc/portage': { link: join(host, 'portage') },
      [join(host.slice(1), 'portage/make.conf')]: makeConf,
      [join(host.slice(1), 'portage/hnforge-build.conf')]: 'MAKEOPTS=-j2',
      'var/tmp': { link: '../../../..' },
      'hnforge/linuxrc': 'image work dir',
    });
    const before = await snapshot(base, [root, logs]);
    await runStage(gentooScrub, root, logs);
    expect(await snapshot(base, [root, logs])).toEqual(before);
    expect(await readFile(join(root, host.slice(1), 'portage/make.conf'), 'utf8')).toBe('CFLAGS="-O2"\n');
    await expect(lstat(join(root, host.slice(1), 'portage/hnforge-build.conf'))).rejects.toThrow();
    await expect(lstat(join(root, 'hnforge'))).rejects.toThrow();
  });

  it("scrub: Debian's literal /var/run -> /run and a /var/lib/docker -> / stay inside the image", async () => {
    // Links to the build host's real /run and /: only after the scrub was shown to stay inside.
    if (!scrubStaysInside) throw new Error('not run: the scrub has not been shown to stay inside the image (see the test before)');
    const debian = await setup();
    await tree(debian.root, { 'var/run': { link: '/run' }, 'run/utmp': 'image utmp' });
    const docker = await setup();
    await tree(docker.root, { 'var/lib/docker': { link: '/' }, 'usr/bin/sh': 'image shell' });
    // Before anything is removed: every path the rules name resolves below the temp image.
    for (const { root } of [debian, docker]) {
      for (const pattern of [...SCRUB_REMOVE, ...SCRUB_TRUNCATE]) {
        for (const path of await imageFs(root).glob(pattern)) expect((await imageFs(root).resolve(path, { follow: false })).startsWith(`${root}/`), path).toBe(true);
      }
    }
    const hostUtmp = async () => (await lstat('/run/utmp').catch(() => undefined))?.mtimeMs ?? 'absent';
    const hostRoot = async () => (await readdir('/')).sort();
    const [utmpBefore, rootBefore] = [await hostUtmp(), await hostRoot()];
    const before = [await snapshot(debian.base, [debian.root, debian.logs]), await snapshot(docker.base, [docker.root, docker.logs])];

    await runStage(scrub, debian.root, debian.logs);
    await runStage(scrub, docker.root, docker.logs);

    expect(await hostUtmp()).toBe(utmpBefore);
    expect(await hostRoot()).toEqual(rootBefore);
    expect([await snapshot(debian.base, [debian.root, debian.logs]), await snapshot(docker.base, [docker.root, docker.logs])]).toEqual(before);
    expect(await readFile(join(debian.root, 'run/utmp'), 'utf8')).toBe('');
    // /var/lib/docker/* inside that image is its whole tree, as in its chroot.
    await expect(lstat(join(docker.root, 'usr/bin/sh'))).rejects.toThrow();
  });
});
