// The release identity of a build: what goes into the image (hn-release,
// os-release, the keyring), how its version is decided, what the report says
// about where it came from, and the file list of a tree, each on temp trees.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IMAGE_PATHS } from '../../pipeline/boot/contract.ts';
import { HnError } from '../../pipeline/errors.ts';
import { buildSources, decideVersion, gitRevision, publishingKeyOf, reportVersion, storeVersions } from '../../pipeline/release.ts';
import { formatReportJson, summarise, type BuildReport } from '../../pipeline/report.ts';
import { generateSigningKey, readPublicKeys } from '../../pipeline/publish/signing.ts';
import { listImageFiles, mountPointsBelow } from '../../pipeline/seam/image-files.ts';
import { imageFs } from '../../pipeline/seam/image-fs.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { mountOn } from '../../pipeline/seam/system.ts';
import { hnReleaseText, withImageIdentity, writeRelease } from '../../stages/release.ts';
import { hnforge } from '../support/cli.ts';
import type { BuildContext } from '../../pipeline/context.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function temp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const IDENTITY = { version: '20261202.3', profile: 'hn-debian', base: 'debian', built: '2026-12-02T10:00:00Z' };
const DEBIAN_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

describe('os-release and hn-release', () => {
  it('sets IMAGE_ID and IMAGE_VERSION, replacing lines already there and keeping the rest', () => {
    const old = `${DEBIAN_OS_RELEASE}IMAGE_ID=old-image\nIMAGE_VERSION="1.0"\nHOME_URL="https://www.debian.org/"\n`;
    const text = withImageIdentity(old, 'hn-debian', '20261202.3');
    expect(text).toBe(`${DEBIAN_OS_RELEASE}HOME_URL="https://www.debian.org/"\nIMAGE_ID="hn-debian"\nIMAGE_VERSION="20261202.3"\n`);
    expect(withImageIdentity(text, 'hn-debian', '20261202.4').match(/^IMAGE_(ID|VERSION)=.*$/gm)).toEqual(['IMAGE_ID="hn-debian"', 'IMAGE_VERSION="20261202.4"']);
    expect(withImageIdentity('', 'hn', 'v1')).toBe('IMAGE_ID="hn"\nIMAGE_VERSION="v1"\n');
  });

  it('writes a shell-sourceable /etc/hn-release', async () => {
    const text = hnReleaseText({ ...IDENTITY, keyFingerprints: ['AB'.repeat(20)] });
    expect(text).toBe(
      `# Written by hnforge when this image was built; shell-sourceable.\nHN_VERSION="20261202.3"\nHN_PROFILE="hn-debian"\nHN_BASE="debian"\nHN_BUILT="2026-12-02T10:00:00Z"\nHN_PUBLISHING_KEY="${'AB'.repeat(20)}"\n`,
    );
    const file = join(await temp('hnrel-'), 'hn-release');
    await writeFile(file, hnReleaseText({ ...IDENTITY, version: '1.0+rc~1-x' }));
    const sourced = execFileSync('sh', ['-c', '. "$1"; printf "%s|%s|%s|%s" "$HN_VERSION" "$HN_PROFILE" "$HN_BASE" "$HN_BUILT"', 'sh', file], { encoding: 'utf8' });
    expect(sourced).toBe('1.0+rc~1-x|hn-debian|debian|2026-12-02T10:00:00Z');
  });

  it('replaces the /etc/os-release -> ../usr/lib/os-release link with a file, leaving the package\'s file alone', async () => {
    const root = await temp('hnrel-root-');
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'usr/lib/os-release'), DEBIAN_OS_RELEASE);
    await symlink('../usr/lib/os-release', join(root, 'etc/os-release'));
    const done = await writeRelease(imageFs(root), IDENTITY, undefined);
    expect(done).toContain('/etc/os-release (was a symlink: now a regular file)');
    expect((await lstat(join(root, 'etc/os-release'))).isFile()).toBe(true);
    expect(await readFile(join(root, 'etc/os-release'), 'utf8')).toBe(`${DEBIAN_OS_RELEASE}IMAGE_ID="hn-debian"\nIMAGE_VERSION="20261202.3"\n`);
    expect(await readFile(join(root, 'usr/lib/os-release'), 'utf8')).toBe(DEBIAN_OS_RELEASE);
    expect(await readFile(join(root, IMAGE_PATHS.hnRelease.slice(1)), 'utf8')).toContain('HN_VERSION="20261202.3"\n');
    await expect(lstat(join(root, IMAGE_PATHS.publishingKeyring.slice(1)))).rejects.toThrow();
  });

  it('reads an absolute os-release link inside the image, never the host\'s file', async () => {
    const base = await temp('hnrel-abs-');
    const root = join(base, 'root');
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'usr/lib/os-release'), 'ID=inside\n');
    // Absolute: on the host this would be the host's own /usr/lib/os-release.
    await symlink('/usr/lib/os-release', join(root, 'etc/os-release'));
    await writeRelease(imageFs(root), IDENTITY, undefined);
    expect(await readFile(join(root, 'etc/os-release'), 'utf8')).toBe('ID=inside\nIMAGE_ID="hn-debian"\nIMAGE_VERSION="20261202.3"\n');
    // A dangling link: an os-release with the two lines only.
    const bare = join(base, 'bare');
    await mkdir(join(bare, 'etc'), { recursive: true });
    await symlink('../usr/lib/os-release', join(bare, 'etc/os-release'));
    await writeRelease(imageFs(bare), IDENTITY, undefined);
    expect(await readFile(join(bare, 'etc/os-release'), 'utf8')).toBe('IMAGE_ID="hn-debian"\nIMAGE_VERSION="20261202.3"\n');
  });

  it('bakes the public keyring of a signing key (passphrase-protected) at IMAGE_PATHS.publishingKeyring; a wrong passphrase is one line', async () => {
    const key = await generateSigningKey({ name: 'release test', passphrase: 'secret words' });
    const publishing = await publishingKeyOf({ armored: key.privateKey, passphrase: 'secret words' });
    expect(publishing.fingerprints).toEqual([key.fingerprint]);
    const root = await temp('hnrel-key-');
    await writeRelease(imageFs(root), { ...IDENTITY, keyFingerprints: publishing.fingerprints }, publishing.keyring);
    const baked = await readFile(join(root, IMAGE_PATHS.publishingKeyring.slice(1)));
    expect(baked.subarray(0, 1)[0]! & 0x80).toBe(0x80); // binary packets, not armor (gpgv refuses armor)
    const keys = await readPublicKeys(baked);
    expect(keys.map((k) => k.getFingerprint().toUpperCase())).toEqual([key.fingerprint]);
    expect(keys[0]!.isPrivate()).toBe(false);
    // An unsigned rebuild of the same tree takes the keyring out again.
    await writeRelease(imageFs(root), IDENTITY, undefined);
    await expect(lstat(join(root, IMAGE_PATHS.publishingKeyring.slice(1)))).rejects.toThrow();
    await expect(publishingKeyOf({ armored: key.privateKey, passphrase: 'wrong' })).rejects.toMatchObject({ code: 'ESIGN_PASSPHRASE' });
    await expect(publishingKeyOf({ armored: key.privateKey })).rejects.toMatchObject({ code: 'ESIGN_PASSPHRASE' });
  });
});

