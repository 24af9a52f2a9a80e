// The leak check on small trees: canary secrets of a scratch "build host"
// (SSH host key, history line, hostname, machine-id, resolv.conf) and of the
// build (a mirror password in the environment and in the profile's mirror URL,
// the signing key) are found when planted in the image, named by file and
// rule, never printed; look-alikes (ssh-keygen's marker string, a public key,
// the hostname inside a longer word, a link to the host's key) are not hits.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildContext } from '../../pipeline/context.ts';
import { HnError } from '../../pipeline/errors.ts';
import { buildPaths } from '../../pipeline/plan.ts';
import { profileSchema } from '../../pipeline/profile-schema.ts';
import { generateSigningKey } from '../../pipeline/publish/signing.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { openStageIO } from '../../pipeline/stage-io.ts';
import { STAGES, stagesFor } from '../../pipeline/stages-table.ts';
import { buildNeedles, hostNeedles, leakCheck, leakError, scanTree, secretNeedles, urlPasswords, type Needle } from '../../stages/leak-check.ts';
import { SCRUB_REMOVE, SCRUB_TRUNCATE } from '../../stages/scrub.ts';

const CANARY = {
  mirrorPassword: 'canary-mirror-pw-7f3a9c',
  urlPassword: 'canary-url-pw-51be02',
  history: 'curl -u admin:canary-history-4411 https://build.example/secret',
  hostname: 'canary-buildhost-42',
  machineId: 'c0ffee00c0ffee00c0ffee00c0ffee42',
  nameserver: 'nameserver 10.99.88.77',
};

let base: string;
let host: string;
let hostKeyPrivate: string;
let hostKeyPublic: string;
let signingKey: string;

async function put(dir: string, path: string, data: string | Buffer) {
  await mkdir(dirname(join(dir, path)), { recursive: true });
  await writeFile(join(dir, path), data);
}

