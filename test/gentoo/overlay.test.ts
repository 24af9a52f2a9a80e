// portage-overlay/ validity without portage: layout, every ebuild's EAPI and
// required variables, bash syntax, metadata.xml (and its USE descriptions),
// and thick Manifests whose entries match the files byte for byte.
// NOT verified here: that the ebuilds build (needs a Gentoo system, the
// eclasses and the distfiles), pkgcheck/repoman policy checks.

import { describe, expect, it } from 'vitest';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../pipeline/seam/run.ts';
import { hashBuffer, localEntries, parseManifest } from '../../pipeline/gentoo/manifest.ts';
import { assembleOverlay, NODE_PACKAGE } from '../../pipeline/gentoo/overlay.ts';
import { NODE_FILES, isUnit } from '../../pipeline/node-files.ts';
import { REPO, tempDir } from './fixtures.ts';

const OVERLAY = join(REPO, 'portage-overlay');

/**
 * DIST entries that cannot be computed on the machines this project is built
 * on (no access to GitHub): see portage-overlay/README.md. This list is pinned
 * so it can only shrink. (XtreemFS is pinned by git commit: no distfile.)
 */
const KNOWN_MISSING_DIST: Record<string, string[]> = {};

/** USE flags described in Gentoo's profiles/use.desc (global), which need no metadata.xml entry. */
const GLOBAL_FLAGS = new Set(['split-usr', 'test', 'doc', 'systemd']);

interface Ebuild {
  pkg: string;
  file: string;
  path: string;
  text: string;
}

async function packages(): Promise<string[]> {
  const out: string[] = [];
  for (const cat of (await readdir(OVERLAY)).sort()) {
    if (['metadata', 'profiles', 'eclass', 'licenses'].includes(cat) || !(await stat(join(OVERLAY, cat))).isDirectory()) continue;
    for (const pkg of (await readdir(join(OVERLAY, cat))).sort()) out.push(`${cat}/${pkg}`);
  }
  return out;
}

async function ebuilds(): Promise<Ebuild[]> {
  const out: Ebuild[] = [];
  for (const pkg of await packages()) {
    for (const file of (await readdir(join(OVERLAY, pkg))).filter((f) => f.endsWith('.ebuild'))) {
      const path = join(OVERLAY, pkg, file);
      out.push({ pkg, file, path, text: await readFile(path, 'utf8') });
    }
  }
  return out;
}

/** Value of a top-level VAR="..." assignment (multi-line allowed). */
function variable(text: string, name: string): string | undefined {
  const m = new RegExp(`^${name}=(?:"([^"]*)"|(\\S*))`, 'm').exec(text);
  return m ? (m[1] ?? m[2] ?? '') : undefined;
}

/** Distfile names a SRC_URI yields for one version (USE conditionals all taken). */
export function distfiles(srcUri: string, vars: Record<string, string>): string[] {
  const expanded = srcUri.replace(/\$\{(\w+)\}/g, (_, v: string) => vars[v] ?? `\${${v}}`);
  const tokens = expanded.split(/\s+/).filter(Boolean);
  const names: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '(' || t === ')' || t.endsWith('?')) continue;
    if (t === '->') continue;
    if (tokens[i + 1] === '->') {
      names.push(tokens[i + 2]!);
      i += 2;
      continue;
    }
    names.push(t.replace(/^(fetch|mirror)\+/, '').split('/').pop()!);
  }
  return [...new Set(names)].sort();
}

