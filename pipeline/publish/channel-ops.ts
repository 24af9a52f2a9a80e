// Commands that change which versions a channel lists without building:
// promote (a version of one channel into another, same digest, no upload of
// the payload where the store can copy or share it) and prune (old versions
// out). Both write the new signed index before touching payload files, so a
// reader never finds a listed file missing; and neither ever drops the
// version a channel points to (its newest complete version).

import { HnError } from '../errors.ts';
import { listedFiles, readChannel, type Channel, type Trust } from './channel.ts';
import { parseManifest } from './manifest.ts';
import { readStored, writeSignedIndex } from './publish.ts';
import type { SigningKey } from './signing-key.ts';
import { versionFiles, type ChannelRef, type Store } from './store.ts';
import { withEntry, withoutEntries } from './sums.ts';

interface ChangeOptions {
  store: Store;
  profile: string;
  signingKey?: SigningKey;
  trust: Trust;
  lockWaitMs: number;
  say?: (line: string) => void;
}

/** A channel about to be rewritten: refused when signed and no key can re-sign it. */
function assertWritable(opts: ChangeOptions, channel: Channel): Channel {
  if (channel.signed && !opts.signingKey) {
    throw new HnError('EUNSIGNED', `${opts.store.url} ${opts.profile}/${channel.ref.channel} is signed; rewriting its SHA256SUMS needs --signing-key (or $HNFORGE_SIGNING_KEY)`);
  }
  return channel;
}

export interface PromoteResult {
  store: string;
  profile: string;
  version: string;
  from: string;
  to: string;
  alreadyThere: boolean;
}

/** Adds `version` (found in `from`, or the only channel listing it) to channel `to`. */
export async function promote(opts: ChangeOptions & { version: string; from?: string; to: string }): Promise<PromoteResult> {
  const { store, profile, version } = opts;
  const lock = await store.lock(profile, opts.lockWaitMs);
  try {
    const source = await sourceChannel(opts);
    const files = listedFiles(source, version);
    // The manifest read back through its listed sha256: a promote never spreads a damaged version.
    const manifestFile = files.find((f) => f.name === versionFiles(version).manifest)!;
    parseManifest(await readStored(store, source.ref, manifestFile), `${manifestFile.name} in ${source.ref.channel}`);
    const target = assertWritable(opts, await readChannel(store, { profile, channel: opts.to }, opts.trust));
    const base = { store: store.url, profile, version, from: source.ref.channel, to: opts.to };
    if (files.every((f) => target.sums.get(f.name) === f.sha256)) return { ...base, alreadyThere: true };
    const to: ChannelRef = { profile, channel: opts.to };
    opts.say?.(`copying ${version} from ${source.ref.channel} to ${opts.to}`);
    await store.copyFiles(source.ref, to, version, files);
    let sums: Map<string, string> = target.sums;
    for (const f of files) sums = withEntry(sums, f.name, f.sha256);
    await writeSignedIndex(store, to, sums, opts.signingKey);
    return { ...base, alreadyThere: false };
  } finally {
    await lock.release();
  }
}

async function sourceChannel(opts: ChangeOptions & { version: string; from?: string; to: string }): Promise<Channel> {
  const { store, profile, version } = opts;
  if (opts.from) return readChannel(store, { profile, channel: opts.from }, opts.trust);
  const holders: Channel[] = [];
  for (const name of await store.channels(profile)) {
    if (name === opts.to) continue;
    const channel = await readChannel(store, { profile, channel: name }, opts.trust);
    if (channel.versions.includes(version)) holders.push(channel);
  }
  if (!holders.length) throw new HnError('EPUBLISH_MISSING', `no channel of ${profile} in ${store.url} lists version ${version} (hnforge versions --store ${store.url})`);
  return holders[0]!;
}

export interface PruneResult {
  store: string;
  profile: string;
  channel: string;
  kept: string[];
  removed: string[];
}

/**
 * Keeps the newest `keep` versions of every channel of the profile; with
 * `olderThanDays`, only versions published longer ago than that go. The
 * channel's head is never removed, nor a version some other channel lists
 * (its payload stays, only this channel's listing goes).
 */
export async function prune(opts: ChangeOptions & { keep: number; olderThanDays?: number; channel?: string; dryRun?: boolean; now?: Date }): Promise<PruneResult[]> {
  if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new HnError('EUSAGE', `--keep ${opts.keep}: keep at least 1 version (the one the channel points to)`);
  const { store, profile } = opts;
  const lock = opts.dryRun ? undefined : await store.lock(profile, opts.lockWaitMs);
  try {
    const names = opts.channel ? [opts.channel] : await store.channels(profile);
    const channels = await Promise.all(names.map((c) => readChannel(store, { profile, channel: c }, opts.trust)));
    const results: PruneResult[] = [];
    for (const channel of channels) {
      if (!channel.exists) throw new HnError('EPUBLISH_MISSING', `${store.url} has no channel ${profile}/${channel.ref.channel}`);
      const candidates = channel.versions.slice(opts.keep);
      const removed: string[] = [];
      for (const version of candidates) {
        if (opts.olderThanDays !== undefined && !(await olderThan(store, channel, version, opts.olderThanDays, opts.now ?? new Date()))) continue;
        removed.push(version);
      }
      results.push({ store: store.url, profile, channel: channel.ref.channel, kept: channel.versions.filter((v) => !removed.includes(v)), removed });
      if (!removed.length || opts.dryRun) continue;
      assertWritable(opts, channel);
      const files = removed.flatMap((v) => listedFiles(channel, v));
      await writeSignedIndex(store, channel.ref, withoutEntries(channel.sums, files.map((f) => f.name)), opts.signingKey);
      for (const version of removed) {
        const elsewhere = channels.some((c) => c !== channel && c.versions.includes(version));
        await store.removeFiles(channel.ref, version, listedFiles(channel, version), !elsewhere);
        opts.say?.(`${profile}/${channel.ref.channel}: removed ${version}`);
      }
    }
    return results;
  } finally {
    await lock?.release();
  }
}

async function olderThan(store: Store, channel: Channel, version: string, days: number, now: Date): Promise<boolean> {
  const file = listedFiles(channel, version).find((f) => f.name === versionFiles(version).manifest)!;
  const manifest = parseManifest(await readStored(store, channel.ref, file), `${file.name} in ${channel.ref.channel}`);
  return now.getTime() - Date.parse(manifest.publishedAt) > days * 86_400_000;
}

export interface VersionListing {
  profile: string;
  channel: string;
  signed: boolean;
  signedBy?: string;
  head?: string;
  versions: { version: string; publishedAt?: string; artifactBytes?: number; imageSha256?: string }[];
}

/** Every channel of every profile (or one profile) with its versions, newest first; manifests read for dates and sizes. */
export async function listVersions(store: Store, trust: Trust, profile?: string): Promise<VersionListing[]> {
  const out: VersionListing[] = [];
  for (const p of profile ? [profile] : await store.profiles()) {
    for (const c of await store.channels(p)) {
      const channel = await readChannel(store, { profile: p, channel: c }, trust);
      const versions: VersionListing['versions'] = [];
      for (const version of channel.versions) {
        const file = listedFiles(channel, version).find((f) => f.name === versionFiles(version).manifest)!;
        const m = parseManifest(await readStored(store, channel.ref, file), `${file.name} in ${c}`);
        versions.push({ version, publishedAt: m.publishedAt, artifactBytes: m.artifact.bytes, imageSha256: m.image.sha256 });
      }
      out.push({ profile: p, channel: c, signed: channel.signed, signedBy: channel.signedBy, head: channel.versions[0], versions });
    }
  }
  return out;
}
