// `hnforge publish`: one built image into a channel of a store, in the order
// that keeps every reader safe:
//
//   lock the profile -> read the channel (signature checked) -> compress and
//   hash the image in one pass -> upload artifact, manifest and report ->
//   read them back from the store and check their sha256 -> write the new
//   SHA256SUMS, then its signature -> unlock.
//
// A crash or failed upload before the index is written leaves the channel as
// it was: the new files are not listed, so no reader takes them. Published
// files are immutable: the same version with other content is refused.

import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HnError } from '../errors.ts';
import { fileIdentity, summarise, type BuildReport, type FileIdentity } from '../report.ts';
import { compressImage } from './artifact.ts';
import { readChannel, type Channel } from './channel.ts';
import { diffManifests, formatDiff } from './diff.ts';
import { buildManifest, manifestBytes, parseManifest } from './manifest.ts';
import { outputFiles } from './output.ts';
import { signDetached } from './signing.ts';
import { processAlive } from './store-lock.ts';
import { publicKeyringOf, type SigningKey } from './signing-key.ts';
import { INDEX_FILES, NAME_PATTERN, versionFiles, type ChannelRef, type Store, type StoredFile, type Upload } from './store.ts';
import { formatSums, sha256, withEntry } from './sums.ts';
import { checkVersion } from './version.ts';

export const DEFAULT_CHANNEL = 'nightly';