describe('portage-overlay', () => {
  it('is a valid overlay: repo_name, layout.conf with thick Manifests', async () => {
    expect(await readFile(join(OVERLAY, 'profiles/repo_name'), 'utf8')).toBe('hnforge\n');
    const layout = await readFile(join(OVERLAY, 'metadata/layout.conf'), 'utf8');
    expect(layout).toMatch(/^masters = gentoo$/m);
    expect(layout).toMatch(/^thin-manifests = false$/m);
    expect(layout).toMatch(/^manifest-hashes = BLAKE2B SHA512$/m);
    expect(await packages()).toEqual(['net-fs/xtreemfs', 'sys-apps/hnforge-node']);
  });

  it('every ebuild: name-version file name, EAPI 8, required variables, valid bash', async () => {
    const all = await ebuilds();
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const e of all) {
      const pn = e.pkg.split('/')[1]!;
      const m = new RegExp(`^${pn}-(\\d+(?:\\.\\d+)*[a-z]?(?:_(?:alpha|beta|pre|rc|p)\\d*)*(?:-r\\d+)?)\\.ebuild$`).exec(e.file);
      expect(m, `${e.pkg}/${e.file}: file name is not ${pn}-<version>.ebuild`).not.toBeNull();
      expect(e.text, `${e.file}: EAPI`).toMatch(/^EAPI=8$/m);
      expect(e.text.split('\n').find((l) => l && !l.startsWith('#')), `${e.file}: EAPI must be the first assignment`).toBe('EAPI=8');
      for (const v of ['DESCRIPTION', 'HOMEPAGE', 'LICENSE', 'SLOT', 'KEYWORDS']) {
        const value = variable(e.text, v);
        expect(value, `${e.file}: ${v} missing`).toBeDefined();
        expect(value!.trim().length, `${e.file}: ${v} empty`).toBeGreaterThan(0);
      }
      expect(variable(e.text, 'DESCRIPTION')!.length, `${e.file}: DESCRIPTION over 80 characters`).toBeLessThanOrEqual(80);
      expect(variable(e.text, 'KEYWORDS'), `${e.file}: only ~amd64 is tested`).toBe('~amd64');
      await run({ file: 'bash', args: ['-n', e.path], timeoutMs: 10_000 });
    }
  });

  it('every package: metadata.xml well formed, describing its local USE flags', async () => {
    for (const pkg of await packages()) {
      const xml = await readFile(join(OVERLAY, pkg, 'metadata.xml'), 'utf8');
      expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>'), `${pkg}: XML declaration`).toBe(true);
      expect(xml).toContain('<!DOCTYPE pkgmetadata SYSTEM "https://www.gentoo.org/dtd/metadata.dtd">');
      expect(xml).toMatch(/<pkgmetadata>[\s\S]*<maintainer type="(project|person)">[\s\S]*<email>[^<]+<\/email>[\s\S]*<\/pkgmetadata>\s*$/);
      // Tags balance (a cheap well-formedness check; the files have no CDATA or comments).
      const tags = [...xml.matchAll(/<(\/?)([a-z-]+)[^>]*?(\/?)>/g)].filter((t) => t[3] !== '/');
      const stack: string[] = [];
      for (const t of tags) {
        if (t[1]) expect(stack.pop(), `${pkg}: </${t[2]}> closes the wrong element`).toBe(t[2]);
        else stack.push(t[2]!);
      }
      expect(stack, `${pkg}: unclosed elements`).toEqual([]);
      for (const e of (await ebuilds()).filter((x) => x.pkg === pkg)) {
        const iuse = (variable(e.text, 'IUSE') ?? '').split(/\s+/).filter(Boolean).map((f) => f.replace(/^[+-]/, ''));
        for (const flag of iuse.filter((f) => !GLOBAL_FLAGS.has(f))) {
          expect(xml, `${pkg}: local USE flag ${flag} not described in metadata.xml`).toContain(`<flag name="${flag}">`);
        }
      }
    }
  });

  it('every Manifest lists every ebuild, metadata.xml and files/ entry with the right size, BLAKE2B and SHA512, and nothing stale', async () => {
    for (const pkg of await packages()) {
      const dir = join(OVERLAY, pkg);
      const manifest = parseManifest(await readFile(join(dir, 'Manifest'), 'utf8'));
      const expected = await localEntries(dir);
      const local = manifest.filter((e) => e.type !== 'DIST');
      expect(local.map((e) => `${e.type} ${e.name}`).sort(), `${pkg}: Manifest entries (regenerate with pipeline/gentoo/manifest.ts)`).toEqual(
        expected.map((e) => `${e.type} ${e.name}`).sort(),
      );
      for (const e of expected) {
        const got = local.find((x) => x.type === e.type && x.name === e.name)!;
        expect(got, `${pkg}: ${e.name} changed since the Manifest was written`).toEqual(e);
      }
    }
  });

  it('every distfile of every ebuild has a DIST entry with size, BLAKE2B and SHA512 (known gaps pinned)', async () => {
    const missing: Record<string, string[]> = {};
    for (const e of await ebuilds()) {
      const pv = /-(\d[^-]*(?:-r\d+)?)\.ebuild$/.exec(e.file)![1]!.replace(/-r\d+$/, '');
      const pn = e.pkg.split('/')[1]!;
      const names = distfiles(variable(e.text, 'SRC_URI') ?? '', { P: `${pn}-${pv}`, PN: pn, PV: pv });
      const manifest = parseManifest(await readFile(join(OVERLAY, e.pkg, 'Manifest'), 'utf8'));
      for (const name of names) {
        const d = manifest.find((m) => m.type === 'DIST' && m.name === name);
        if (!d) {
          (missing[e.pkg] ??= []).push(name);
          continue;
        }
        expect(d.size).toBeGreaterThan(0);
        expect(d.hashes.BLAKE2B).toMatch(/^[0-9a-f]{128}$/);
        expect(d.hashes.SHA512).toMatch(/^[0-9a-f]{128}$/);
      }
    }
    for (const k of Object.keys(missing)) missing[k]!.sort();
    expect(missing).toEqual(KNOWN_MISSING_DIST);
  });

  it('XtreemFS: pinned upstream commit through git-r3, our Boost 1.87 patch applied, units for DIR, MRC, OSD and the client mount', async () => {
    const dir = join(OVERLAY, 'net-fs/xtreemfs');
    const ebuilds = (await readdir(dir)).filter((f) => f.endsWith('.ebuild'));
    expect(ebuilds).toEqual(['xtreemfs-1.6.0_pre20241007.ebuild']);
    const text = await readFile(join(dir, ebuilds[0]!), 'utf8');
    expect(variable(text, 'EGIT_COMMIT')).toMatch(/^[0-9a-f]{40}$/);
    expect(text).toMatch(/^inherit .*\bgit-r3\b/m);
    expect(variable(text, 'SRC_URI')).toBeUndefined();
    expect(text).toContain('"${FILESDIR}"/${PN}-1.6.0-boost-1.87.patch');
    const patch = await readFile(join(dir, 'files/xtreemfs-1.6.0-boost-1.87.patch'), 'utf8');
    expect(patch).toMatch(/^\+\+\+ b\/cpp\/src\/rpc\/client_connection\.cpp$/m);
    // Upstream's CMakeLists.txt replaced CMAKE_CXX_FLAGS (portage's CXXFLAGS and the ebuild's -DBOOST_ASIO_NO_DEPRECATED lost).
    expect(patch).toContain('+  set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} -Wall -Wno-unused-function -Wno-sign-compare -pthread")');
    expect(text).toContain('append-cxxflags -DBOOST_ASIO_NO_DEPRECATED');
    // Nothing the patch adds uses what Boost 1.87 removed.
    const added = patch.split('\n').filter((l) => l.startsWith('+') && !l.startsWith('+++') && !/^\+\s*\/\//.test(l)).join('\n');
    expect(added).not.toMatch(/io_service|resolver::query|resolver::iterator|\.post\(/);
    expect(text).toMatch(/systemd_dounit "\$\{FILESDIR\}"\/xtreemfs-\{dir,mrc,osd\}\.service/);
    expect(text).toContain('systemd_dounit "${FILESDIR}"/xtreemfs-client.service');
    expect(text).toMatch(/has network-sandbox \$\{FEATURES\}/);
    for (const unit of ['dir', 'mrc', 'osd', 'client']) expect((await readdir(join(dir, 'files')))).toContain(`xtreemfs-${unit}.service`);
  });

  it('reads distfile names from SRC_URI like portage does', () => {
    expect(distfiles('fetch+https://x/a/${PV}.tar.gz -> ${P}.tar.gz server? ( ${P}-m2.tar.xz ) https://y/z-1.zip', { P: 'p-1', PV: '1' })).toEqual(['p-1-m2.tar.xz', 'p-1.tar.gz', 'z-1.zip']);
  });

  it('the assembled overlay carries the boot module in the node package, with a matching Manifest', async () => {
    const dest = await tempDir('hnforge-overlay-');
    try {
      const r = await assembleOverlay(REPO, dest);
      expect(r.included).toContain('boot/hn-boot.sh');
      const pkg = join(dest, NODE_PACKAGE);
      const body = await readFile(join(REPO, 'boot/hn-boot.sh'));
      const manifest = parseManifest(await readFile(join(pkg, 'Manifest'), 'utf8'));
      expect(manifest.find((m) => m.type === 'AUX' && m.name === 'hn-boot.sh')).toEqual({ type: 'AUX', name: 'hn-boot.sh', size: body.length, hashes: hashBuffer(body) });
      // The repository's own overlay is untouched.
      expect(await readdir(join(OVERLAY, NODE_PACKAGE))).not.toContain('files');
    } finally {
      await rm(dest, { recursive: true, force: true });
    }
  });

  it("the node package's src_install, run by bash with the ebuild helpers recorded, installs every line of node-files.list (units with systemd_dounit) and the Manifest covers the list", async () => {
    const dest = await tempDir('hnforge-overlay-');
    try {
      await assembleOverlay(REPO, dest);
      const pkg = join(dest, NODE_PACKAGE);
      const ebuild = join(pkg, 'hnforge-node-0.1.0.ebuild');
      const helpers = [
        'inherit() { :; }',
        'insinto() { echo "insinto $*"; }',
        'insopts() { echo "insopts $*"; }',
        'newins() { echo "newins $*"; }',
        'systemd_dounit() { echo "systemd_dounit $*"; }',
        'die() { echo "die $*"; exit 1; }',
      ].join('\n');
      const { stdout } = await run(
        { file: 'bash', args: ['-c', `set -e\n${helpers}\nsource "$1"\nFILESDIR="$2"\nsrc_install`, 'src_install', ebuild, join(pkg, 'files')] },
        { capture: true },
      );
      const expected = NODE_FILES.flatMap((f) => {
        const name = f.source.split('/').pop()!;
        return isUnit(f)
          ? [`systemd_dounit ${join(pkg, 'files', name)}`]
          : [`insinto ${f.target.slice(0, f.target.lastIndexOf('/'))}`, `insopts -m${f.mode.toString(8).padStart(4, '0')}`, `newins ${join(pkg, 'files', name)} ${f.target.split('/').pop()}`];
      });
      expect(stdout.trim().split('\n')).toEqual(expected);
      const manifest = parseManifest(await readFile(join(pkg, 'Manifest'), 'utf8'));
      for (const f of [...NODE_FILES.map((x) => x.source.split('/').pop()!), 'node-files.list']) {
        expect(manifest.some((m) => m.type === 'AUX' && m.name === f), f).toBe(true);
      }
    } finally {
      await rm(dest, { recursive: true, force: true });
    }
  });
});
