// Test fixtures for the Gentoo pipeline's contract tests: a throwaway OpenPGP
// key, a synthetic stage3 (busybox from the host plus executable stand-ins for
// emerge, genkernel and getuto that record their arguments and environment and
// create the files a real run leaves behind), a tiny repository snapshot, and
// a mirror served over HTTP on 127.0.0.1 with switchable faults.
//
// None of this is Gentoo: these fixtures let the tests check hnforge's
// orchestration (what is fetched, verified, refused, unpacked, written, run).

import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { run } from '../../pipeline/seam/run.ts';
import type { Command } from '../../pipeline/seam/command.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const IS_ROOT = process.getuid?.() === 0;

export async function tempDir(prefix = 'hnforge-gentoo-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

const sh = (file: string, args: string[], env?: Record<string, string>): Command => ({ file, args, timeoutMs: 120_000, env });

// ----------------------------------------------------------------- OpenPGP

export interface TestKey {
  home: string;
  fingerprint: string;
  /** Armored public key file (what a profile's gentoo.keyring names). */
  publicKeyFile: string;
  detachSign(file: string, out?: string): Promise<string>;
  clearsign(text: string, out: string): Promise<void>;
}

/** A throwaway signing key in its own GNUPGHOME (no passphrase). */
export async function makeTestKey(name = 'hnforge test release key'): Promise<TestKey> {
  const home = await tempDir('hnforge-gpg-');
  const env = { GNUPGHOME: home, PATH: process.env.PATH ?? '/usr/bin:/bin' };
  await run(sh('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', `${name} <test@hnforge.invalid>`, 'ed25519', 'sign', 'never'], env));
  const { stdout } = await run(sh('gpg', ['--batch', '--with-colons', '--list-keys'], env), { capture: true });
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)?.[1];
  if (!fingerprint) throw new Error('test key: no fingerprint');
  const publicKeyFile = join(home, 'public.asc');
  await run(sh('gpg', ['--batch', '--armor', '--output', publicKeyFile, '--export', fingerprint], env));
  return {
    home,
    fingerprint,
    publicKeyFile,
    async detachSign(file, out = `${file}.asc`) {
      await run(sh('gpg', ['--batch', '--yes', '--armor', '--local-user', fingerprint, '--output', out, '--detach-sign', file], env));
      return out;
    },
    async clearsign(text, out) {
      const input = `${out}.in`;
      await writeFile(input, text);
      await run(sh('gpg', ['--batch', '--yes', '--local-user', fingerprint, '--output', out, '--clearsign', input], env));
      await rm(input);
    },
  };
}

