// hnforge check-gentoo: real portage (run from its source tree, or the
// installed one on a Gentoo host) against the configuration hnforge
// generates for a profile: `emerge --info`, then `emerge --pretend` of a tiny
// synthetic repository that exercises keywords, USE, REQUIRED_USE, licences
// and a blocker, its output read by the same parser the build fails fast
// with (resolve.ts). Optionally `pkgcheck scan` of portage-overlay/.
//
// Outside a chroot the generated files' absolute paths (repository
// locations, the sourced build-only file, DISTDIR/PKGDIR) are moved under a
// scratch config root; everything else is written as the build writes it.

import { mkdir, mkdtemp, rm, symlink, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run } from '../seam/run.ts';
import type { Command } from '../seam/command.ts';
import type { ResolvedProfile } from '../profile-schema.ts';
import { gentooError } from './errors.ts';
import { BUILD_CONF, DISTDIR, OVERLAY_LOCATION, PKGDIR, REPO_LOCATION, portageConfig, BINHOST_CACHE } from './portage-config.ts';
import { formatProblem, parseEmergePretend, type ResolveKind, type ResolveProblem } from './resolve.ts';
import { assembleOverlay } from './overlay.ts';

const MINUTE = 60_000;

/** The synthetic repository's packages and what each must make portage report. */
/** `names`: the package portage's report names when it is not the atom asked for. */
export const SYNTHETIC_SET: { atom: string; expect?: ResolveKind; run: 1 | 2; names?: string }[] = [
  { atom: 'app-misc/hn-stable', run: 1 }, // resolves cleanly
  { atom: 'app-misc/hn-testing', expect: 'keyword', run: 1 },
  { atom: 'app-misc/hn-eula', expect: 'license', run: 1 },
  { atom: 'app-misc/hn-required-use', expect: 'required-use', run: 1 },
  // Portage does not report every kind in one run: an unmet REQUIRED_USE ends
  // the resolution before USE proposals and blockers are shown, so these go
  // in a second run.
  { atom: 'app-misc/hn-needs-use', expect: 'use', run: 2, names: 'app-misc/hn-lib' },
  { atom: 'app-misc/hn-block-a', expect: 'blocker', run: 2 },
  { atom: 'app-misc/hn-block-b', expect: 'blocker', run: 2 },
];

const PROFILE = 'default/linux/amd64/23.0/systemd';
/** The overlay's packages, resolved against the synthetic repository (their dependencies are missing there). */
const OVERLAY_ATOMS = ['sys-apps/hnforge-node', 'net-fs/xtreemfs'];

function ebuild(body: string[]): string {
  return ['# Synthetic package written by hnforge check-gentoo', 'EAPI=8', 'SLOT="0"', 'LICENSE="MIT"', 'KEYWORDS="amd64"', ...body, ''].join('\n');
}

