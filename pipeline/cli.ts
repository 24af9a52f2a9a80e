// The hnforge command line. Only this file calls process.exit; everything
// below it throws HnError for the user's mistakes and plain errors for bugs.

import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT, HnError, InterruptedError, isHnError } from './errors.ts';
import { PACKAGE_PURPOSES, type PackagePurpose } from './package-purposes.ts';
import type { BuildReport } from './report.ts';
import { publishCommands, withStore } from './publish/commands.ts';
import { nodeCommands } from './node-commands.ts';
import { checkChannelName, DEFAULT_CHANNEL, publish } from './publish/publish.ts';
import { keygen } from './publish/keygen.ts';
import { checkVersion } from './publish/version.ts';
import { loadSigningKey } from './publish/signing-key.ts';
import { untilInterrupted } from './seam/run.ts';
import type { BuildResult } from './runner.ts';

// Profiles are read with zod and yaml (~0.2 s to load): publishing never reads one.
const resolveProfile: typeof import('./profiles.ts').resolveProfile = async (...args) => (await import('./profiles.ts')).resolveProfile(...args);
const listProfiles: typeof import('./profiles.ts').listProfiles = async (...args) => (await import('./profiles.ts')).listProfiles(...args);

// The build's own modules (stages, runner, host tools, Gentoo checks) take about half a
// second to load: only the commands that use them load them, so that publish, verify and
// the node commands start quickly.
const buildModules = async () => {
  const [runner, stagesTable, hostTools, hostPackages, preflight, catalogue, progress, report, recovery] = await Promise.all([
    import('./runner.ts'), import('./stages-table.ts'), import('./host-tools.ts'), import('./host-packages.ts'), import('./preflight.ts'),
    import('./seam/catalogue.ts'), import('./progress.ts'), import('./report.ts'), import('./recovery.ts'),
  ]);
  return { ...runner, ...stagesTable, ...hostTools, ...hostPackages, ...preflight, ...catalogue, ...progress, ...report, ...recovery };
};

const repoDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const profilesDir = join(repoDir, 'profiles');

const EXIT_CODES = `Exit codes:
  0    success
  1    the build failed (the message names the stage; its log is under <cache>/build/<profile>/logs),
       another build holds the profile's lock, or clean could not release something
  2    usage error (unknown option, stage or command)
  3    preflight failed (not root, missing host tools, no disk space, unknown or invalid profile)
  70   internal error in hnforge (please report it with the stack trace)
  130  interrupted (SIGINT/SIGTERM); everything acquired was released, rerun to resume`;

let jsonMode = false;

/** "20G", "512M", "1073741824" -> bytes. */
function parseSize(text: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new HnError('EUSAGE', `--size ${text}: use a number with an optional K, M, G or T suffix (e.g. 20G)`);
  return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
}