// ----------------------------------------------------------- tar building

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Writes a tar file from entries (tar-stream), then compresses it with xz; returns the .tar.xz path. */
export async function writeTarXz(path: string, entries: TarEntry[]): Promise<string> {
  const tarPath = path.replace(/\.xz$/, '');
  await mkdir(dirname(path), { recursive: true });
  const pack = tarStream.pack();
  const done = pipeline(pack, createWriteStream(tarPath));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = type === 'file' ? (typeof e.content === 'string' ? Buffer.from(e.content) : (e.content ?? Buffer.alloc(0))) : undefined;
    const header = {
      name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
      uid: e.uid ?? 0, gid: e.gid ?? 0, uname: '', gname: '', mtime: new Date('2026-05-03T16:46:04Z'),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
      ...(e.pax ? { pax: e.pax } : {}),
      ...(body ? { size: body.length } : {}),
    } as tarStream.Header;
    await new Promise<void>((res, rej) => {
      const cb = (err?: Error | null) => (err ? rej(err) : res());
      if (body) pack.entry(header, body, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  await rm(path, { force: true });
  await run(sh('xz', ['-T1', '-0', '--force', tarPath]));
  return path;
}

// ------------------------------------------------------------ the stage3

export const KV = '6.12.31-gentoo-x86_64';

/** A linuxrc shaped like genkernel 4's (our own text): the hook anchor sits where root detection begins. */
export const FAKE_LINUXRC = [
  '#!/bin/sh',
  '# stand-in for genkernel defaults/linuxrc used by hnforge tests',
  '. /etc/initrd.defaults',
  'NEW_ROOT=/newroot',
  'good_msg "starting"',
  '',
  '# Determine root device',
  'good_msg "looking for ${REAL_ROOT}"',
  '',
].join('\n');

export const FAKE_BASE_KERNEL_CONFIG = ['CONFIG_64BIT=y', 'CONFIG_EXT4_FS=m', '# CONFIG_KVM is not set', 'CONFIG_LOCALVERSION=""', ''].join('\n');

/** Records argv and environment, then behaves like a successful emerge. */
const EMERGE_STANDIN = `#!/bin/sh
# hnforge test stand-in for emerge: records how it was called, creates /var/db/pkg entries.
mkdir -p /var/log/hnforge-standin
for f in /etc/portage/make.conf /etc/portage/hnforge-build.conf /etc/portage/package.use/hnforge /etc/portage/repos.conf/gentoo.conf /etc/portage/repos.conf/hnforge.conf; do
  [ -r "$f" ] || { echo "emerge stand-in: $f missing" >&2; exit 3; }
done
[ -r /var/db/repos/hnforge/profiles/repo_name ] || { echo "emerge stand-in: overlay not mounted" >&2; exit 4; }
case " $* " in
  *" --pretend "*)
    # The fail-fast run: record it, plan every atom, report masked/* and keyword/* as portage words it.
    echo "$@" > /var/log/hnforge-standin/pretend.args
    bad=0
    for a in "$@"; do case "$a" in
      -*|@*) ;;
      masked/*) printf '\n!!! All ebuilds that could satisfy "%s" have been masked.\n!!! One of the following masked packages is required to complete your request:\n- %s-1.0::gentoo (masked by: package.mask)\n\n' "$a" "$a"; bad=1 ;;
      keyword/*) printf '\nThe following keyword changes are necessary to proceed:\n (see "package.accept_keywords" in the portage(5) man page for more details)\n# required by %s (argument)\n=%s-1.0 ~amd64\n\n' "$a" "$a"; bad=1 ;;
      *) echo "[ebuild  N     ] \${a}-1.0::gentoo  0 KiB" ;;
    esac; done
    exit $bad ;;
esac
n=$(ls /var/log/hnforge-standin | grep -c '^emerge-' )
echo "$@" > /var/log/hnforge-standin/emerge-$n.args
env | sort > /var/log/hnforge-standin/emerge-$n.env
binloc=$(sed -n 's/^location = //p' /etc/portage/binrepos.conf/gentoobinhost.conf 2>/dev/null)
atoms=""
for a in "$@"; do case "$a" in -*|@*) ;; *) atoms="$atoms $a" ;; esac; done
total=$(echo $atoms | wc -w)
i=0
for a in $atoms; do
  i=$((i + 1))
  case "$a" in
    fail/*) echo ">>> Emerging (\${i} of \${total}) \${a}-1.0::gentoo"; echo " * ERROR: \${a}-1.0::gentoo failed (compile phase):"; exit 1 ;;
  esac
  echo ">>> Emerging (\${i} of \${total}) \${a}-1.0::gentoo"
  mkdir -p "/var/db/pkg/\${a}-1.0"
  echo "\${a}-1.0" > "/var/db/pkg/\${a}-1.0/PF"
  # sys-apps/hnforge-node as its ebuild installs it: every line of files/node-files.list
  # ("<mode> <target> <file>") from the overlay's files/, nothing the list does not name.
  if [ "$a" = sys-apps/hnforge-node ]; then
    d=/var/db/repos/hnforge/sys-apps/hnforge-node/files
    [ -r "$d/node-files.list" ] || { echo "emerge stand-in: $d/node-files.list missing" >&2; exit 5; }
    while read -r mode target file; do
      [ -n "$file" ] || continue
      mkdir -p "\${target%/*}" && cp "$d/$file" "$target" && chmod "$mode" "$target" || exit 6
    done < "$d/node-files.list"
  fi
  # What the real net-fs/xtreemfs installs that hnforge acts on: its units.
  if [ "$a" = net-fs/xtreemfs ]; then mkdir -p /usr/lib/systemd/system; for u in dir mrc osd client; do echo '[Unit]' > /usr/lib/systemd/system/xtreemfs-$u.service; done; fi
  echo "fetched for \${a}" > "/var/cache/distfiles/$(echo "$a" | tr / _)-1.0.tar.gz"
  # A binary package goes where binrepos.conf says (portage >= 3.0.77 would otherwise use /var/cache/binhost/<repo>).
  if [ -n "$binloc" ]; then mkdir -p "$binloc/\${a%%/*}"; echo "gpkg for \${a}" > "$binloc/\${a}-1.0-1.gpkg.tar"; fi
  echo ">>> Installing (\${i} of \${total}) \${a}-1.0::gentoo"
done
echo ">>> Auto-cleaning packages..."
exit 0
`;

const GENKERNEL_STANDIN = `#!/bin/sh
# hnforge test stand-in for genkernel: records how it was called, checks its
# inputs exist, and installs a kernel, an initramfs and the saved config.
mkdir -p /var/log/hnforge-standin
echo "$@" > /var/log/hnforge-standin/genkernel.args
env | sort > /var/log/hnforge-standin/genkernel.env
cfg=""; rc=""; ov=""; boot=/boot
for a in "$@"; do
  case "$a" in
    --kernel-config=*) cfg="\${a#*=}" ;;
    --linuxrc=*) rc="\${a#*=}" ;;
    --initramfs-overlay=*) ov="\${a#*=}" ;;
    --bootdir=*) boot="\${a#*=}" ;;
  esac
done
[ -r "$cfg" ] || { echo "genkernel stand-in: no kernel config $cfg" >&2; exit 2; }
grep -q 'hnforge boot hook' "$rc" || { echo "genkernel stand-in: linuxrc $rc lacks the hook" >&2; exit 2; }
[ -r "$ov/lib/hn-boot.sh" ] || { echo "genkernel stand-in: overlay lacks lib/hn-boot.sh" >&2; exit 2; }
cp "$rc" /var/log/hnforge-standin/linuxrc.used
echo " * kernel: >> Compiling ${KV} bzImage ..."
echo " * initramfs: >> Initializing ..."
mkdir -p "$boot" /etc/kernels
echo "kernel ${KV}" > "$boot/vmlinuz-${KV}"
echo "initramfs ${KV}" > "$boot/initramfs-${KV}.img"
cp "$cfg" /etc/kernels/kernel-config-${KV}
exit 0
`;

const GETUTO_STANDIN = `#!/bin/sh
mkdir -p /var/log/hnforge-standin /etc/portage/gnupg
echo "$@" > /var/log/hnforge-standin/getuto.args
touch /etc/portage/gnupg/pubring.kbx
`;

const APPLETS = ['sh', 'mkdir', 'ls', 'grep', 'wc', 'tr', 'env', 'sort', 'cat', 'cp', 'echo', 'touch', 'rm', 'ln', 'sed', 'printf', 'chmod'];

/** Entries of a small stage3: busybox-based, with the stand-ins and the files hnforge expects. */
export function stage3Entries(extra: TarEntry[] = []): TarEntry[] {
  const busybox = readFileSync('/bin/busybox');
  const dirs = ['bin', 'dev', 'etc', 'etc/portage', 'etc/portage/binrepos.conf', 'proc', 'sys', 'tmp', 'usr', 'usr/bin', 'usr/sbin',
    'usr/share', 'usr/share/genkernel', 'usr/share/genkernel/defaults', 'usr/share/genkernel/arch', 'usr/share/genkernel/arch/x86_64',
    'var', 'var/db', 'var/db/pkg', 'var/db/pkg/sys-apps', 'var/db/pkg/sys-apps/baselayout-2.17', 'var/db/repos', 'var/cache', 'var/tmp',
    'var/lib', 'var/lib/portage', 'boot', 'root', 'lib'];
  return [
    ...dirs.map((d): TarEntry => ({ name: `./${d}/`, type: 'directory', mode: d === 'tmp' || d === 'var/tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755 })),
    { name: './bin/busybox', content: busybox, mode: 0o755 },
    ...APPLETS.map((a): TarEntry => ({ name: `./bin/${a}`, type: 'symlink', linkname: 'busybox' })),
    { name: './usr/bin/emerge', content: EMERGE_STANDIN, mode: 0o755 },
    { name: './usr/bin/genkernel', content: GENKERNEL_STANDIN, mode: 0o755 },
    { name: './usr/bin/getuto', content: GETUTO_STANDIN, mode: 0o755 },
    { name: './usr/share/genkernel/defaults/linuxrc', content: FAKE_LINUXRC, mode: 0o755 },
    { name: './usr/share/genkernel/arch/x86_64/generated-config', content: FAKE_BASE_KERNEL_CONFIG },
    { name: './etc/os-release', content: 'NAME=Gentoo\nID=gentoo\n' },
    { name: './etc/portage/make.conf', content: 'COMMON_FLAGS="-O2 -pipe"\n' },
    { name: './etc/portage/binrepos.conf/gentoobinhost.conf', content: '[gentoobinhost]\nsync-uri = https://example.invalid/\n' },
    { name: './var/db/pkg/sys-apps/baselayout-2.17/PF', content: 'baselayout-2.17\n' },
    // Preservation checks: numeric owner (portage is 250:250), setuid mode, a hard link, a device node, an xattr.
    { name: './var/lib/portage/owned-by-250', content: 'x\n', uid: 250, gid: 250 },
    { name: './usr/bin/suid-standin', content: '#!/bin/sh\n', mode: 0o4755 },
    { name: './usr/bin/hardlinked', type: 'link', linkname: './usr/bin/suid-standin' },
    { name: './dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: './usr/bin/with-xattr', content: 'x\n', pax: { 'SCHILY.xattr.user.hnforge': 'kept' } },
    { name: './etc/mtab', type: 'symlink', linkname: '../proc/self/mounts' },
    { name: './etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' },
    ...extra,
  ];
}

/** A tiny repository snapshot: gentoo-<date>/ with the profile hnforge selects. */
export function snapshotEntries(date: string, profile: string): TarEntry[] {
  const top = `gentoo-${date}`;
  const parts = `profiles/${profile}`.split('/');
  return [
    { name: `${top}/`, type: 'directory' },
    { name: `${top}/metadata/`, type: 'directory' },
    { name: `${top}/metadata/layout.conf`, content: 'masters =\nthin-manifests = true\n' },
    ...parts.map((_, i): TarEntry => ({ name: `${top}/${parts.slice(0, i + 1).join('/')}/`, type: 'directory' })),
    { name: `${top}/profiles/repo_name`, content: 'gentoo\n' },
    { name: `${top}/profiles/${profile}/parent`, content: '..\n' },
  ];
}

// -------------------------------------------------------------- a mirror

export type Fault =
  | { kind: 'truncate'; path: string; afterBytes: number }
  | { kind: 'missing'; path: string };

export interface Mirror {
  url: string;
  root: string;
  requests: { path: string; range?: string; status: number }[];
  faults: Fault[];
  close(): Promise<void>;
}

/** Serves `root` on 127.0.0.1 (ephemeral port) with Range support and injectable faults. */
export async function serveMirror(root: string): Promise<Mirror> {
  const requests: Mirror['requests'] = [];
  const faults: Fault[] = [];
  const server: Server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const range = req.headers.range;
    const log = (status: number) => requests.push({ path, range, status });
    if (path.includes('..') || faults.some((f) => f.kind === 'missing' && f.path === path)) {
      log(404);
      res.writeHead(404).end('not found');
      return;
    }
    const file = join(root, path);
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('dir');
      size = st.size;
    } catch {
      log(404);
      res.writeHead(404).end('not found');
      return;
    }
    let start = 0;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      if (start >= size) {
        log(416);
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      log(206);
      res.writeHead(206, { 'Content-Length': String(size - start), 'Content-Range': `bytes ${start}-${size - 1}/${size}`, 'Accept-Ranges': 'bytes' });
    } else {
      log(200);
      res.writeHead(200, { 'Content-Length': String(size), 'Accept-Ranges': 'bytes' });
    }
    const cut = faults.find((f) => f.kind === 'truncate' && f.path === path) as Extract<Fault, { kind: 'truncate' }> | undefined;
    if (cut) {
      // Announce the full length, send part of it, then drop the connection.
      const end = Math.max(start, cut.afterBytes) - 1;
      if (end >= start) {
        const stream = createReadStream(file, { start, end });
        stream.on('end', () => setTimeout(() => res.destroy(), 20));
        stream.pipe(res, { end: false });
      } else {
        res.destroy();
      }
      return;
    }
    createReadStream(file, { start }).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('mirror: no port');
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    root,
    requests,
    faults,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Release {
  timestamp: string;
  fileName: string;
  /** Path relative to the mirror root. */
  path: string;
  tarball: string;
  bytes: number;
}

/**
 * Publishes a stage3 on the mirror the way Gentoo lays one out: tarball,
 * detached .asc, .DIGESTS (optionally clearsigned), and the clearsigned
 * latest-stage3 index.
 */
export async function publishStage3(
  mirrorRoot: string,
  key: TestKey,
  opts: { variant?: string; timestamp?: string; entries?: TarEntry[]; clearsignDigests?: boolean; index?: boolean } = {},
): Promise<Release> {
  const variant = opts.variant ?? 'systemd';
  const ts = opts.timestamp ?? '20260503T164604Z';
  const fileName = `stage3-amd64-${variant}-${ts}.tar.xz`;
  const rel = `releases/amd64/autobuilds/${ts}/${fileName}`;
  const tarball = join(mirrorRoot, rel);
  await writeTarXz(tarball, opts.entries ?? stage3Entries());
  await key.detachSign(tarball);
  const data = await readFile(tarball);
  const sha512 = createHash('sha512').update(data).digest('hex');
  const blake2b = createHash('blake2b512').update(data).digest('hex');
  const digests = [
    '# BLAKE2B HASH', `${blake2b}  ${fileName}`, `${'0'.repeat(128)}  ${fileName}.CONTENTS.gz`,
    '# SHA512 HASH', `${sha512}  ${fileName}`, `${'1'.repeat(128)}  ${fileName}.CONTENTS.gz`, '',
  ].join('\n');
  if (opts.clearsignDigests ?? true) await key.clearsign(digests, `${tarball}.DIGESTS`);
  else await writeFile(`${tarball}.DIGESTS`, digests);
  if (opts.index ?? true) {
    await writeIndex(mirrorRoot, key, variant, [`${ts}/${fileName} ${data.length}`]);
  }
  return { timestamp: ts, fileName, path: rel, tarball, bytes: data.length };
}

export async function writeIndex(mirrorRoot: string, key: TestKey, variant: string, lines: string[]): Promise<string> {
  const index = join(mirrorRoot, `releases/amd64/autobuilds/latest-stage3-amd64-${variant}.txt`);
  await mkdir(dirname(index), { recursive: true });
  await key.clearsign(['# Latest as of Sun, 03 May 2026 16:46:04 +0000', '# ts=1777826764', ...lines, ''].join('\n'), index);
  return index;
}

export async function publishSnapshot(mirrorRoot: string, key: TestKey, date: string, profile: string): Promise<string> {
  const file = join(mirrorRoot, `snapshots/gentoo-${date}.tar.xz`);
  await writeTarXz(file, snapshotEntries(date, profile));
  await key.detachSign(file, `${file}.gpgsig`);
  return file;
}

/** Reads a file's user.* extended attribute through GNU tar (no getfattr or python needed). */
export async function readXattr(root: string, rel: string, name: string): Promise<string | undefined> {
  const archive = join(await tempDir('hnforge-xattr-'), 'x.tar');
  try {
    await run(sh('tar', ['--xattrs', "--xattrs-include=*.*", '-cf', archive, '-C', root, rel]));
    const extract = tarStream.extract();
    let value: string | undefined;
    extract.on('entry', (header, stream, next) => {
      value ??= (header.pax as Record<string, string> | undefined)?.[`SCHILY.xattr.${name}`];
      stream.on('end', () => next());
      stream.resume();
    });
    await pipeline(createReadStream(archive), extract);
    return value;
  } finally {
    await rm(dirname(archive), { recursive: true, force: true });
  }
}
