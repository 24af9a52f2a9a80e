// The publishing commands of the hnforge command line: publish, versions,
// verify, promote, prune, diff. Registered by pipeline/cli.ts, which owns
// process exit and error printing; these only parse, call and print.

import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { HnError } from '../errors.ts';
import { listVersions, promote, prune } from './channel-ops.ts';
import { listedFiles, readChannel, type Trust } from './channel.ts';
import { diffManifests, formatDiff } from './diff.ts';
import { parseManifest } from './manifest.ts';
import type { Manifest } from './manifest-types.ts';
import { checkChannelName, DEFAULT_CHANNEL, publish, readBuildReport, readStored } from './publish.ts';
import { loadKeyring, loadSigningKey, SIGNING_ENV } from './signing-key.ts';
import { openStore } from './stores.ts';
import { versionFiles, type Store } from './store.ts';
import { checkVersion } from './version.ts';

export const STORE_ENV = 'HNFORGE_STORE';

type Options = Record<string, unknown>;

/** Options every store command takes. */
function storeOptions<T>(y: Argv<T>) {
  return y
    .option('store', { type: 'string', describe: `the store: file:///path, s3://bucket/prefix or oci://host[:port]/repository (default: $${STORE_ENV})` })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout' });
}

function trustOptions<T>(y: Argv<T>) {
  return y
    .option('keyring', { type: 'string', describe: `public keyring to check SHA256SUMS.gpg with (signing-key.pub.gpg; default: $${SIGNING_ENV.keyring}, else the signing key's public part)` })
    .option('allow-unsigned', { type: 'boolean', default: false, describe: 'accept a channel without a signature (or without a keyring to check it)' });
}

function signingOptions<T>(y: Argv<T>) {
  return y.option('signing-key', { type: 'string', describe: `armored private key to sign SHA256SUMS with (default: $${SIGNING_ENV.key}; passphrase in $${SIGNING_ENV.passphrase})` });
}