/** A fresh image tree with a few ordinary files and the harmless look-alikes. */
async function cleanTree(name: string): Promise<string> {
  const root = join(base, name);
  await put(root, 'etc/os-release', 'ID=debian\n');
  await put(root, 'etc/machine-id', '');
  // ssh-keygen and libcrypto carry the markers, not keys.
  await put(root, 'usr/bin/ssh-keygen', Buffer.concat([Buffer.from('\x7fELF'), Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\0-----END OPENSSH PRIVATE KEY-----\0'), Buffer.alloc(64)]));
  await put(root, 'usr/share/doc/x/README', '-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n');
  // The hostname inside a longer word is not the hostname.
  await put(root, 'usr/share/doc/x/words', `x${CANARY.hostname}y ${CANARY.hostname}-extra\n`);
  // A public key and an empty history are fine.
  await put(root, 'etc/ssh/ssh_known_hosts', 'example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2g3u8mXnE3o6d9s7f6vT1Y0ZlVq2nE0xO4u1wZ8y6P\n');
  await put(root, 'root/.bash_history', '');
  // Links to the host's key files: listed, never followed out of the image.
  await mkdir(join(root, 'etc/leak'), { recursive: true });
  await symlink(join(host, 'etc/ssh/ssh_host_ed25519_key'), join(root, 'etc/leak/abs'));
  await symlink('../../../host/etc/ssh/ssh_host_ed25519_key', join(root, 'etc/leak/rel'));
  await symlink(join(host, 'etc/ssh'), join(root, 'etc/leak/dir'));
  return root;
}

const env = { HNFORGE_MIRROR_PASSWORD: CANARY.mirrorPassword, PATH: '/usr/bin:/bin', HOME: '/root', SHORT_TOKEN: 'abc' };
const profile = () =>
  profileSchema.parse({
    name: 'canary', description: 'leak canaries', base: 'debian',
    image: { sizeGiB: 1, filesystem: 'ext4', label: 'hn-root', fileName: 'hn-root.img' },
    packages: [],
    debian: { suite: 'bookworm', mirror: `http://mirroruser:${CANARY.urlPassword}@127.0.0.1:9/debian`, variant: 'minbase', components: ['main'], installRecommends: false },
    layout: { hostname: 'hn-unconfigured', directories: ['/hostpart'] },
    boot: { modules: [], hostpartFilesystems: ['ext4'] },
  });

function needles(): Needle[] {
  return buildNeedles({ profile: profile(), signingKeyArmored: signingKey }, { root: host, hostname: CANARY.hostname }, env).needles;
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'hnforge-leak-'));
  // The scratch directory standing for the build host: never the real host's files.
  host = join(base, 'host');
  await mkdir(join(host, 'etc/ssh'), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@canary', '-f', join(host, 'etc/ssh/ssh_host_ed25519_key')]);
  hostKeyPrivate = await readFile(join(host, 'etc/ssh/ssh_host_ed25519_key'), 'utf8');
  hostKeyPublic = await readFile(join(host, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
  await put(host, 'etc/hostname', `${CANARY.hostname}\n`);
  await put(host, 'etc/machine-id', `${CANARY.machineId}\n`);
  await put(host, 'etc/resolv.conf', `# from DHCP\n${CANARY.nameserver}\nnameserver 127.0.0.53\nsearch .\n`);
  await put(host, 'root/.bash_history', `ls\ncd /\n${CANARY.history}\n`);
  signingKey = (await generateSigningKey({ name: 'canary signer', email: 'canary@example.org' })).privateKey;
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('leak check: rules are data', () => {
  it('the scrub list and the leak patterns load from data/*.yaml', () => {
    expect(SCRUB_REMOVE).toContain('etc/ssh/ssh_host_*');
    expect(SCRUB_TRUNCATE).toContain('var/log/wtmp');
  });

  it('runs after scrub, release and chroot-leave and before file-list and seal, in both bases', () => {
    expect(STAGES.map((s) => s.name)).toContain('leak-check');
    for (const base of ['debian', 'gentoo'] as const) {
      const names = stagesFor(base).map((s) => s.name);
      const at = names.indexOf('leak-check');
      for (const before of ['scrub', 'release', 'chroot-leave']) expect(names.indexOf(before)).toBeLessThan(at);
      for (const after of ['file-list', 'seal']) expect(names.indexOf(after)).toBeGreaterThan(at);
    }
  });
});

describe('leak check: needles', () => {
  it('reads the build host (hostname, machine-id, SSH host key, resolv.conf, history) from the directory standing for it', () => {
    const { needles: n, notes } = hostNeedles({ root: host, hostname: CANARY.hostname });
    const text = n.map((x) => x.bytes.toString());
    expect(text).toContain(CANARY.hostname);
    expect(text).toContain(CANARY.machineId);
    expect(text).toContain(hostKeyPublic.split(' ')[1]);
    expect(text).toContain(CANARY.nameserver);
    expect(text).toContain(CANARY.history);
    // Loopback resolvers, the root domain and short history lines are not build-host facts.
    expect(text).not.toContain('nameserver 127.0.0.53');
    expect(text).not.toContain('ls');
    expect(notes.join('\n')).toContain('lines of /root/.bash_history searched');
    expect(hostNeedles({ root: host, hostname: 'vm' }).notes.join('\n')).toContain("hostname 'vm' is not searched");
  });

  it('takes secret-named environment values, URL passwords and the signing key; short values are noted, not searched', () => {
    expect(urlPasswords('deb http://u:p4ss@m/debian bookworm main https://tok@h/')).toEqual(['p4ss', 'tok']);
    const { needles: n, notes } = secretNeedles({ env: { ...env, http_proxy: 'http://px:canary-proxy-pw@10.0.0.1:3128' }, urls: [['debian.mirror', profile().debian!.mirror!]], signingKey });
    const text = n.map((x) => x.bytes.toString());
    expect(text).toEqual(expect.arrayContaining([CANARY.mirrorPassword, CANARY.urlPassword, 'canary-proxy-pw']));
    expect(n.filter((x) => x.what.includes('signing key')).length).toBeGreaterThan(2);
    expect(notes.join('\n')).toContain('$SHORT_TOKEN');
    expect(text).not.toContain('/usr/bin:/bin');
    // Words of the name, not substrings: TOX_TESTENV_PASSENV holds no password.
    const words = secretNeedles({ env: { TOX_TESTENV_PASSENV: 'HOME PATH LANG', AWS_SECRET_ACCESS_KEY: 'canary-aws-secret', GITHUB_TOKEN: 'canary-gh-token', HNFORGE_KEY_PASSPHRASE: 'canary-pass-phrase' }, urls: [] });
    expect(words.needles.map((x) => x.what).sort()).toEqual(['the value of $AWS_SECRET_ACCESS_KEY (build environment)', 'the value of $GITHUB_TOKEN (build environment)', 'the value of $HNFORGE_KEY_PASSPHRASE (build environment)']);
  });
});

describe('leak check: scanning a tree', () => {
  it('a clean tree with look-alikes and links to the host\'s keys has no hit', async () => {
    const root = await cleanTree('clean');
    const { hits, files } = await scanTree(root, needles());
    expect(hits).toEqual([]);
    expect(files).toBeGreaterThan(4);
  });

  it.each([
    ['the mirror password from the environment', 'etc/apt/sources.list.d/x.list', `deb http://u:${CANARY.mirrorPassword}@m/ bookworm main\n`, '$HNFORGE_MIRROR_PASSWORD'],
    ["the password of the profile's mirror URL", 'etc/apt/sources.list', `deb http://mirroruser:${CANARY.urlPassword}@127.0.0.1:9/debian bookworm main\n`, "profile's debian.mirror"],
    ["the build host's SSH host key (private)", 'root/backup/key.txt', () => hostKeyPrivate, 'a PEM private key'],
    ["the build host's SSH host key (public half)", 'etc/ssh/ssh_known_hosts2', () => `h ${hostKeyPublic}`, "SSH host key /etc/ssh/ssh_host_ed25519_key.pub"],
    ['a history line of the build host', 'var/log/installer.log', `$ ${CANARY.history}\n`, "shell history /root/.bash_history"],
    ['a non-empty history in the image', 'home/admin/.bash_history', 'ls\n', 'a shell or REPL history'],
    ["the build host's hostname", 'etc/motd', `built on ${CANARY.hostname}.\n`, "build host's hostname"],
    ["the build host's machine-id", 'var/lib/x/id', `${CANARY.machineId}\n`, "machine-id (/etc/machine-id)"],
    ["the build's resolv.conf", 'etc/resolv.conf', `${CANARY.nameserver}\n`, "resolv.conf (nameserver line)"],
    ['the signing key', 'etc/hnforge/signing-key.asc', () => signingKey, 'PGP private key block'],
    ['an SSH host key by name (even without key material)', 'etc/ssh/ssh_host_rsa_key', 'x', 'an SSH host private key'],
  ])('%s planted in the image is a hit naming the file', async (_, path, data, what) => {
    const root = await cleanTree(`plant-${path.replace(/\W/g, '_')}`);
    await put(root, path, typeof data === 'function' ? data() : data);
    const { hits } = await scanTree(root, needles());
    expect(hits.map((h) => h.path)).toContain(`/${path}`);
    expect(hits.map((h) => h.what).join('\n')).toContain(what);
    const e = leakError(hits);
    expect(e).toBeInstanceOf(HnError);
    expect(e.code).toBe('ELEAK');
    expect(e.message).toContain(`/${path}: `);
    expect(e.message).not.toContain('\n');
    // The secret itself is never printed.
    for (const secret of [...Object.values(CANARY), hostKeyPublic.split(' ')[1]!]) expect(e.message + e.details.join('\n')).not.toContain(secret);
  });

  it('finds a needle straddling the 8 MiB read boundary of a large file', async () => {
    const root = await cleanTree('large');
    const big = Buffer.alloc(8 * 1024 * 1024 + 4096, 0x41);
    Buffer.from(CANARY.mirrorPassword).copy(big, 8 * 1024 * 1024 - 5);
    await put(root, 'usr/lib/big.bin', big);
    const { hits } = await scanTree(root, needles());
    expect(hits).toEqual([{ path: '/usr/lib/big.bin', what: 'the value of $HNFORGE_MIRROR_PASSWORD (build environment)' }]);
  });
});

describe('leak check: allowed hits', () => {
  it('a hit the data file allows (path and rule) is reported as allowed, not as a leak; the same key elsewhere is a leak', async () => {
    const root = await cleanTree('allow');
    await put(root, 'usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3', `\x7fELF...${hostKeyPrivate}`);
    await put(root, 'usr/lib/x86_64-linux-gnu/libother.so', `\x7fELF...-----BEGIN PRIVATE KEY-----\n${'A'.repeat(64)}\n`);
    const { hits, allowed } = await scanTree(root, []);
    expect(allowed).toEqual([{ path: '/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3', what: 'a PEM private key (RSA, DSA, EC, PKCS#8, OpenSSH, encrypted)' }]);
    expect(hits).toEqual([{ path: '/usr/lib/x86_64-linux-gnu/libother.so', what: 'a PEM private key (RSA, DSA, EC, PKCS#8, OpenSSH, encrypted)' }]);
  });
});

describe('leak check: the stage', () => {
  async function runStage(root: string) {
    const logs = join(base, 'logs');
    await mkdir(logs, { recursive: true });
    const p = profile();
    const paths = { ...buildPaths(p, { repoDir: '/nonexistent', cacheDir: logs, outputDir: logs }), root };
    const ctx: BuildContext = { profile: p, paths, repoDir: paths.repo, buildDir: paths.build, cacheDir: logs, outputDir: logs, stack: new ResourceStack(), dryRun: false, root, signingKeyArmored: signingKey };
    const io = openStageIO(join(logs, 'leak-check.log'), new AbortController().signal, () => {});
    try {
      await leakCheck.run(ctx, io);
    } finally {
      await io.close();
    }
    return readFile(join(logs, 'leak-check.log'), 'utf8');
  }

  it('passes a clean tree and fails a planted one with ELEAK naming the file; its key changes with the secrets, not their values in clear', async () => {
    const clean = await cleanTree('stage-clean');
    expect(await runStage(clean)).toMatch(/\d+ files, \d+ MiB searched/);
    const dirty = await cleanTree('stage-dirty');
    await put(dirty, 'etc/apt/sources.list', `deb http://mirroruser:${CANARY.urlPassword}@127.0.0.1:9/debian bookworm main\n`);
    const e = await runStage(dirty).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(HnError);
    expect((e as HnError).message).toContain("/etc/apt/sources.list: the password of the URL in the profile's debian.mirror");
    const inputs = JSON.stringify(leakCheck.inputs!({ profile: profile(), signingKeyArmored: signingKey } as BuildContext));
    expect(inputs).toMatch(/"needles":"[0-9a-f]{64}"/);
    expect(inputs).not.toContain(CANARY.urlPassword);
  });
});