describe('the build version', () => {
  const now = new Date('2026-12-02T23:59:00Z');

  it('takes --version as given, checked: an invalid one is EVERSION', () => {
    expect(decideVersion({ explicit: '2.0-rc1', known: ['20261202.7'], now, reusable: '20261202.1' })).toEqual({ version: '2.0-rc1', how: 'explicit' });
    expect(() => decideVersion({ explicit: 'two words', known: [], now })).toThrow(HnError);
    try {
      decideVersion({ explicit: '../x', known: [], now });
    } catch (e) {
      expect((e as HnError).code).toBe('EVERSION');
      expect((e as HnError).message).not.toContain('\n');
    }
  });

  it('defaults to the next YYYYMMDD.N of the UTC day after every known version', () => {
    expect(decideVersion({ known: [], now })).toEqual({ version: '20261202.1', how: 'next' });
    expect(decideVersion({ known: ['20261202.9', '20261202.10', '20261201.30', 'custom'], now }).version).toBe('20261202.11');
  });

  it('reuses the version the same inputs got earlier the same UTC day, not on another day', () => {
    expect(decideVersion({ known: ['20261202.5'], now, reusable: '20261202.2' })).toEqual({ version: '20261202.2', how: 'reused' });
    expect(decideVersion({ known: ['20261202.5'], now: new Date('2026-12-03T00:00:01Z'), reusable: '20261202.2' })).toEqual({ version: '20261203.1', how: 'next' });
    // An explicit version cached for the inputs is not a default of the day: not reused.
    expect(decideVersion({ known: ['20261202.5'], now, reusable: '2.0-rc1' }).version).toBe('20261202.6');
  });

  it('knows the versions of every channel of the profile in a store, and the published report\'s', async () => {
    const dir = await temp('hnrel-store-');
    const line = (file: string) => `${sha(file)} *${file}\n`;
    await mkdir(join(dir, 'hn-debian/stable'), { recursive: true });
    await mkdir(join(dir, 'hn-debian/testing'), { recursive: true });
    await mkdir(join(dir, 'other/stable'), { recursive: true });
    await writeFile(join(dir, 'hn-debian/stable/SHA256SUMS'), line('hn-root_20261202.2.img.zst') + line('hn-root_20261202.2.json'));
    await writeFile(join(dir, 'hn-debian/testing/SHA256SUMS'), line('hn-root_20261202.4.img.zst') + line('hn-root_20261202.4.report.txt'));
    await writeFile(join(dir, 'other/stable/SHA256SUMS'), line('hn-root_20261202.9.img.zst'));
    expect((await storeVersions(`file://${dir}`, 'hn-debian')).sort()).toEqual(['20261202.2', '20261202.4']);
    expect(await storeVersions(`file://${dir}`, 'nothing-here')).toEqual([]);
    await writeFile(join(dir, 'hn-debian/testing/SHA256SUMS'), 'not a sums file\n');
    await expect(storeVersions(`file://${dir}`, 'hn-debian')).rejects.toMatchObject({ code: 'ESUMS_FORMAT' });

    const report = join(dir, 'hn-root.report.json');
    expect(await reportVersion(report)).toBeUndefined();
    await writeFile(report, JSON.stringify({ profile: 'hn-debian' }));
    expect(await reportVersion(report)).toBeUndefined();
    await writeFile(report, JSON.stringify({ profile: 'hn-debian', version: '20261202.8' }));
    expect(await reportVersion(report)).toBe('20261202.8');
  });

  it('an invalid --version stops the CLI at once with one EVERSION line (exit 2, no stack)', async () => {
    const r = await hnforge(['build', '--profile', 'hn-debian', '--dry-run', '--version', 'no spaces please'], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^hnforge: error: version "no spaces please" is not valid/)]);
  });
});