function printDryRun(result: BuildResult) {
  const out: string[] = [`Plan for profile ${result.profile} (dry run: nothing was changed)`];
  if (result.version) out.push(`  version ${result.version.version} (${result.version.how})`);
  for (const s of result.stages) {
    const key = s.key ? ` key ${s.key}` : '';
    out.push(`  ${s.name.padEnd(18)} ${s.kind.padEnd(8)} ${s.status.padEnd(10)}${key}`);
    for (const line of s.plan ?? []) out.push(`      $ ${line}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function checkGentooCommand(argv: { profile: string; portage?: string; repo?: string; pkgcore?: string; pkgcheck?: string; snakeoil?: string; profilesDir: string; json: boolean }) {
  jsonMode = argv.json;
  const [{ checkGentoo }, { formatProblem }] = await Promise.all([import('./gentoo/check.ts'), import('./gentoo/resolve.ts')]);
  const profile = await resolveProfile(resolve(argv.profilesDir), argv.profile);
  if (!profile.gentoo) throw new HnError('EUSAGE', `check-gentoo checks Gentoo profiles; ${profile.name} is a ${profile.base} profile`);
  const abs = (p?: string) => (p ? resolve(p) : undefined);
  const r = await checkGentoo({
    profile, repoDir, portage: abs(argv.portage), repo: abs(argv.repo), pkgcore: abs(argv.pkgcore), pkgcheck: abs(argv.pkgcheck), snakeoil: abs(argv.snakeoil),
    log: (l) => process.stderr.write(`hnforge check-gentoo: ${l}\n`),
  });
  if (argv.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else {
    const out: string[] = [];
    for (const s of r.steps) out.push(`==== ${s.name}: exit ${s.exitCode}`, `$ ${s.command}`, s.output, '');
    out.push('problems read from emerge --pretend:', ...r.problems.map((p) => `  ${formatProblem(p)}`));
    for (const s of r.skipped) out.push(`not run: ${s.name}: ${s.why}`);
    out.push(r.ok ? 'check-gentoo: ok' : `check-gentoo: FAILED\n${r.why.map((w) => `  ${w}`).join('\n')}`);
    process.stdout.write(out.join('\n') + '\n');
  }
  if (!r.ok) throw new HnError('EGENTOO_CHECK', `real portage and hnforge disagree: ${r.why[0]}`, { details: r.why });
}

async function buildCommand(argv: {
  profile: string;
  dryRun: boolean;
  json: boolean;
  keepGoing: boolean;
  from?: string;
  only?: string;
  output: string;
  cache: string;
  installHostPackages: boolean;
  profilesDir: string;
  sidecar: boolean;
  version?: string;
  store?: string;
  channel?: string;
  publish: boolean;
  signingKey?: string;
  keyring?: string;
}) {
  jsonMode = argv.json;
  if (argv.from && argv.only) throw new HnError('EUSAGE', '--from and --only cannot be combined: --only runs one stage, --from runs a stage and all after it');
  if (argv.version !== undefined) checkVersion(String(argv.version));
  const { progressMode, stagesFor, ensureHostPackages, toolsOf, preflight, build, summarise } = await buildModules();
  const signingKey = await loadSigningKey(argv.signingKey);
  const cacheDir = resolve(argv.cache);
  const outputDir = resolve(argv.output);
  const progress = progressMode(argv.json);
  const say = (line: string) => progress !== 'silent' && process.stderr.write(`hnforge: ${line}\n`);
  const profile = await resolveProfile(resolve(argv.profilesDir), argv.profile);
  if (argv.keyring !== undefined && !profile.gentoo) throw new HnError('EUSAGE', `--keyring is for Gentoo profiles; ${profile.name} is a ${profile.base} profile`);
  const store = argv.publish ? (argv.store ?? profile.publish?.store) : undefined;
  const channel = argv.channel ?? profile.publish?.channel ?? DEFAULT_CHANNEL;
  if (store) checkChannelName(channel);
  if (!argv.dryRun) {
    const stages = stagesFor(profile.base);
    await mkdir(cacheDir, { recursive: true });
    if (argv.installHostPackages) await ensureHostPackages(toolsOf(stages), say);
    await preflight({ profile, stages, cacheDir, isRoot: process.getuid?.() === 0 });
  }
  const result = await build({
    profile: argv.profile,
    repoDir,
    profilesDir: resolve(argv.profilesDir),
    cacheDir,
    outputDir: join(outputDir, argv.profile),
    dryRun: argv.dryRun,
    from: argv.from,
    only: argv.only,
    keepGoing: argv.keepGoing,
    sidecar: argv.sidecar,
    version: argv.version === undefined ? undefined : String(argv.version),
    store: argv.store ?? profile.publish?.store,
    signingKey,
    keyring: argv.keyring,
    progress,
  });
  if (!argv.dryRun && result.version) say(`version ${result.version.version} (${result.version.how === 'next' ? 'the next of the day' : result.version.how === 'reused' ? 'reused: the same inputs got it earlier today' : '--version'})`);
  if (!argv.dryRun && !signingKey) say('no signing key (--signing-key or HNFORGE_SIGNING_KEY): the image has no publishing key to verify its updates with');
  // Publishing is the build's last step when a store is named: the same code as `hnforge publish`.
  const published = store && result.image && !argv.dryRun && result.ok
    ? await withStore(store, (s) => publish({ image: result.image!, store: s, channel, signingKey, lockWaitMs: 600_000, say }))
    : undefined;
  if (argv.json) {
    process.stdout.write(JSON.stringify(published ? { ...result, published } : result, null, 2) + '\n');
  } else if (argv.dryRun) {
    printDryRun(result);
  } else if (result.report) {
    const report = JSON.parse(await readFile(result.report, 'utf8')) as BuildReport;
    process.stdout.write(summarise(report));
    if (published) process.stdout.write(`published      ${published.version} to ${published.store} channel ${published.channel}${published.signedBy ? '' : ' (unsigned)'}\n`);
  } else {
    say(`stopped after --only ${argv.only}; nothing published`);
  }
  if (!result.ok) {
    const failed = result.stages.filter((s) => s.status === 'failed-kept-going').map((s) => s.name);
    throw new HnError('EKEPTGOING', `finished with failed optional stages: ${failed.join(', ')}`);
  }
}

async function cleanCommand(argv: { profile: string; cache: string; dryRun: boolean; json: boolean }) {
  jsonMode = argv.json;
  if (!/^[\w.-]+$/.test(argv.profile)) throw new HnError('EUSAGE', `--profile ${argv.profile}: a profile name, not a path`, { exitCode: EXIT.usage });
  if (process.getuid?.() !== 0) throw new HnError('EPREFLIGHT', 'not running as root: releasing mounts, loop devices and processes needs root', { exitCode: EXIT.preflight });
  const { cleanBuildDir, assertRecovered } = await buildModules();
  const cacheDir = resolve(argv.cache);
  const buildDir = join(cacheDir, 'build', argv.profile);
  const known = await resolveProfile(profilesDir, argv.profile).then(() => true, () => false);
  const result = await cleanBuildDir(buildDir, `profile ${argv.profile} in ${cacheDir}`, { dryRun: argv.dryRun });
  if (!known && !result.released.length && !result.failed.length) {
    // Nothing found under a name that is not a profile either: most likely a typo.
    throw new HnError('EUSAGE', `unknown profile '${argv.profile}' and nothing left by a build of it in ${cacheDir} (see: hnforge profiles)`, { exitCode: EXIT.usage });
  }
  if (argv.json) {
    process.stdout.write(JSON.stringify({ ok: !result.failed.length, profile: argv.profile, buildDir, dryRun: argv.dryRun, ...result }, null, 2) + '\n');
  } else {
    const verb = argv.dryRun ? 'would release' : 'released';
    for (const line of result.released) process.stdout.write(`${verb} ${line}\n`);
    if (!result.released.length && !result.failed.length) process.stdout.write(`nothing left by a build of ${argv.profile} in ${cacheDir}\n`);
  }
  assertRecovered(result, buildDir);
}

async function bootTestCommand(argv: { image: string; timeout: number; json: boolean }) {
  jsonMode = argv.json;
  if (!Number.isFinite(argv.timeout) || argv.timeout <= 0) throw new HnError('EUSAGE', `--timeout ${argv.timeout}: a number of seconds greater than 0`);
  const { bootTest, checkBootImage, BOOT_TEST_COMMANDS, BOOT_TEST_EXTRA_PACKAGES } = await import('./boot-test.ts');
  const { ensurePackages, packagesOfTools, programsOf } = await buildModules();
  await checkBootImage(resolve(argv.image));
  const say = (line: string) => !argv.json && process.stderr.write(`hnforge: ${line}\n`);
  await ensurePackages([...packagesOfTools(programsOf(BOOT_TEST_COMMANDS)).packages, ...BOOT_TEST_EXTRA_PACKAGES], say);
  // qemu and the provisioning tools run in their own process groups: stop them on Ctrl-C, then clean up.
  await untilInterrupted(async (signal) => {
    const r = await bootTest({ image: resolve(argv.image), timeoutMs: argv.timeout * 1000, signal, log: say });
    if (argv.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else process.stdout.write(`boot-test passed: ${r.image} reached its userspace ${(r.atMs / 1000).toFixed(1)} s after qemu started\n  ${r.marker}\n  serial log: ${r.log}\n`);
  });
}

async function nightlyCommand(argv: {
  profile: string[]; store: string; channel: string; keep: number; signingKey?: string; output: string; cache?: string;
  bootTimeout?: number; dryRun: boolean; json: boolean;
}) {
  jsonMode = argv.json;
  const { checkNightlyOptions, formatPlan, formatSummary, planNightly, runNightly } = await import('./nightly.ts');
  const options = {
    profiles: argv.profile, store: argv.store, channel: argv.channel, keep: argv.keep, signingKey: argv.signingKey,
    output: argv.output, cache: argv.cache, bootTimeoutSec: argv.bootTimeout,
    // Tests point this at a stand-in that prints its argv; everyone else runs this very hnforge.
    bin: process.env.HNFORGE_NIGHTLY_BIN || join(repoDir, 'bin/hnforge'),
  };
  if (argv.bootTimeout !== undefined && !(argv.bootTimeout > 0)) throw new HnError('EUSAGE', `--boot-timeout ${argv.bootTimeout}: a number of seconds greater than 0`);
  await checkNightlyOptions(options, profilesDir);
  const result = argv.dryRun ? planNightly(options) : await runNightly(options, (l) => process.stderr.write(`hnforge nightly: ${l}\n`));
  if (argv.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else process.stdout.write(argv.dryRun ? formatPlan(result) : formatSummary(result));
  if (result.interrupted) {
    jsonMode = false;
    throw new InterruptedError(result.interrupted);
  }
  if (!result.ok) {
    const failed = result.profiles.filter((p) => !p.ok).map((p) => `${p.profile} (${p.steps.find((s) => s.status === 'failed')?.step})`);
    // --json already printed the whole result: the error line goes to stderr only.
    jsonMode = false;
    throw new HnError('ENIGHTLY', `nightly failed for ${failed.join(', ')}; the summary above shows each failure and the command that reruns it`);
  }
}

export async function main(args: string[]): Promise<number> {
  try {
    await yargs(args)
      .scriptName('hnforge')
      .usage('$0 <command> [options]\n\nBuilds hardware-node root images (hn-root.img) that servers boot from a file.')
      .command(
        'build',
        'Build the image of a profile',
        (y) =>
          y
            .option('profile', { type: 'string', demandOption: true, describe: 'profile to build (see: hnforge profiles)' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the stage plan, commands and cache decisions; change nothing; no root needed' })
            .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout (no progress output)' })
            .option('keep-going', { type: 'boolean', default: false, describe: 'do not stop at a failed optional stage; report all failures at the end' })
            .option('from', { type: 'string', describe: 'rerun this stage and all after it, even if cached' })
            .option('only', { type: 'string', describe: 'run up to this stage (from the nearest checkpoint) and stop, without sealing or publishing' })
            .option('output', { type: 'string', default: 'out', describe: 'directory for the finished image and its report (a subdirectory per profile)' })
            .option('cache', { type: 'string', default: '/var/cache/hnforge', describe: 'stage cache, package cache and build directory' })
            .option('sidecar', { type: 'boolean', default: true, describe: 'write hn-root.img.sha256 (size + sha256, what a node checks before promoting an update); --no-sidecar skips the ~15 s hash' })
            .option('profiles-dir', { type: 'string', default: profilesDir, describe: 'directory holding the profiles' })
            .option('install-host-packages', { type: 'boolean', default: true, describe: 'apt-get install missing host tools before building' })
            .option('version', { type: 'string', describe: 'the image\'s version (letters, digits, . + ~ -); default YYYYMMDD.N, the next of the UTC day' })
            .option('store', { type: 'string', describe: 'publish the finished image to this store (file:///path, s3://bucket/prefix, oci://host/repo; default: the profile\'s publish.store); its versions count for the default version' })
            .option('channel', { type: 'string', describe: 'channel to publish into (default: the profile\'s publish.channel, else nightly)' })
            .option('publish', { type: 'boolean', default: true, describe: '--no-publish: build only, even when the profile names a store' })
            .option('signing-key', { type: 'string', describe: 'armored private key (hnforge keygen\'s signing-key.asc; else HNFORGE_SIGNING_KEY): its public keyring goes into the image' })
            .option('keyring', { type: 'string', describe: 'Gentoo, air-gapped: armored file with the keys the profile pins by fingerprint; nothing is fetched (overrides gentoo.keyring)' })
            .example('$0 build --profile hn-debian', 'build out/hn-debian/hn-root.img')
            .example('$0 build --profile hn-debian --dry-run', 'show what would run')
            .epilog(EXIT_CODES),
        (argv) => buildCommand(argv as never),
      )
      .command(
        'provision',
        'Install an image on a disk (or disk image file): GPT, EFI-BOOT with GRUB, hostpart with hn-root.img and data/',
        (y) =>
          y
            .option('disk', { type: 'string', demandOption: true, describe: 'block device or disk image file (everything on it is destroyed)' })
            .option('image', { type: 'string', demandOption: true, describe: 'the hn-root.img to install' })
            .option('hostpart-fs', { choices: ['btrfs', 'ext4'] as const, default: 'btrfs' as const, describe: 'filesystem of the host partition' })
            .option('size', { type: 'string', describe: 'size of a disk image file to create, e.g. 20G (only when --disk does not exist)' })
            .option('yes', { type: 'boolean', default: false, describe: 'go ahead without asking (the plan is printed first)' })
            .option('force', { type: 'boolean', default: false, describe: 'destroy a disk that already has partitions or filesystems' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be destroyed and done; change nothing' })
            .example('$0 provision --disk /dev/sdb --image out/hn-debian/hn-root.img --yes', 'install on a new disk')
            .epilog(EXIT_CODES),
        async (argv) => {
          const { provision, PROVISION_COMMANDS } = await import('./provision.ts');
          const { ensureHostPackages, programsOf } = await buildModules();
          if (!argv.dryRun) {
            if (process.getuid?.() !== 0) throw new HnError('EPREFLIGHT', 'not running as root: provisioning writes partitions and filesystems; run as root (or use --dry-run)');
            await ensureHostPackages(programsOf(PROVISION_COMMANDS), (l) => process.stderr.write(`hnforge: ${l}\n`));
          }
          const sizeBytes = argv.size ? parseSize(argv.size) : undefined;
          const result = await provision({
            disk: resolve(argv.disk),
            image: resolve(argv.image),
            hostpartFs: argv.hostpartFs,
            yes: argv.yes,
            force: argv.force,
            dryRun: argv.dryRun,
            sizeBytes,
            log: (line) => process.stderr.write(`${line}\n`),
          });
          process.stdout.write(result.performed ? `provisioned ${result.disk}\n` : 'dry run: nothing was changed\n');
        },
      )
      .command(
        'status',
        "What a node's host partition holds, read offline: images and versions, the trial, the last revert and its reason",
        (y) =>
          y
            .option('disk', { type: 'string', demandOption: true, describe: 'a node disk or disk image file (read-only: nothing on it changes)' })
            .option('json', { type: 'boolean', default: false, describe: 'print the status as JSON' })
            .example('$0 status --disk /dev/sdb', 'the disk of a node that is switched off')
            .epilog(EXIT_CODES),
        async (argv) => {
          jsonMode = argv.json;
          const { diskStatus, STATUS_COMMANDS } = await import('./status.ts');
          const { ensureHostPackages, programsOf } = await buildModules();
          if (process.getuid?.() !== 0) throw new HnError('EPREFLIGHT', 'not running as root: status attaches the host partition to a read-only loop device');
          await ensureHostPackages(programsOf(STATUS_COMMANDS), (l) => process.stderr.write(`hnforge: ${l}\n`));
          process.stdout.write(await diskStatus({ disk: resolve(argv.disk), json: argv.json, repoDir }));
        },
      )
      .command(
        'clean',
        'Release what a killed build of a profile left behind: its processes, mounts and loop devices',
        (y) =>
          y
            .option('profile', { type: 'string', demandOption: true, describe: 'profile whose build directory (<cache>/build/<profile>) to clean' })
            .option('cache', { type: 'string', default: '/var/cache/hnforge', describe: 'the cache the build used' })
            .option('dry-run', { type: 'boolean', default: false, describe: 'list what would be released; release nothing' })
            .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
            .example('$0 clean --profile hn-debian', 'after a build was killed with SIGKILL')
            .epilog(EXIT_CODES),
        (argv) => cleanCommand(argv as never),
      )
      .command(
        'keygen',
        'Make an OpenPGP key to sign published images (Ed25519; gpgv and systemd-pull verify its signatures)',
        (y) =>
          y
            .option('out', { type: 'string', demandOption: true, describe: 'directory for signing-key.asc (0600), signing-key.pub.asc and the gpgv keyring signing-key.pub.gpg' })
            .option('name', { type: 'string', describe: 'user ID name (default: hnforge image signing key)' })
            .option('email', { type: 'string', describe: 'user ID e-mail' })
            .option('force', { type: 'boolean', default: false, describe: 'replace existing key files (images signed with the old key no longer verify with the new one)' })
            .option('json', { type: 'boolean', default: false, describe: 'print the fingerprint and paths as JSON' })
            .example('$0 keygen --out /etc/hnforge/keys', 'a key for the nightly builder'),
        async (argv) => {
          jsonMode = argv.json;
          // A passphrase never comes from argv (visible in ps): HNFORGE_KEY_PASSPHRASE, if set.
          const made = await keygen({ out: argv.out, name: argv.name, email: argv.email, force: argv.force, passphrase: process.env.HNFORGE_KEY_PASSPHRASE || undefined });
          if (argv.json) process.stdout.write(JSON.stringify({ ok: true, ...made }, null, 2) + '\n');
          else process.stdout.write(`signing key ${made.fingerprint}\n  private  ${made.privateKey}\n  public   ${made.publicKey}\n  keyring  ${made.keyring} (gpgv --keyring)\n`);
        },
      )
      .command(publishCommands((json) => (jsonMode = json)))
      .command(nodeCommands((json) => (jsonMode = json)))
      .command(
        'check-gentoo',
        "Run real portage (and pkgcheck) against the Gentoo configuration a profile generates: emerge --info, emerge --pretend of a synthetic repository (keywords, USE, REQUIRED_USE, licences, a blocker), pkgcheck scan of portage-overlay/",
        (y) =>
          y
            .option('profile', { type: 'string', default: 'hn', describe: 'Gentoo profile whose generated configuration is checked' })
            .option('portage', { type: 'string', describe: "portage source tree (run with python3); default: the installed emerge (a Gentoo host)" })
            .option('repo', { type: 'string', describe: 'an ebuild repository to use instead of the synthetic one (emerge --info only)' })
            .option('pkgcore', { type: 'string', describe: 'pkgcore source tree: run pkgcheck scan on portage-overlay/ (with --pkgcheck and --snakeoil trees)' })
            .option('pkgcheck', { type: 'string', describe: 'pkgcheck source tree' })
            .option('snakeoil', { type: 'string', describe: 'snakeoil source tree' })
            .option('profiles-dir', { type: 'string', default: profilesDir, describe: 'directory holding the profiles' })
            .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
            .example('$0 check-gentoo --portage ~/src/portage', 'real portage from a checkout against profile hn'),
        (argv) => checkGentooCommand(argv as never),
      )
      .command(
        'boot-test',
        'Boot an image under qemu the way a server does (GRUB on EFI-BOOT, hn-root.img on hostpart) and wait for its userspace',
        (y) =>
          y
            .option('image', { type: 'string', demandOption: true, describe: 'the hn-root.img to boot (never changed: a copy is booted)' })
            .option('timeout', { type: 'number', default: 600, describe: 'seconds the boot may take before it counts as failed' })
            .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' })
            .example('$0 boot-test --image out/hn-debian/hn-root.img', 'the serial log goes to out/hn-debian/hn-root.boot-test.log')
            .epilog(EXIT_CODES),
        (argv) => bootTestCommand(argv as never),
      )
      .command(
        'nightly',
        'For each profile: build, boot-test, publish and prune, each as its own hnforge command; a summary at the end',
        (y) =>
          y
            .option('profile', { type: 'string', array: true, demandOption: true, describe: 'profile to build (repeat for several; each runs even if one before failed)' })
            .option('store', { type: 'string', demandOption: true, describe: 'where to publish: file:///path, s3://bucket/prefix or oci://host[:port]/repository' })
            .option('channel', { type: 'string', default: 'nightly', describe: 'channel to publish to' })
            .option('keep', { type: 'number', default: 7, describe: 'versions of each profile prune keeps in the store' })
            .option('signing-key', { type: 'string', describe: 'OpenPGP private key that signs SHA256SUMS (see hnforge keygen)' })
            .option('output', { type: 'string', default: 'out', describe: 'build output directory (a subdirectory per profile)' })
            .option('cache', { type: 'string', describe: "the build's cache directory (default: the build's own)" })
            .option('boot-timeout', { type: 'number', describe: "boot-test's --timeout in seconds (default: boot-test's own)" })
            .option('dry-run', { type: 'boolean', default: false, describe: 'print the commands that would run; run nothing' })
            .option('json', { type: 'boolean', default: false, describe: 'print the result (every step, status, exit code, time) as JSON on stdout' })
            .example('$0 nightly --profile hn-debian --store file:///srv/images --signing-key /etc/hnforge/keys/signing-key.asc', 'what the systemd timer runs')
            .epilog(EXIT_CODES),
        (argv) => nightlyCommand(argv as never),
      )
      .command('profiles', 'List the profiles', {}, async () => {
        for (const p of await listProfiles(profilesDir)) {
          process.stdout.write(`${p.name.padEnd(14)} ${p.abstract ? '(abstract) ' : ''}${p.description}\n`);
        }
      })
      .command('profile <action> <name>', 'Show a profile resolved through its inheritance', (y) =>
        y.positional('action', { choices: ['show'] as const, describe: 'show: print the resolved profile' }).positional('name', { type: 'string', demandOption: true }),
        async (argv) => {
          const profile = await resolveProfile(profilesDir, argv.name as string, { allowAbstract: true });
          process.stdout.write((await import('yaml')).stringify(profile));
        },
      )
      .command('stages', 'List the stages of a profile', (y) => y.option('profile', { type: 'string', demandOption: true }), async (argv) => {
        const profile = await resolveProfile(profilesDir, argv.profile);
        const { stagesFor } = await buildModules();
        for (const s of stagesFor(profile.base)) {
          const flags = [s.kind, s.needsRoot ? 'root' : 'no-root', s.checkpoint ? 'checkpoint' : ''].filter(Boolean).join(', ');
          process.stdout.write(`${s.name.padEnd(18)} ${s.title} [${flags}]\n`);
        }
      })
      .command(
        'host-packages',
        'List (or install) the Debian packages the host needs: for a build, provisioning, or the tests',
        (y) =>
          y
            .option('for', { choices: PACKAGE_PURPOSES, default: 'build' as PackagePurpose, describe: 'build: the build (of --profile, else of every base); test: the full test suite; quick: npm test -- --quick' })
            .option('profile', { type: 'string', describe: 'with --for build: only what this profile\'s base needs' })
            .option('install', { type: 'boolean', default: false, describe: 'apt-get install the missing ones (root); not root: fail naming them' })
            .example('$0 host-packages --for build --profile hn-debian', 'the packages a hn-debian build installs on first use'),
        async (argv) => {
          const base = argv.profile ? (await resolveProfile(profilesDir, argv.profile, { allowAbstract: true })).base : undefined;
          const { hostPackages, ensurePackages } = await buildModules();
          const packages = hostPackages(argv.for, base);
          if (argv.install) await ensurePackages(packages, (l) => process.stderr.write(`hnforge: ${l}\n`));
          else process.stdout.write(packages.join('\n') + '\n');
        },
      )
      .demandCommand(1, 'name a command: build, clean, provision, status, keygen, publish, versions, verify, promote, prune, diff, boot-test, nightly, node, profiles, profile show, stages, host-packages (see --help)')
      .strict()
      .epilog(EXIT_CODES)
      .fail((msg, err) => {
        if (err) throw err;
        throw new HnError('EUSAGE', `${msg} (see hnforge --help)`);
      })
      .help()
      .version(false)
      .wrap(Math.min(110, process.stdout.columns || 100))
      .parseAsync();
    return EXIT.ok;
  } catch (e) {
    if (isHnError(e)) {
      if (jsonMode) process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message, details: e.details } }) + '\n');
      process.stderr.write(`hnforge: error: ${e.message}\n`);
      for (const d of e.details.slice(-15)) if (!e.message.includes(d)) process.stderr.write(`  | ${d}\n`);
      return e.exitCode;
    }
    process.stderr.write(`hnforge: internal error (a bug; please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT.internal;
  }
}

// A reader that stops early (`hnforge profiles | head`) is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? EXIT.ok);
});
process.exitCode = await main(hideBin(process.argv));