/** A minimal ebuild repository named gentoo (our own content) with the profile the generated config selects. */
export function syntheticRepoFiles(profile = PROFILE): Record<string, string> {
  const prof = `profiles/${profile}`;
  return {
    'profiles/repo_name': 'gentoo\n',
    'metadata/layout.conf': 'masters =\nthin-manifests = true\nsign-manifests = false\nprofile-formats = portage-2\ncache-formats =\n',
    'profiles/arch.list': 'amd64\n',
    // Also the categories the overlay's packages and their dependencies use (the overlay lists none: its master does).
    'profiles/categories': ['app-misc', 'app-arch', 'app-crypt', 'dev-build', 'dev-java', 'dev-libs', 'net-fs', 'net-misc', 'sys-apps', 'sys-fs', 'virtual', ''].join('\n'),
    'profiles/license_groups': 'FREE MIT\nEULA hn-eula\n',
    'profiles/use.desc': '',
    'licenses/MIT': 'MIT\n',
    'licenses/hn-eula': 'A licence nobody accepted.\n',
    [`${prof}/eapi`]: '8\n',
    // Our own stubs of the eclasses the overlay inherits: enough for portage to
    // source the ebuilds (metadata); what the real eclasses do is not checked.
    'eclass/systemd.eclass': 'systemd_dounit() { :; }\n',
    'eclass/flag-o-matic.eclass': 'append-cxxflags() { :; }\n',
    'eclass/git-r3.eclass': 'PROPERTIES+=" live"\nEXPORT_FUNCTIONS src_unpack\ngit-r3_src_unpack() { :; }\n',
    'eclass/java-pkg-2.eclass': 'EXPORT_FUNCTIONS pkg_setup src_prepare\njava-pkg-2_pkg_setup() { :; }\njava-pkg-2_src_prepare() { :; }\n',
    [`${prof}/make.defaults`]: ['ARCH="amd64"', 'ACCEPT_KEYWORDS="amd64"', 'CHOST="x86_64-pc-linux-gnu"', 'ELIBC="glibc"', 'KERNEL="linux"', 'USERLAND="GNU"', 'USE_EXPAND=""', 'IUSE_IMPLICIT="prefix"', ''].join('\n'),
    'app-misc/hn-stable/hn-stable-1.0.ebuild': ebuild(['DESCRIPTION="resolves cleanly"', 'HOMEPAGE="https://hnforge.invalid/"']),
    'app-misc/hn-testing/hn-testing-1.0.ebuild': ebuild(['DESCRIPTION="needs ~amd64"', 'HOMEPAGE="https://hnforge.invalid/"', 'KEYWORDS="~amd64"']),
    'app-misc/hn-eula/hn-eula-1.0.ebuild': ebuild(['DESCRIPTION="needs a licence"', 'HOMEPAGE="https://hnforge.invalid/"', 'LICENSE="hn-eula"']),
    'app-misc/hn-lib/hn-lib-1.0.ebuild': ebuild(['DESCRIPTION="has a USE flag"', 'HOMEPAGE="https://hnforge.invalid/"', 'IUSE="feature"']),
    'app-misc/hn-needs-use/hn-needs-use-1.0.ebuild': ebuild(['DESCRIPTION="needs hn-lib[feature]"', 'HOMEPAGE="https://hnforge.invalid/"', 'RDEPEND="app-misc/hn-lib[feature]"']),
    'app-misc/hn-required-use/hn-required-use-1.0.ebuild': ebuild(['DESCRIPTION="exactly one of a, b"', 'HOMEPAGE="https://hnforge.invalid/"', 'IUSE="a b"', 'REQUIRED_USE="^^ ( a b )"']),
    'app-misc/hn-block-a/hn-block-a-1.0.ebuild': ebuild(['DESCRIPTION="blocks hn-block-b"', 'HOMEPAGE="https://hnforge.invalid/"', 'RDEPEND="!!app-misc/hn-block-b"']),
    'app-misc/hn-block-b/hn-block-b-1.0.ebuild': ebuild(['DESCRIPTION="blocked by hn-block-a"', 'HOMEPAGE="https://hnforge.invalid/"']),
  };
}

export interface CheckOptions {
  /** portage source tree (bin/emerge, lib/), or undefined for the installed emerge. */
  portage?: string;
  /** pkgcore source tree for pkgcheck (with snakeoil and pkgcheck beside it or on PYTHONPATH). */
  pkgcore?: string;
  pkgcheck?: string;
  snakeoil?: string;
  /** An ebuild repository to resolve against instead of the synthetic one. */
  repo?: string;
  profile: ResolvedProfile;
  repoDir: string;
  log: (line: string) => void;
}

export interface CheckStep {
  name: string;
  command: string;
  exitCode: number;
  output: string;
}

export interface CheckResult {
  steps: CheckStep[];
  problems: ResolveProblem[];
  /** Set when a step could not run (missing dependency), with why. */
  skipped: { name: string; why: string }[];
  ok: boolean;
  why: string[];
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

async function runStep(name: string, command: Command): Promise<CheckStep> {
  const lines: string[] = [];
  const { exitCode } = await run(command, { onLine: (l) => lines.push(l), okExitCodes: [1, 2, 3, 4, 5, 127] });
  return { name, command: [command.file, ...command.args].join(' '), exitCode, output: lines.join('\n') };
}

/** Writes the profile's generated portage configuration under `root`, its absolute paths moved under `root` too. */
export async function writeConfigRoot(root: string, profile: ResolvedProfile, repo: string, overlay: string): Promise<void> {
  const g = profile.gentoo;
  if (!g) throw gentooError('EGENTOO_PROFILE', `profile ${profile.name} has no gentoo section`);
  const config = portageConfig(g);
  const moved = (text: string) =>
    text
      .replaceAll(`location = ${REPO_LOCATION}`, `location = ${repo}`)
      .replaceAll(`location = ${OVERLAY_LOCATION}`, `location = ${overlay}`)
      .replaceAll(`source ${BUILD_CONF}`, `source ${join(root, BUILD_CONF)}`)
      .replaceAll(`"${DISTDIR}"`, `"${join(root, DISTDIR)}"`)
      .replaceAll(`"${PKGDIR}"`, `"${join(root, PKGDIR)}"`)
      .replaceAll(`location = ${BINHOST_CACHE}/`, `location = ${join(root, BINHOST_CACHE)}/`);
  for (const [path, content] of Object.entries(config.files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), moved(content));
  }
  for (const d of [DISTDIR, PKGDIR, '/var/db/pkg', '/var/tmp', '/var/cache/edb', '/var/lib/portage']) await mkdir(join(root, d), { recursive: true });
  await symlink(join(repo, 'profiles', g.portageProfile), join(root, 'etc/portage/make.profile'));
  // What an installed portage ships: the @world/@system set definitions.
  const sets = join(root, 'usr/share/portage/config/sets/portage.conf');
  await mkdir(dirname(sets), { recursive: true });
  await writeFile(sets, '[world]\nclass = portage.sets.base.DummyPackageSet\npackages = @selected @system\n\n[selected]\nclass = portage.sets.files.WorldSelectedSet\n\n[system]\nclass = portage.sets.profiles.PackagesSystemSet\n');
}