/** Opens the store named by --store (or $HNFORGE_STORE, or a URL), runs `work`, closes it. */
export async function withStore<T>(argv: Options | string, work: (store: Store) => Promise<T>): Promise<T> {
  const url = typeof argv === 'string' ? argv : ((argv.store as string | undefined) ?? process.env[STORE_ENV]);
  if (!url) throw new HnError('EUSAGE', `no store named: pass --store URL (file:///srv/hn-images, s3://bucket/prefix, oci://host/repository) or set $${STORE_ENV}`);
  const store = await openStore(url);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** The profile a command is about: --profile, or the only one the store holds. */
async function profileOf(store: Store, argv: Options): Promise<string> {
  if (argv.profile) return argv.profile as string;
  const profiles = await store.profiles();
  if (profiles.length === 1) return profiles[0]!;
  throw new HnError('EUSAGE', profiles.length ? `${store.url} holds profiles ${profiles.join(', ')}: name one with --profile` : `${store.url} holds no published profile yet`);
}

const out = (text: string): void => void process.stdout.write(text);
const err = (line: string) => process.stderr.write(`hnforge: ${line}\n`);
const printJson = (value: unknown): void => out(JSON.stringify(value, null, 2) + '\n');
const seconds = (s: unknown) => (s === undefined ? undefined : Number(s) * 1000);

/** Throttled progress lines (every 5 s): long work visible in a terminal and in CI logs alike. */
function progressLine(what: string, quiet: boolean) {
  const started = Date.now();
  let last = 0;
  return (done: number, total: number) => {
    if (quiet || Date.now() - last < 5000) return;
    last = Date.now();
    const rate = done / Math.max(1, (Date.now() - started) / 1000) / 2 ** 20;
    err(`${what}: ${((100 * done) / total).toFixed(0)}% (${rate.toFixed(0)} MiB/s)`);
  };
}

export function publishCommands(setJson: (json: boolean) => void): CommandModule<object, Options>[] {
  const start = (argv: Options) => setJson(Boolean(argv.json));
  return [
    {
      command: 'publish',
      describe: 'Publish a built image into a channel of a store (compress, hash, upload, verify, sign)',
      builder: (y) =>
        signingOptions(storeOptions(y))
          .option('image', { type: 'string', demandOption: true, describe: 'the built image (out/<profile>/hn-root.img; its report lies beside it)' })
          .option('channel', { type: 'string', default: DEFAULT_CHANNEL, describe: 'channel to publish into' })
          .option('lock-wait', { type: 'number', default: 600, describe: 'seconds to wait while another publish of the profile holds the store' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'say what would be published; change nothing' })
          .example('$0 publish --image out/hn-debian/hn-root.img --store file:///srv/hn-images --signing-key keys/signing-key.asc', '')
          .example('$0 publish --image out/hn/hn-root.img --store oci://registry.example:5000/hn --channel nightly', '') as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        const image = resolve(argv.image as string);
        const info = await stat(image).catch(() => undefined);
        if (!info?.isFile()) throw new HnError('EUSAGE', `--image ${argv.image}: no such image file; build one with hnforge build --profile NAME`);
        const channel = checkChannelName(argv.channel as string);
        const signingKey = await loadSigningKey(argv.signingKey as string | undefined);
        if (argv.dryRun) {
          const report = await readBuildReport(image);
          const plan = { dryRun: true, image, profile: report.profile, version: report.version, channel, store: argv.store ?? process.env[STORE_ENV], signed: !!signingKey, files: Object.values(versionFiles(report.version)) };
          if (argv.json) printJson(plan);
          else out(`would publish ${report.profile} ${report.version} to ${plan.store} channel ${channel} (${signingKey ? 'signed' : 'UNSIGNED'}): ${plan.files.join(', ')}\n`);
          return;
        }
        const result = await withStore(argv, (store) =>
          publish({
            image, store, channel, signingKey, lockWaitMs: seconds(argv.lockWait)!,
            say: argv.json ? undefined : err, progress: progressLine('compressing', Boolean(argv.json)),
          }),
        );
        if (argv.json) printJson({ ok: true, ...result });
        else out(`${result.alreadyPublished ? 'already published' : 'published'} ${result.profile} ${result.version} to ${result.store} channel ${result.channel}${result.signedBy ? ` (signed by ${result.signedBy})` : ' (unsigned)'} in ${result.seconds.toFixed(1)} s\n`);
      },
    },
    {
      command: 'versions',
      describe: 'List the published versions of every channel',
      builder: (y) => trustOptions(storeOptions(y)).option('profile', { type: 'string', describe: 'only this profile' }) as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        const listing = await withStore(argv, async (store) => listVersions(store, await trust(argv, true), argv.profile as string | undefined));
        if (argv.json) return printJson(listing);
        for (const c of listing) {
          out(`${c.profile}/${c.channel}  ${c.signedBy ? `signed by ${c.signedBy}` : c.signed ? 'signed (not checked: no keyring)' : 'UNSIGNED'}\n`);
          for (const v of c.versions) out(`  ${v.version === c.head ? '*' : ' '} ${v.version.padEnd(16)} ${v.publishedAt ?? ''}  ${((v.artifactBytes ?? 0) / 2 ** 20).toFixed(0).padStart(6)} MiB\n`);
        }
        if (!listing.length) out('no published versions\n');
      },
    },
    {
      command: 'verify [version]',
      describe: 'Check a published version: signature, checksums, manifest, and the artifact decompressed',
      builder: (y) =>
        trustOptions(storeOptions(y))
          .positional('version', { type: 'string', describe: "the version (default: the channel's newest)" })
          .option('profile', { type: 'string', describe: 'profile (default: the only one in the store)' })
          .option('channel', { type: 'string', default: DEFAULT_CHANNEL, describe: 'channel to read' })
          .option('quick', { type: 'boolean', default: false, describe: 'skip decompressing the artifact' }) as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        if (argv.version) checkVersion(argv.version as string);
        const { verifyVersion } = await import('./verify.ts');
        const result = await withStore(argv, async (store) =>
          verifyVersion({
            store, ref: { profile: await profileOf(store, argv), channel: checkChannelName(argv.channel as string) }, version: argv.version as string | undefined,
            trust: await trust(argv), quick: Boolean(argv.quick), say: argv.json ? undefined : err,
          }),
        );
        if (argv.json) printJson({ ok: true, ...result });
        else out(`verified ${result.profile}/${result.channel} ${result.version}: ${result.signedBy ? `signed by ${result.signedBy}` : 'UNSIGNED (allowed)'}, ${result.files.length} files match SHA256SUMS${result.image.checked ? `, image sha256 ${result.image.sha256}` : ''}\n`);
      },
    },
    {
      command: 'promote <version>',
      describe: 'Add a published version to another channel (same files, same digest, no rebuild)',
      builder: (y) =>
        signingOptions(trustOptions(storeOptions(y)))
          .positional('version', { type: 'string', demandOption: true })
          .option('channel', { type: 'string', demandOption: true, describe: 'channel to promote into (e.g. stable)' })
          .option('from', { type: 'string', describe: 'channel holding the version (default: the one that lists it)' })
          .option('profile', { type: 'string', describe: 'profile (default: the only one in the store)' })
          .option('lock-wait', { type: 'number', default: 600, describe: 'seconds to wait for the store lock' }) as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        const version = checkVersion(argv.version as string);
        const signingKey = await loadSigningKey(argv.signingKey as string | undefined);
        const result = await withStore(argv, async (store) =>
          promote({
            store, profile: await profileOf(store, argv), version, from: argv.from as string | undefined, to: checkChannelName(argv.channel as string),
            signingKey, trust: await trust(argv, !signingKey, signingKey), lockWaitMs: seconds(argv.lockWait)!, say: argv.json ? undefined : err,
          }),
        );
        if (argv.json) printJson({ ok: true, ...result });
        else out(`${result.alreadyThere ? 'already in' : 'promoted to'} ${result.profile}/${result.to}: ${result.version} (from ${result.from})\n`);
      },
    },
    {
      command: 'prune',
      describe: "Remove old versions from channels (never a channel's newest)",
      builder: (y) =>
        signingOptions(trustOptions(storeOptions(y)))
          .option('keep', { type: 'number', demandOption: true, describe: 'versions to keep per channel (at least 1)' })
          .option('older-than', { type: 'number', describe: 'only remove versions published more than this many days ago' })
          .option('profile', { type: 'string', describe: 'only this profile (default: every profile)' })
          .option('channel', { type: 'string', describe: 'only this channel' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'list what would be removed' })
          .option('lock-wait', { type: 'number', default: 600, describe: 'seconds to wait for the store lock' }) as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        const signingKey = await loadSigningKey(argv.signingKey as string | undefined);
        const results = await withStore(argv, async (store) => {
          const profiles = argv.profile ? [argv.profile as string] : await store.profiles();
          const all = [];
          for (const profile of profiles) {
            all.push(...(await prune({
              store, profile, keep: Number(argv.keep), olderThanDays: argv.olderThan as number | undefined, channel: argv.channel as string | undefined, dryRun: Boolean(argv.dryRun),
              signingKey, trust: await trust(argv, !signingKey, signingKey), lockWaitMs: seconds(argv.lockWait)!, say: argv.json ? undefined : err,
            })));
          }
          return all;
        });
        if (argv.json) return printJson({ ok: true, dryRun: Boolean(argv.dryRun), channels: results });
        for (const r of results) out(`${r.profile}/${r.channel}: ${argv.dryRun ? 'would remove' : 'removed'} ${r.removed.join(', ') || 'nothing'}; keeps ${r.kept.join(', ')}\n`);
      },
    },
    {
      command: 'diff <a> <b>',
      describe: 'What changed between two versions: packages, files, sizes (manifest files, or versions in --store)',
      builder: (y) =>
        trustOptions(storeOptions(y))
          .positional('a', { type: 'string', demandOption: true, describe: 'older: a manifest (hn-root_<v>.json) or a version' })
          .positional('b', { type: 'string', demandOption: true, describe: 'newer: a manifest or a version' })
          .option('profile', { type: 'string', describe: 'profile (default: the only one in the store)' })
          .option('channel', { type: 'string', default: DEFAULT_CHANNEL, describe: 'channel holding the versions' }) as Argv<Options>,
      handler: async (argv) => {
        start(argv);
        const [a, b] = await manifestsOf(argv, [argv.a as string, argv.b as string]);
        const d = diffManifests(a!, b!);
        if (argv.json) printJson(d);
        else out(formatDiff(d, 50));
      },
    },
  ];
}

async function trust(argv: Options, allowUnsigned = Boolean(argv.allowUnsigned), signingKey?: Awaited<ReturnType<typeof loadSigningKey>>): Promise<Trust> {
  const keyring = await loadKeyring(argv.keyring as string | undefined, signingKey);
  return { keyring, allowUnsigned: allowUnsigned || Boolean(argv.allowUnsigned) };
}

/** Manifests named by path, else by version in the store's channel. */
async function manifestsOf(argv: Options, names: string[]): Promise<Manifest[]> {
  const local = await Promise.all(names.map((n) => readFile(n).then((bytes) => parseManifest(bytes, n), () => undefined)));
  if (local.every(Boolean)) return local as Manifest[];
  return withStore(argv, async (store) => {
    const ref = { profile: await profileOf(store, argv), channel: checkChannelName(argv.channel as string) };
    const channel = await readChannel(store, ref, await trust(argv));
    return Promise.all(names.map(async (n, i) => {
      if (local[i]) return local[i]!;
      const file = listedFiles(channel, checkVersion(n)).find((f) => f.name === versionFiles(n).manifest)!;
      return parseManifest(await readStored(store, ref, file), `${file.name} in ${ref.channel}`);
    }));
  });
}