export interface PublishOptions {
  image: string;
  store: Store;
  channel: string;
  signingKey?: SigningKey;
  /** How long to wait for another publish of the profile. */
  lockWaitMs: number;
  say?: (line: string) => void;
  progress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface PublishResult {
  store: string;
  profile: string;
  channel: string;
  version: string;
  /** True when this exact version was already in the channel: nothing was uploaded. */
  alreadyPublished: boolean;
  signedBy?: string;
  files: StoredFile[];
  image: { sha256: string; bytes: number };
  previous?: string;
  seconds: number;
}

/** The build report beside an image, with the fields publishing needs checked. */
export async function readBuildReport(image: string): Promise<BuildReport> {
  const path = outputFiles(image).json;
  let report: BuildReport;
  try {
    report = JSON.parse(await readFile(path, 'utf8')) as BuildReport;
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`;
    throw new HnError('EUSAGE', `${path} ${why}; publish an image built by hnforge build (its report lies beside it)`, { cause: e });
  }
  if (!report.version) throw new HnError('EUSAGE', `${path} names no version (built before versions existed); rebuild the image`);
  checkVersion(report.version);
  if (!NAME_PATTERN.test(report.profile ?? '')) throw new HnError('EUSAGE', `${path}: profile ${JSON.stringify(report.profile)} cannot name a store directory`);
  return report;
}

export function checkChannelName(channel: string): string {
  if (!NAME_PATTERN.test(channel)) throw new HnError('EUSAGE', `channel ${JSON.stringify(channel)}: use lowercase letters, digits, ".", "_" and "-" (e.g. nightly, stable)`);
  return channel;
}

export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const started = Date.now();
  const say = opts.say ?? (() => undefined);
  const report = await readBuildReport(opts.image);
  const ref: ChannelRef = { profile: report.profile, channel: checkChannelName(opts.channel) };
  const { version } = report;
  const names = versionFiles(version);
  const publicKey = opts.signingKey ? await publicKeyringOf(opts.signingKey) : undefined;
  const keyring = publicKey?.bytes;
  if (!opts.signingKey) say(`publishing UNSIGNED: no --signing-key (or $HNFORGE_SIGNING_KEY); nodes refuse unsigned versions unless told otherwise`);

  const lock = await opts.store.lock(ref.profile, opts.lockWaitMs);
  const scratch = join(dirname(opts.image), `.${names.artifact}.partial-${process.pid}`);
  try {
    await removeStaleScratch(dirname(opts.image), names.artifact);
    const channel = await readChannel(opts.store, ref, { keyring, allowUnsigned: !opts.signingKey });
    if (channel.signed && !opts.signingKey) {
      throw new HnError('EUNSIGNED', `${opts.store.url} ${ref.profile}/${ref.channel} is signed; publishing without --signing-key would drop its signature`);
    }
    await refuseElsewhere(opts.store, ref, version);
    const listed = channel.sums.get(names.manifest);
    if (listed) {
      const stored = parseManifest(await readStored(opts.store, ref, { name: names.manifest, sha256: listed, size: 0 }), `${names.manifest} in ${ref.channel}`);
      if (report.sha256 && stored.image.sha256 === report.sha256) {
        say(`${version} is already in ${ref.profile}/${ref.channel} with this image; nothing to do`);
        return result(opts, ref, version, channel, true, stored.image, started);
      }
      if (report.sha256) throw exists(opts.store, ref, version);
    }

    const knownSha256 = await buildSha256(opts.image, report);
    say(`compressing ${opts.image} (version ${version}; ${knownSha256 ? "its sha256 is the build's: the file is unchanged since" : 'hashing it on the way'})`);
    const compressed = await compressImage(opts.image, scratch, { progress: opts.progress, signal: opts.signal, knownSha256 });
    if (report.sha256 && report.sha256 !== compressed.image.sha256) {
      throw new HnError('EVERIFY', `${opts.image} changed since it was built (sha256 ${compressed.image.sha256}, report says ${report.sha256}); rebuild it`);
    }
    if (listed) throw exists(opts.store, ref, version); // listed, and the report had no sha256 to prove it the same

    const previous = channel.versions.find((v) => v !== version);
    const manifest = buildManifest(report, version, ref.channel, compressed, (opts.now ?? (() => new Date()))());
    const reportText = summarise(report) + '\n' + (await changesSince(opts.store, ref, channel, previous, manifest));
    const uploads = [
      upload(names.artifact, { path: scratch, disposable: true }, compressed.artifact),
      inMemory(names.manifest, manifestBytes(manifest)),
      inMemory(names.report, Buffer.from(reportText)),
    ];
    // Files of this version that no index lists were left by a publish that died before its
    // index was written: no reader can have taken them, and they would block this upload.
    await opts.store.removeFiles(ref, version, uploads, true);
    say(`uploading ${uploads.map((u) => u.name).join(', ')} to ${opts.store.url}`);
    const put = await opts.store.putFiles(ref, version, uploads);
    say('reading the upload back');
    // A file the store linked is the scratch file whose bytes the pass already read back and hashed.
    for (const f of uploads) if (!put.linked.includes(f.name)) await checkStored(opts.store, ref, f);

    let sums: Map<string, string> = channel.sums;
    for (const f of uploads) sums = withEntry(sums, f.name, f.sha256);
    await writeSignedIndex(opts.store, ref, sums, opts.signingKey);
    say(`${ref.profile}/${ref.channel} now lists ${version}${opts.signingKey ? ' (signed)' : ' (unsigned)'}`);
    const signedBy = publicKey?.fingerprints[0];
    return {
      ...result(opts, ref, version, { ...channel, sums, signedBy }, false, { sha256: compressed.image.sha256, apparentBytes: compressed.image.bytes }, started),
      previous, files: uploads.map(({ name, sha256, size }) => ({ name, sha256, size })),
    };
  } finally {
    await rm(scratch, { force: true }).catch(() => undefined);
    await lock.release();
  }
}

function result(opts: PublishOptions, ref: ChannelRef, version: string, channel: Channel, already: boolean, image: { sha256: string; apparentBytes: number }, started: number): PublishResult {
  const files = Object.values(versionFiles(version)).map((name) => ({ name, sha256: channel.sums.get(name) ?? '', size: 0 }));
  return {
    store: opts.store.url, profile: ref.profile, channel: ref.channel, version, alreadyPublished: already, signedBy: channel.signedBy,
    files, image: { sha256: image.sha256, bytes: image.apparentBytes }, seconds: (Date.now() - started) / 1000,
  };
}

/** The build's sha256 of the image, while the file is provably the one it was computed for. */
async function buildSha256(image: string, report: BuildReport): Promise<string | undefined> {
  if (!report.sha256 || !report.imageIdentity) return undefined;
  const now = await fileIdentity(image);
  const then = report.imageIdentity;
  const same = (Object.keys(then) as (keyof FileIdentity)[]).every((k) => then[k] === now[k]);
  return same ? report.sha256 : undefined;
}

const exists = (store: Store, ref: ChannelRef, version: string) =>
  new HnError('EPUBLISH_EXISTS', `${store.url} ${ref.profile}/${ref.channel} already holds version ${version} with another image; published versions are immutable: rebuild (a new version is chosen) or pass --version to the build`);

/** A version belongs to one channel; other channels get it by promote, which keeps its digest. */
async function refuseElsewhere(store: Store, ref: ChannelRef, version: string) {
  for (const other of await store.channels(ref.profile)) {
    if (other === ref.channel) continue;
    // Only whether it lists the version matters here, not who signed it.
    const channel = await readChannel(store, { profile: ref.profile, channel: other }, { allowUnsigned: true });
    if (channel.sums.has(versionFiles(version).manifest)) {
      throw new HnError('EPUBLISH_EXISTS', `version ${version} of ${ref.profile} is already published in channel ${other}; use hnforge promote ${version} --channel ${ref.channel} to add it here`);
    }
  }
}

/** The report's "what changed" section: against the channel's previous head. */
async function changesSince(store: Store, ref: ChannelRef, channel: Channel, previous: string | undefined, manifest: ReturnType<typeof buildManifest>): Promise<string> {
  if (!previous) return `first version in ${ref.profile}/${ref.channel}\n`;
  const name = versionFiles(previous).manifest;
  const before = parseManifest(await readStored(store, ref, { name, sha256: channel.sums.get(name)!, size: 0 }), `${name} in ${ref.channel}`);
  return formatDiff(diffManifests(before, manifest));
}

/** A stored file's bytes, checked against the sha256 the caller trusts. Small files only (manifests, reports). */
export async function readStored(store: Store, ref: ChannelRef, file: StoredFile): Promise<Buffer> {
  const { bytes, sha256: got } = await hashStored(store, ref, file, true);
  if (got !== file.sha256) throw mismatch(store, ref, file.name, got, file.sha256);
  return bytes!;
}

function mismatch(store: Store, ref: ChannelRef, name: string, got: string, want: string) {
  return new HnError('EVERIFY', `${store.url} ${ref.profile}/${ref.channel}/${name}: sha256 ${got}, but ${INDEX_FILES.sums} says ${want} (tampered, truncated or incomplete)`);
}

/** Streams a stored file through sha256 (nothing kept) and checks it against the sha256 the caller trusts. */
export async function checkStored(store: Store, ref: ChannelRef, file: StoredFile): Promise<{ sha256: string; size: number }> {
  const got = await hashStored(store, ref, file);
  if (got.sha256 !== file.sha256) throw mismatch(store, ref, file.name, got.sha256, file.sha256);
  return got;
}

/** Streams a stored file through sha256; `keep` also returns its bytes. */
export async function hashStored(store: Store, ref: ChannelRef, file: StoredFile, keep = false): Promise<{ sha256: string; bytes?: Buffer; size: number }> {
  const hash = sha256();
  const pieces: Buffer[] = [];
  for await (const piece of await store.readFile(ref, file)) {
    hash.update(piece as Buffer);
    if (keep) pieces.push(piece as Buffer);
  }
  return { sha256: hash.hex(), bytes: keep ? Buffer.concat(pieces) : undefined, size: hash.bytes };
}

/** SHA256SUMS, then its signature (or none when unsigned): the order readers rely on. */
export async function writeSignedIndex(store: Store, ref: ChannelRef, sums: ReadonlyMap<string, string>, key: SigningKey | undefined) {
  const text = Buffer.from(formatSums(sums));
  const signature = key ? await signDetached(text, key.armored, { passphrase: key.passphrase }) : undefined;
  await store.writeIndex(ref, text, signature);
}

function upload(name: string, source: Upload['source'], digest: { bytes: number; sha256: string }): Upload {
  return { name, source, sha256: digest.sha256, size: digest.bytes };
}

function inMemory(name: string, bytes: Uint8Array): Upload {
  const h = sha256();
  h.update(bytes);
  return { name, source: { bytes }, sha256: h.hex(), size: bytes.length };
}

/** Scratch artifacts of publishes killed on this host (pid gone). */
async function removeStaleScratch(dir: string, artifact: string) {
  const prefix = `.${artifact}.partial-`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (pid && pid !== process.pid && !processAlive(pid)) await rm(join(dir, name), { force: true });
  }
}