/** Runs the checks; never throws for what portage reports, only for what keeps it from running. */
export async function checkGentoo(opts: CheckOptions): Promise<CheckResult> {
  const result: CheckResult = { steps: [], problems: [], skipped: [], ok: true, why: [] };
  if (opts.portage && !(await exists(join(opts.portage, 'bin/emerge')))) {
    throw gentooError('EGENTOO_PROFILE', `${opts.portage} is not a portage source tree (no bin/emerge)`);
  }
  const work = await mkdtemp(join(tmpdir(), 'hnforge-check-gentoo-'));
  try {
    const root = join(work, 'root');
    const repo = opts.repo ?? join(work, 'repo');
    if (!opts.repo) {
      for (const [path, content] of Object.entries(syntheticRepoFiles(opts.profile.gentoo?.portageProfile))) {
        await mkdir(dirname(join(repo, path)), { recursive: true });
        await writeFile(join(repo, path), content);
      }
    }
    // The overlay as the build binds it: the node package with its files, list and Manifest.
    const overlay = join(work, 'overlay');
    await assembleOverlay(opts.repoDir, overlay);
    await writeConfigRoot(root, opts.profile, repo, overlay);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      // The scratch root as portage's own prefix: configuration, installed-package
      // database and caches all under it, and ROOT stays "/" so portage sets up no
      // second configuration for the host (which has no Gentoo profile).
      PORTAGE_OVERRIDE_EPREFIX: root,
      // Outside a Gentoo system: no portage user or group, no sandbox binary.
      PORTAGE_USERNAME: 'root',
      PORTAGE_GRPNAME: 'root',
      // No network here: the binhost index is not fetched (emerge --info still shows binrepos.conf as read).
      FEATURES: '-sandbox -usersandbox -userpriv -usersync -userfetch -ipc-sandbox -network-sandbox -pid-sandbox -mount-sandbox -getbinpkg',
      PORTAGE_TMPDIR: join(root, 'var/tmp'),
      ...(opts.portage ? { PYTHONPATH: join(opts.portage, 'lib') } : {}),
    };
    const emerge = (args: string[]): Command =>
      opts.portage
        ? { file: 'python3', args: [join(opts.portage, 'bin/emerge'), ...args], env, timeoutMs: 10 * MINUTE }
        : { file: 'emerge', args, env, timeoutMs: 10 * MINUTE };

    const info = await runStep('emerge --info', emerge(['--info', '--verbose']));
    result.steps.push(info);
    opts.log(`emerge --info: exit ${info.exitCode}`);
    if (info.exitCode !== 0) {
      result.ok = false;
      result.why.push(`emerge --info failed (exit ${info.exitCode}) on the generated configuration`);
    }
    // The generated files were read: a value from make.conf and one from the build-only file it sources.
    const wanted = [['LC_MESSAGES', opts.profile.gentoo?.makeConf.LC_MESSAGES], ['MAKEOPTS', opts.profile.gentoo?.buildOnlyMakeConf.MAKEOPTS]].filter(
      (w): w is [string, string] => Boolean(w[1]),
    );
    const portageq: Command = opts.portage
      ? { file: 'python3', args: [join(opts.portage, 'bin/portageq'), 'envvar', '-v', ...wanted.map((w) => w[0])], env, timeoutMs: MINUTE }
      : { file: 'portageq', args: ['envvar', '-v', ...wanted.map((w) => w[0])], env, timeoutMs: MINUTE };
    const vars = await runStep('portageq envvar', portageq);
    result.steps.push(vars);
    for (const [k, want] of wanted) {
      if (![`${k}=${want}`, `${k}='${want}'`, `${k}="${want}"`].some((l) => vars.output.split('\n').includes(l))) {
        result.ok = false;
        result.why.push(`portageq does not show ${k}=${want}: the generated configuration was not read`);
      }
    }

    for (const n of opts.repo ? [] : ([1, 2] as const)) {
      const atoms = SYNTHETIC_SET.filter((s) => s.run === n).map((s) => s.atom);
      const pretend = await runStep(
        `emerge --pretend (run ${n})`,
        emerge(['--pretend', '--verbose', '--color=n', '--nospinner', '--autounmask=y', '--autounmask-write=n', '--autounmask-continue=n', ...atoms]),
      );
      result.steps.push(pretend);
      const problems = parseEmergePretend(pretend.output);
      result.problems.push(...problems);
      opts.log(`emerge --pretend (run ${n}): exit ${pretend.exitCode}, ${problems.length} problem(s) read`);
      if (pretend.exitCode !== 0 && !problems.length) {
        result.ok = false;
        result.why.push(`emerge --pretend (run ${n}) failed but hnforge recognised none of its problems`);
      }
    }
    if (!opts.repo) {
      // The overlay's own ebuilds through real portage's ebuild.sh (metadata): their
      // dependencies are not in the synthetic repository, so 'missing' is expected; a
      // broken ebuild shows up as anything else.
      const own = await runStep('emerge --pretend (overlay)', emerge(['--pretend', '--verbose', '--color=n', '--nospinner', '--autounmask=y', '--autounmask-write=n', ...OVERLAY_ATOMS]));
      result.steps.push(own);
      const ownProblems = parseEmergePretend(own.output);
      opts.log(`emerge --pretend (overlay): exit ${own.exitCode}, ${ownProblems.map((p) => `${p.kind} ${p.what}`).join('; ') || 'no problems'}`);
      const broken = own.output.split('\n').filter((l) => /corruption|invalid metadata|Error in|line \d+:|!!! .*ebuild/i.test(l));
      const notFound = ownProblems.filter((p) => p.kind === 'missing' && OVERLAY_ATOMS.some((a) => p.what === a));
      if (broken.length || notFound.length || ownProblems.some((p) => p.kind !== 'missing')) {
        result.ok = false;
        result.why.push(`portage did not read the overlay's ebuilds cleanly: ${[...broken, ...notFound.map(formatProblem), ...ownProblems.filter((p) => p.kind !== 'missing').map(formatProblem)].join(' | ').slice(0, 300)}`);
      }
      for (const s of SYNTHETIC_SET) {
        const name = s.names ?? s.atom;
        const got = result.problems.filter((p) => p.what.includes(name) || p.detail.includes(name));
        if (!s.expect && got.length) {
          result.ok = false;
          result.why.push(`${s.atom} should resolve cleanly, got ${got.map((p) => p.kind).join(', ')}`);
        }
        if (s.expect && !got.some((p) => p.kind === s.expect)) {
          result.ok = false;
          result.why.push(`${s.atom}: portage did not report a ${s.expect} problem hnforge recognises (reported: ${got.map((p) => p.kind).join(', ') || 'nothing'})`);
        }
      }
    }

    if (opts.pkgcore) {
      const pythonPath = [opts.pkgcore, opts.pkgcheck, opts.snakeoil].filter(Boolean).map((d) => join(d!, 'src')).join(':');
      const probe = await runStep('pkgcheck dependencies', {
        file: 'python3',
        args: [
          '-c',
          [
            'import importlib, sys',
            'bad = []',
            "for m in ['snakeoil', 'pkgcore', 'lxml', 'pathspec', 'tree_sitter', 'tree_sitter_bash', 'pkgcheck']:",
            '    try: importlib.import_module(m)',
            "    except Exception as e: bad.append(f'{m} ({type(e).__name__}: {e})')",
            "print('; '.join(bad)); sys.exit(1 if bad else 0)",
          ].join('\n'),
        ],
        env: { PATH: env.PATH!, PYTHONPATH: pythonPath },
        timeoutMs: MINUTE,
      });
      if (probe.exitCode !== 0) {
        result.skipped.push({
          name: 'pkgcheck scan',
          why: `not importable with ${probe.output.includes('Python') ? '' : 'this '}python3: ${probe.output.trim().split('\n').at(-1)} (pkgcheck needs Python >= 3.12, pkgcore, snakeoil, lxml, pathspec >= 1.0, tree-sitter 0.25, tree-sitter-bash 0.23)`,
        });
      } else {
        const scan = await runStep('pkgcheck scan', {
          file: 'python3',
          args: ['-m', 'pkgcheck', 'scan', '--exit', 'error', overlay],
          env: { ...env, PYTHONPATH: pythonPath },
          timeoutMs: 10 * MINUTE,
        });
        result.steps.push(scan);
        if (scan.exitCode !== 0) {
          result.ok = false;
          result.why.push(`pkgcheck scan exited ${scan.exitCode}`);
        }
      }
    }
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