describe('the signing key on the command line', () => {
  it('HNFORGE_SIGNING_KEY (the armored key itself, passphrase from HNFORGE_KEY_PASSPHRASE) reaches the release stage; a wrong passphrase is one line', async () => {
    const key = await generateSigningKey({ name: 'cli release test', passphrase: 'pw' });
    const saved = { ...process.env };
    try {
      process.env.HNFORGE_SIGNING_KEY = key.privateKey;
      process.env.HNFORGE_KEY_PASSPHRASE = 'pw';
      const ok = await hnforge(['build', '--profile', 'hn-debian', '--dry-run', '--version', '7.1'], { timeoutMs: 60_000 });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('version 7.1 (explicit)');
      expect(ok.stdout).toContain(`$ write ${IMAGE_PATHS.publishingKeyring} (${key.fingerprint})`);
      process.env.HNFORGE_KEY_PASSPHRASE = 'not it';
      const bad = await hnforge(['build', '--profile', 'hn-debian', '--dry-run'], { timeoutMs: 60_000 });
      expect(bad.code).toBe(1);
      expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^hnforge: error: cannot unlock the signing key [0-9A-F]{40}/)]);
    } finally {
      process.env = saved;
    }
  });

  it('an unreadable --signing-key file is one usage line; without a key the plan says nothing is baked', async () => {
    const missing = await hnforge(['build', '--profile', 'hn-debian', '--dry-run', '--signing-key', '/nonexistent/signing-key.asc'], { timeoutMs: 60_000 });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toEqual(['hnforge: error: --signing-key /nonexistent/signing-key.asc: cannot read the key file (ENOENT); give the armored private key hnforge keygen wrote (signing-key.asc)']);
    // An empty cache: every stage would run, so the plan shows the release stage's lines (a cached one shows none).
    const none = await hnforge(['build', '--profile', 'hn-debian', '--dry-run', '--cache', await temp('hnrel-cache-')], { timeoutMs: 60_000 });
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toContain('$ no signing key: no keyring in the image');
    expect(none.stdout).toMatch(/version \d{8}\.\d+ \((next|reused)\)/);
  });
});

