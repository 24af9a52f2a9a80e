// `hnforge verify`: is what a node would take from a channel what was
// published? Signature of SHA256SUMS, the sha256 of every file it lists for
// the version, the manifest's agreement with both, and (unless --quick) the
// artifact decompressed back to the raw image's sha256 and size.

import { once } from 'node:events';
import { HnError } from '../errors.ts';
import { entry } from '../seam/catalogue.ts';
import type { Command } from '../seam/command.ts';
import { startPiped } from '../seam/run.ts';
import { listedFiles, readChannel, type Trust } from './channel.ts';
import { parseManifest } from './manifest.ts';
import type { Manifest } from './manifest-types.ts';
import { checkStored, readStored } from './publish.ts';
import { versionFiles, type ChannelRef, type Store } from './store.ts';
import { sha256 } from './sums.ts';

/** Decompresses to stdout; `zstd -d` on a node does the same into a sparse file. */
export const zstdDecompress = entry('zstd', (): Command => ({ file: 'zstd', args: ['-d', '-q', '-c'], timeoutMs: 60 * 60_000 }));

export interface VerifyOptions {
  store: Store;
  ref: ChannelRef;
  /** A version, or the channel's head when undefined. */
  version?: string;
  trust: Trust;
  /** Skip decompressing the artifact (signature, checksums and manifest only). */
  quick?: boolean;
  say?: (line: string) => void;
}

export interface VerifyResult {
  store: string;
  profile: string;
  channel: string;
  version: string;
  signedBy?: string;
  files: { name: string; sha256: string; bytes: number }[];
  image: { sha256: string; bytes: number; checked: boolean };
}

export async function verifyVersion(opts: VerifyOptions): Promise<VerifyResult> {
  const say = opts.say ?? (() => undefined);
  const { store, ref } = opts;
  const channel = await readChannel(store, ref, opts.trust);
  if (!channel.exists) throw new HnError('EPUBLISH_MISSING', `${store.url} has no channel ${ref.profile}/${ref.channel}`);
  if (!channel.signedBy) say(`${ref.profile}/${ref.channel}: signature NOT checked (${channel.signed ? 'no keyring given' : 'unsigned'})`);
  const version = opts.version ?? channel.versions[0];
  if (!version) throw new HnError('EPUBLISH_MISSING', `${store.url} ${ref.profile}/${ref.channel} lists no complete version`);
  const files = listedFiles(channel, version);
  const names = versionFiles(version);

  const checked: VerifyResult['files'] = [];
  let manifest: Manifest | undefined;
  for (const file of files) {
    say(`checking ${file.name}`);
    if (file.name === names.manifest) {
      const bytes = await readStored(store, ref, file);
      manifest = parseManifest(bytes, `${store.url} ${ref.profile}/${ref.channel}/${file.name}`);
      checked.push({ name: file.name, sha256: file.sha256, bytes: bytes.length });
      continue;
    }
    const got = await checkStored(store, ref, file);
    checked.push({ name: file.name, sha256: got.sha256, bytes: got.size });
  }
  const where = `${store.url} ${ref.profile}/${ref.channel}/${names.manifest}`;
  if (manifest!.version !== version) throw new HnError('EVERIFY', `${where} describes version ${manifest!.version}, not ${version}`);
  if (manifest!.artifact.sha256 !== channel.sums.get(names.artifact)) {
    throw new HnError('EVERIFY', `${where} gives the artifact sha256 ${manifest!.artifact.sha256}, SHA256SUMS ${channel.sums.get(names.artifact)}`);
  }
  const artifactBytes = checked.find((f) => f.name === names.artifact)!.bytes;
  if (manifest!.artifact.bytes !== artifactBytes) throw new HnError('EVERIFY', `${where} gives the artifact ${manifest!.artifact.bytes} bytes, the store holds ${artifactBytes}`);

  if (!opts.quick) {
    say(`decompressing ${names.artifact} to check the image's sha256`);
    const image = await rawDigest(store, ref, files.find((f) => f.name === names.artifact)!);
    if (image.sha256 !== manifest!.image.sha256 || image.bytes !== manifest!.image.apparentBytes) {
      throw new HnError('EVERIFY', `${names.artifact} decompresses to ${image.bytes} bytes with sha256 ${image.sha256}; the manifest says ${manifest!.image.apparentBytes} bytes, ${manifest!.image.sha256}`);
    }
  }
  return {
    store: store.url, profile: ref.profile, channel: ref.channel, version, signedBy: channel.signedBy, files: checked,
    image: { sha256: manifest!.image.sha256, bytes: manifest!.image.apparentBytes, checked: !opts.quick },
  };
}

/** sha256 and size of what the artifact decompresses to, streamed (nothing written to disk). */
async function rawDigest(store: Store, ref: ChannelRef, file: { name: string; sha256: string; size: number }) {
  const zstd = startPiped(zstdDecompress());
  const hash = sha256();
  const hashing = (async () => {
    for await (const piece of zstd.stdout) hash.update(piece as Buffer);
  })();
  try {
    for await (const piece of await store.readFile(ref, file)) {
      if (!zstd.stdin.write(piece)) await Promise.race([once(zstd.stdin, 'drain'), zstd.finished]);
    }
    zstd.stdin.end();
    await Promise.all([hashing, zstd.finished]);
  } catch (e) {
    zstd.stdin.destroy();
    await zstd.finished.catch(() => undefined);
    if (e instanceof HnError && e.code !== 'EVERIFY' && /zstd/.test(e.message)) {
      throw new HnError('EVERIFY', `${file.name} does not decompress: ${e.message}`, { cause: e });
    }
    throw e;
  }
  return { sha256: hash.hex(), bytes: hash.bytes };
}
