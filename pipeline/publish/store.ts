// The one small interface every artifact store implements (file:, s3:, oci:).
//
// A store holds, per profile and channel, the layout systemd-sysupdate and
// mkosi use: a directory of payload files, a `SHA256SUMS` listing them
// (`<hex> *<file>`) and its detached signature `SHA256SUMS.gpg`:
//
//   <store>/<profile>/<channel>/SHA256SUMS
//   <store>/<profile>/<channel>/SHA256SUMS.gpg
//   <store>/<profile>/<channel>/hn-root_<version>.img.zst
//   <store>/<profile>/<channel>/hn-root_<version>.json         the manifest
//   <store>/<profile>/<channel>/hn-root_<version>.report.txt   the build report
//
// The channel's index (SHA256SUMS + signature) is the channel: a version is
// in a channel when its files are listed there, and its newest listed version
// is the channel's head. Everything above this interface (versions, ordering
// of writes, signing, verification, promote, prune) is common code in
// pipeline/publish/; a store only moves bytes. The tests run one suite
// against every store (test/publish/store-contract.ts).

import type { Readable } from 'node:stream';

export interface ChannelRef {
  profile: string;
  channel: string;
}

/** A payload file as listed in SHA256SUMS. */
export interface StoredFile {
  /** File name, no directory (e.g. hn-root_20261202.1.img.zst). */
  name: string;
  /** 64 lowercase hex digits. */
  sha256: string;
  size: number;
}

/** A payload file to upload: a file on disk or bytes in memory, with its sha256 computed by the caller. */
export interface Upload extends StoredFile {
  /**
   * `disposable`: the caller removes the file afterwards and no longer changes it, so a store
   * on the same filesystem may take the file itself (a hard link) instead of a copy.
   */
  source: { path: string; disposable?: boolean } | { bytes: Uint8Array };
}

export interface PutResult {
  /**
   * Files the store took as the caller's own (disposable) file, by hard link: the stored bytes
   * are the very blocks the caller wrote and hashed, so reading them back checks nothing more.
   */
  linked: string[];
}

export interface ChannelIndex {
  /** SHA256SUMS as stored; undefined when the channel does not exist. */
  sums?: Uint8Array;
  /** SHA256SUMS.gpg as stored; undefined when the channel is unsigned or does not exist. */
  signature?: Uint8Array;
}

/** Held while a publish, promote or prune changes a profile's channels. */
export interface StoreLock {
  release(): Promise<void>;
}

export interface Store {
  /** The store's URL without credentials, for messages. */
  readonly url: string;

  /** Profiles with at least one channel, sorted. */
  profiles(): Promise<string[]>;
  /** The channels of a profile, sorted; [] for an unknown profile. */
  channels(profile: string): Promise<string[]>;

  /** The channel's index as stored (read fresh: no cache). */
  readIndex(ref: ChannelRef): Promise<ChannelIndex>;
  /**
   * Replaces the channel's index: SHA256SUMS first, then SHA256SUMS.gpg (removed
   * when `signature` is undefined). Each object is replaced whole (rename,
   * single PUT, one manifest): a reader sees the old or the new file, never a mix
   * within one file; across the pair it may see a new SHA256SUMS with the old
   * signature for a moment, which is why readers retry a mismatch once.
   */
  writeIndex(ref: ChannelRef, sums: Uint8Array, signature: Uint8Array | undefined): Promise<void>;

  /**
   * Stores a version's payload files in a channel. A file appears under its final
   * name only when complete. A file that already exists with the same sha256 is
   * left as it is; with another sha256 it is an error (EPUBLISH_EXISTS): published
   * files are immutable.
   */
  putFiles(ref: ChannelRef, version: string, files: Upload[]): Promise<PutResult>;
  /**
   * Makes files stored in one channel also part of another channel of the same
   * profile without uploading them again (promote): a hard link or copy in a
   * directory, a server-side copy in S3, nothing in OCI (blobs are per repository).
   */
  copyFiles(from: ChannelRef, to: ChannelRef, version: string, files: StoredFile[]): Promise<void>;
  /** Streams a stored file (verify, diff); EPUBLISH_MISSING when absent. */
  readFile(ref: ChannelRef, file: StoredFile): Promise<Readable>;
  /**
   * Removes a version's files from a channel (prune, after the index no longer
   * lists them). `lastReference` says no other channel lists the version, so a
   * store sharing content between channels (OCI) may delete it. Absent files are fine.
   */
  removeFiles(ref: ChannelRef, version: string, files: StoredFile[], lastReference: boolean): Promise<void>;

  /**
   * Takes the profile's publish lock, waiting up to `waitMs` for another holder;
   * then EPUBLISH_BUSY naming the holder. A lock left by a dead process on this
   * host is taken over.
   */
  lock(profile: string, waitMs: number): Promise<StoreLock>;

  /** Frees connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** File names of the channel index, as systemd-sysupdate and mkosi name them. */
export const INDEX_FILES = { sums: 'SHA256SUMS', signature: 'SHA256SUMS.gpg' } as const;

/** Names of a version's payload files. One home: stores, nodes and tests derive them from here. */
export function versionFiles(version: string) {
  return {
    artifact: `hn-root_${version}.img.zst`,
    manifest: `hn-root_${version}.json`,
    report: `hn-root_${version}.report.txt`,
  } as const;
}

/** The version a payload file name belongs to, or undefined for other files. */
export function versionOfFile(name: string): string | undefined {
  return /^hn-root_(.+?)\.(?:img\.zst|json|report\.txt)$/.exec(name)?.[1];
}

/** Profile and channel names become path segments, S3 keys and OCI tags: keep them to a safe alphabet. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