describe('where the build came from', () => {
  it('gitRevision: HEAD, "-dirty" with changed tracked files (untracked ones do not count), undefined outside git', async () => {
    const repo = await temp('hnrel-git-');
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args], { encoding: 'utf8' }).trim();
    expect(await gitRevision(repo)).toBeUndefined();
    git('init', '--quiet');
    await writeFile(join(repo, 'a'), 'one\n');
    git('add', 'a');
    git('commit', '--quiet', '-m', 'one');
    const head = git('rev-parse', 'HEAD');
    await writeFile(join(repo, 'untracked'), 'x\n');
    expect(await gitRevision(repo)).toBe(head);
    await writeFile(join(repo, 'a'), 'two\n');
    expect(await gitRevision(repo)).toBe(`${head}-dirty`);
  });

  it('sources: the Debian mirror and its date, or the stage3 digest and the pinned repository', () => {
    const debian = { profile: { base: 'debian', debian: { suite: 'bookworm' } }, mirror: 'http://deb.example/debian', mirrorDate: 'Sat, 08 Nov 2026 10:00:00 UTC' } as unknown as BuildContext;
    expect(buildSources(debian)).toEqual({ 'debian.mirror': 'http://deb.example/debian', 'debian.mirrorDate': 'Sat, 08 Nov 2026 10:00:00 UTC', 'debian.suite': 'bookworm' });
    const gentoo = {
      profile: { base: 'gentoo', gentoo: { repository: { gitCommit: 'c'.repeat(40) } } },
      gentooStage3: { url: 'https://m/stage3.tar.xz', fileName: 'stage3.tar.xz', sha512: 'f'.repeat(128), fingerprint: 'F' },
    } as unknown as BuildContext;
    expect(buildSources(gentoo)).toEqual({
      'gentoo.stage3': 'stage3.tar.xz', 'gentoo.stage3.url': 'https://m/stage3.tar.xz', 'gentoo.stage3.sha512': 'f'.repeat(128), 'gentoo.repository.commit': 'c'.repeat(40),
    });
  });

  it('the JSON report lists files one per line and reads back whole; the text summary shows the version, not the files', () => {
    const files = [
      { path: '/', type: 'd' as const, mode: '0755', uid: 0, gid: 0, size: 0 },
      { path: '/etc/hn-release', type: 'f' as const, mode: '0644', uid: 0, gid: 0, size: 3, sha256: sha('abc') },
    ];
    const report: BuildReport = {
      profile: 'p', base: 'debian', version: '20261202.1', sources: { 'debian.mirror': 'http://m' }, image: '/o/hn-root.img', inputsDigest: 'k',
      builtAt: 'now', wallSeconds: 1, apparentBytes: 1, usedBytes: 1, packages: [], stages: [], files,
    };
    const json = formatReportJson(report);
    expect(JSON.parse(json)).toEqual(report);
    expect(json.split('\n').filter((l) => l.includes('"path"'))).toEqual(files.map((f) => `    ${JSON.stringify(f)}${f === files.at(-1) ? '' : ','}`));
    expect(JSON.parse(formatReportJson({ ...report, files: [] }))).toEqual({ ...report, files: [] });
    const text = summarise(report);
    expect(text).toContain('version        20261202.1\n');
    expect(text).toContain('publishing key none');
    expect(text).not.toContain('/etc/hn-release');
  });
});

