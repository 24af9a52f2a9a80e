// Reading a channel the way every command must: its SHA256SUMS trusted only
// after its signature verifies (retried once, since SHA256SUMS and its .gpg
// are replaced one after the other and a reader may catch the pair mid-way),
// or refused as unsigned unless unsigned channels were allowed.

import { setTimeout as sleep } from 'node:timers/promises';
import { HnError } from '../errors.ts';
import { verifyDetached } from './signing.ts';
import { INDEX_FILES, versionFiles, versionOfFile, type ChannelRef, type Store, type StoredFile } from './store.ts';
import { parseSums } from './sums.ts';
import { newestFirst } from './version.ts';

export interface Trust {
  /** Public keys that may sign the channel (binary keyring or armored). */
  keyring?: Uint8Array;
  /** Accept a channel without a signature (and a signed one without a keyring to check it). */
  allowUnsigned: boolean;
}

export interface Channel {
  ref: ChannelRef;
  exists: boolean;
  sums: Map<string, string>;
  /** Fingerprint of the key whose signature verified; undefined when unsigned or not checked. */
  signedBy?: string;
  /** The stored file has a signature (checked or not). */
  signed: boolean;
  /** Versions with all their files listed, newest first. */
  versions: string[];
}

const RETRY_AFTER_MS = 1000;

export async function readChannel(store: Store, ref: ChannelRef, trust: Trust): Promise<Channel> {
  try {
    return await readOnce(store, ref, trust);
  } catch (e) {
    if (!(e instanceof HnError) || e.code !== 'ESIGN_BAD') throw e;
    // A publisher may have replaced SHA256SUMS and not yet its signature: look once more.
    await sleep(RETRY_AFTER_MS);
    return readOnce(store, ref, trust);
  }
}

async function readOnce(store: Store, ref: ChannelRef, trust: Trust): Promise<Channel> {
  const where = `${store.url} ${ref.profile}/${ref.channel}`;
  const index = await store.readIndex(ref);
  if (!index.sums) return { ref, exists: false, sums: new Map(), signed: false, versions: [] };
  let signedBy: string | undefined;
  if (index.signature && trust.keyring) {
    try {
      signedBy = (await verifyDetached(index.sums, index.signature, trust.keyring)).fingerprint;
    } catch (e) {
      if (e instanceof HnError) throw new HnError(e.code, `${where}: ${INDEX_FILES.signature}: ${e.message}`, { cause: e });
      throw e;
    }
  } else if (index.signature && !trust.allowUnsigned) {
    throw new HnError('EUSAGE', `${where} is signed but no keyring was given to check it; pass --keyring FILE (signing-key.pub.gpg) or set $HNFORGE_KEYRING`);
  } else if (!index.signature && !trust.allowUnsigned) {
    throw new HnError('EUNSIGNED', `${where} is not signed (no ${INDEX_FILES.signature}); publish with --signing-key, or pass --allow-unsigned to accept it`);
  }
  const sums = parseSums(Buffer.from(index.sums).toString('utf8'), `${where} ${INDEX_FILES.sums}`);
  return { ref, exists: true, sums, signedBy, signed: !!index.signature, versions: completeVersions(sums) };
}

/** Versions whose three files are all listed, newest first. */
export function completeVersions(sums: ReadonlyMap<string, string>): string[] {
  const seen = new Set<string>();
  for (const name of sums.keys()) {
    const v = versionOfFile(name);
    if (v !== undefined) seen.add(v);
  }
  return newestFirst([...seen].filter((v) => Object.values(versionFiles(v)).every((f) => sums.has(f))));
}

/** The listed files of a version (sizes unknown to SHA256SUMS: 0). */
export function listedFiles(channel: Channel, version: string): StoredFile[] {
  const names = Object.values(versionFiles(version));
  const missing = names.filter((n) => !channel.sums.has(n));
  if (missing.length === names.length) {
    throw new HnError('EPUBLISH_MISSING', `version ${version} is not in channel ${channel.ref.profile}/${channel.ref.channel} (it has: ${channel.versions.join(', ') || 'no versions'})`);
  }
  if (missing.length) throw new HnError('EVERIFY', `channel ${channel.ref.profile}/${channel.ref.channel} lists version ${version} without ${missing.join(', ')}`);
  return names.map((name) => ({ name, sha256: channel.sums.get(name)!, size: 0 }));
}