describe('the file list of a tree', () => {
  it('lists type, mode, owner, size, sha256 and link targets without following links', async () => {
    const base = await temp('hnrel-files-');
    const root = join(base, 'root');
    const outside = join(base, 'outside');
    await mkdir(join(root, 'etc/sub'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), 'host file\n');
    await writeFile(join(root, 'etc/hostname'), 'hn\n');
    await chmod(join(root, 'etc/hostname'), 0o640);
    await writeFile(join(root, 'etc/sub/big'), Buffer.alloc(3 * 1024 * 1024 + 7, 1));
    await chmod(join(root, 'etc/sub'), 0o1750);
    await symlink(outside, join(root, 'etc/out-abs'));
    await symlink('../../outside', join(root, 'etc/out-rel'));
    await symlink('hostname', join(root, 'etc/name'));
    execFileSync('mkfifo', [join(root, 'etc/fifo')]);
    const files = await listImageFiles(root, { concurrency: 2 });
    expect(files.map((f) => f.path)).toEqual(['/', '/etc', '/etc/fifo', '/etc/hostname', '/etc/name', '/etc/out-abs', '/etc/out-rel', '/etc/sub', '/etc/sub/big']);
    const by = Object.fromEntries(files.map((f) => [f.path, f]));
    const uid = process.getuid!();
    const gid = process.getgid!();
    expect(by['/etc/hostname']).toEqual({ path: '/etc/hostname', type: 'f', mode: '0640', uid, gid, size: 3, sha256: sha('hn\n') });
    expect(by['/etc/sub/big']!.sha256).toBe(sha(Buffer.alloc(3 * 1024 * 1024 + 7, 1)));
    expect(by['/etc/sub']).toMatchObject({ type: 'd', mode: '1750', size: 0 });
    expect(by['/etc/sub']!.sha256).toBeUndefined();
    expect(by['/etc/out-abs']).toMatchObject({ type: 'l', target: outside, size: outside.length });
    expect(by['/etc/out-rel']).toMatchObject({ type: 'l', target: '../../outside' });
    expect(by['/etc/name']).toMatchObject({ type: 'l', target: 'hostname' });
    expect(by['/etc/fifo']).toMatchObject({ type: 'p', size: 0 });
    expect(files.some((f) => f.path.includes('secret'))).toBe(false);
    // The root given through a link is the tree itself.
    await symlink(root, join(base, 'root-link'));
    expect(await listImageFiles(join(base, 'root-link'))).toEqual(files);
  });

  it('reads mount points from mountinfo, octal escapes included', async () => {
    const info = join(await temp('hnrel-mi-'), 'mountinfo');
    await writeFile(info, [
      '22 1 8:1 / / rw - ext4 /dev/vda rw',
      '30 22 0:5 / /srv/img/root/proc rw - proc proc rw',
      '31 22 0:6 / /srv/img/root/with\\040space rw - tmpfs tmpfs rw',
      '32 22 0:7 / /srv/img/rootless rw - tmpfs tmpfs rw',
      '',
    ].join('\n'));
    expect([...(await mountPointsBelow('/srv/img/root', info))].sort()).toEqual(['/srv/img/root/proc', '/srv/img/root/with space']);
  });

  it.skipIf(process.getuid?.() !== 0)('[root] lists a mount point inside the tree but does not enter the other filesystem', async () => {
    const root = join(await temp('hnrel-mnt-'), 'root');
    await mkdir(join(root, 'proc'), { recursive: true });
    await mkdir(join(root, 'run'));
    await writeFile(join(root, 'run/own'), 'x');
    const stack = new ResourceStack();
    try {
      await mountOn(stack, 'proc', join(root, 'proc'), { type: 'proc', options: ['nosuid', 'nodev', 'noexec'] });
      await mountOn(stack, 'tmpfs', join(root, 'run'), { type: 'tmpfs', options: ['mode=0700'] });
      await writeFile(join(root, 'run/on-tmpfs'), 'y');
      const skipped: string[] = [];
      const files = await listImageFiles(root, { onSkip: (p) => skipped.push(p) });
      expect(files.map((f) => f.path)).toEqual(['/', '/proc', '/run']);
      expect(skipped.sort()).toEqual(['/proc', '/run']);
    } finally {
      const { failed } = await stack.unwind();
      expect(failed).toEqual([]);
    }
    // Unmounted, the directory's own content is listed again.
    expect((await listImageFiles(root)).map((f) => f.path)).toEqual(['/', '/proc', '/run', '/run/own']);
  });
});
