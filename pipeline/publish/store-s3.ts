// The S3 store (`s3://bucket[/prefix]`): the layout of pipeline/publish/store.ts
// as objects under `<prefix>/<profile>/<channel>/`, on AWS or any S3-compatible
// server (HNFORGE_S3_ENDPOINT).
//
// S3 gives what the directory store builds from rename and link: a PUT, a
// completed multipart upload and a server-side copy make an object appear whole
// or not at all. Payload objects carry their sha256 as metadata, so "is the same
// file already there?" is a HEAD, not a download. Creating an object only if it
// is absent is the conditional write `If-None-Match: *`; servers that ignore the
// condition (older gateways, the test server) are covered by checking first and,
// for the lock, by reading back who holds it.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload as MultipartUpload } from '@aws-sdk/lib-storage';
import { HnError } from '../errors.ts';
import { parseS3Url, s3Settings, type S3Location, type S3Settings } from './s3-config.ts';
import { LOCK_NAME, LOCK_POLL_MS, describeHolder, isStale, parseHolder, thisHolder, type LockHolder } from './store-lock.ts';
import { INDEX_FILES, NAME_PATTERN, type ChannelIndex, type ChannelRef, type Store, type PutResult, type StoreLock, type StoredFile, type Upload } from './store.ts';

const MiB = 1 << 20;

export interface S3StoreOptions {
  /** Files larger than this go up as a multipart upload (parts retried one by one); smaller ones as one PUT. */
  multipartThreshold?: number;
  /** Size of one multipart part; S3 requires at least 5 MiB (except the last part). */
  partSize?: number;
  /** Parts in flight at once (memory: partSize x queueSize). */
  queueSize?: number;
  /** Attempts per request, including the first, before a failure is reported (SDK backoff in between). */
  maxAttempts?: number;
  /** How long to wait for a TCP connection. */
  connectTimeoutMs?: number;
  /** How long a connection may sit without traffic before the request is given up (and retried). */
  idleTimeoutMs?: number;
  /** Pause between looks at a held lock. */
  lockPollMs?: number;
  /** Where the endpoint and region come from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

export const MULTIPART_THRESHOLD = 64 * MiB;
const PART_SIZE = 16 * MiB;
const MIN_PART_SIZE = 5 * MiB;
/** The largest object one CopyObject may copy; larger ones would need UploadPartCopy. */
const MAX_COPY_SIZE = 5 * 1024 * MiB;
/** How long a locker waits before reading its lock back, so that a racing writer on a server ignoring If-None-Match has written by then. */
const LOCK_SETTLE_MS = 150;

export async function openS3Store(url: string, options: S3StoreOptions = {}): Promise<Store> {
  return new S3Store(parseS3Url(url), s3Settings(options.env ?? process.env), options);
}

interface ObjectInfo {
  size: number;
  /** From the object's metadata; undefined for objects not written by hnforge. */
  sha256?: string;
}

export class S3Store implements Store {
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly threshold: number;
  private readonly partSize: number;
  /** Cleared when the server answers a conditional PUT with 501: then we only check before writing. */
  private conditionalPuts = true;

  constructor(
    readonly location: S3Location,
    settings: S3Settings,
    private readonly options: S3StoreOptions = {},
  ) {
    this.url = location.url;
    this.bucket = location.bucket;
    this.partSize = Math.max(MIN_PART_SIZE, options.partSize ?? PART_SIZE);
    this.threshold = options.multipartThreshold ?? MULTIPART_THRESHOLD;
    this.client = new S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.forcePathStyle,
      maxAttempts: options.maxAttempts ?? 5,
      requestHandler: { connectionTimeout: options.connectTimeoutMs ?? 10_000, socketTimeout: options.idleTimeoutMs ?? 60_000 },
    });
  }

  private key(...parts: string[]): string {
    return [this.location.prefix, ...parts].filter((p) => p !== '').join('/');
  }

  private channelKey(ref: ChannelRef, name: string): string {
    return this.key(ref.profile, ref.channel, name);
  }

  async profiles(): Promise<string[]> {
    const found = new Set<string>();
    for (const [profile] of await this.channelIndexes(this.key())) found.add(profile);
    return [...found].sort();
  }

  async channels(profile: string): Promise<string[]> {
    const found = new Set<string>();
    for (const [p, channel] of await this.channelIndexes(this.key(profile))) if (p === profile) found.add(channel);
    return [...found].sort();
  }

  /**
   * [profile, channel] of every SHA256SUMS under `base`: a channel exists once its index does.
   * One plain listing (1000 keys a page) rather than Delimiter '/' listings: s3rver finds
   * common prefixes only one level deep, and a listing of a store's few thousand keys costs
   * less than a HEAD per channel would.
   */
  private async channelIndexes(base: string): Promise<[string, string][]> {
    const root = this.key();
    const rootPrefix = root ? `${root}/` : '';
    const prefix = base ? `${base}/` : '';
    const found: [string, string][] = [];
    let token: string | undefined;
    do {
      const page = await this.call('list', prefix || '/', () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) })),
      );
      for (const object of page.Contents ?? []) {
        const parts = (object.Key ?? '').slice(rootPrefix.length).split('/');
        const [profile, channel, name] = parts;
        if (parts.length === 3 && name === INDEX_FILES.sums && NAME_PATTERN.test(profile!) && NAME_PATTERN.test(channel!)) found.push([profile!, channel!]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  async readIndex(ref: ChannelRef): Promise<ChannelIndex> {
    const sums = await this.getBytes(this.channelKey(ref, INDEX_FILES.sums));
    const signature = await this.getBytes(this.channelKey(ref, INDEX_FILES.signature));
    return { ...(sums ? { sums } : {}), ...(signature ? { signature } : {}) };
  }

  async writeIndex(ref: ChannelRef, sums: Uint8Array, signature: Uint8Array | undefined): Promise<void> {
    // Replacing is the point here: plain PUTs, each atomic on its own.
    await this.putObject(this.channelKey(ref, INDEX_FILES.sums), sums, {});
    const sigKey = this.channelKey(ref, INDEX_FILES.signature);
    if (signature) await this.putObject(sigKey, signature, {});
    else await this.deleteObject(sigKey);
  }

  async putFiles(ref: ChannelRef, _version: string, files: Upload[]): Promise<PutResult> {
    for (const file of files) {
      const key = this.channelKey(ref, file.name);
      if (await this.sameObjectThere(key, file)) continue;
      try {
        if (file.size > this.threshold) await this.multipartUpload(key, file);
        else await this.putObject(key, await this.smallBody(file), { sha256: file.sha256, exclusive: true });
      } catch (e) {
        // A concurrent writer created the key between our HEAD and our PUT: fine if it is the same file.
        if (isPreconditionFailed(e) && (await this.sameObjectThere(key, file))) continue;
        throw this.explain(e, 'upload', key);
      }
    }
    return { linked: [] };
  }

  async copyFiles(from: ChannelRef, to: ChannelRef, _version: string, files: StoredFile[]): Promise<void> {
    for (const file of files) {
      const source = this.channelKey(from, file.name);
      const target = this.channelKey(to, file.name);
      const there = await this.head(source);
      if (!there) throw new HnError('EPUBLISH_MISSING', `${this.url}: ${from.profile}/${from.channel}/${file.name} is missing`);
      if (there.sha256 && there.sha256 !== file.sha256) {
        throw new HnError('EVERIFY', `${this.url}: ${source} has sha256 ${there.sha256}, not ${file.sha256} as listed; run hnforge verify on ${from.profile}/${from.channel}`);
      }
      if (await this.sameObjectThere(target, file)) continue;
      if (file.size > MAX_COPY_SIZE) {
        throw new HnError('ESTORE', `${this.url}: ${source} is larger than 5 GiB, which one server-side copy cannot take; publish the version to ${to.channel} directly`);
      }
      await this.call('copy', target, () =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: target,
            CopySource: `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
            // Set the sha256 explicitly: the source may lack it (written by another tool), and the copy
            // must answer later HEADs without a download.
            MetadataDirective: 'REPLACE',
            Metadata: { sha256: file.sha256 },
          }),
        ),
      );
    }
  }

  async readFile(ref: ChannelRef, file: StoredFile): Promise<Readable> {
    const key = this.channelKey(ref, file.name);
    const body = await this.getStream(key);
    if (!body) throw new HnError('EPUBLISH_MISSING', `${this.url}: ${ref.profile}/${ref.channel}/${file.name} is missing`);
    return body;
  }

  async removeFiles(ref: ChannelRef, _version: string, files: StoredFile[]): Promise<void> {
    // DELETE of an absent key succeeds in S3: nothing to check first.
    for (const file of files) await this.deleteObject(this.channelKey(ref, file.name));
  }

  async lock(profile: string, waitMs: number): Promise<StoreLock> {
    const key = this.key(profile, LOCK_NAME);
    const me = thisHolder();
    const deadline = Date.now() + waitMs;
    for (;;) {
      let held = await this.readLock(key);
      if (!held) {
        if (await this.createLock(key, me)) return { release: () => this.releaseLock(key, me) };
        // Someone else was quicker: that is who to name if the wait runs out.
        held = (await this.readLock(key)) ?? {};
      } else if (held.holder && isStale(held.holder, me.host)) {
        // The holder died on this host (SIGKILL, power cut of the builder): its lock is stale.
        await this.deleteObject(key);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new HnError(
          'EPUBLISH_BUSY',
          `${this.url}: another publish, promote or prune of ${profile} holds s3://${this.bucket}/${key} (${describeHolder(held.holder)}); wait for it to finish, or delete that object if that process is gone`,
        );
      }
      await sleep(this.options.lockPollMs ?? LOCK_POLL_MS);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  // --- the lock --------------------------------------------------------------

  private async readLock(key: string): Promise<{ holder?: LockHolder } | undefined> {
    const bytes = await this.getBytes(key);
    if (!bytes) return undefined;
    const holder = parseHolder(Buffer.from(bytes).toString('utf8'));
    return holder ? { holder } : {};
  }

  /** Creates the lock object; true when it is ours afterwards. */
  private async createLock(key: string, me: LockHolder): Promise<boolean> {
    try {
      await this.putObject(key, Buffer.from(JSON.stringify(me) + '\n'), { exclusive: true });
    } catch (e) {
      if (isPreconditionFailed(e)) return false;
      throw this.explain(e, 'lock', key);
    }
    // A server that ignores If-None-Match lets a second creator overwrite us: the last writer
    // wins, and reading back after a moment tells every creator whether that is them.
    await sleep(LOCK_SETTLE_MS);
    const back = await this.readLock(key);
    return back?.holder?.token === me.token;
  }

  private async releaseLock(key: string, me: LockHolder): Promise<void> {
    // Only our own record: a lock taken over after ours went stale belongs to someone else now.
    const held = await this.readLock(key);
    if (held?.holder?.token === me.token) await this.deleteObject(key);
  }

  // --- objects ---------------------------------------------------------------

  /** Size and sha256 metadata of an object, or undefined when there is none. */
  private async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: res.ContentLength ?? 0, ...(res.Metadata?.sha256 ? { sha256: res.Metadata.sha256 } : {}) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.explain(e, 'head', key);
    }
  }

  /** True when `key` holds the file announced; EPUBLISH_EXISTS when it holds something else. */
  private async sameObjectThere(key: string, file: StoredFile): Promise<boolean> {
    const there = await this.head(key);
    if (!there) return false;
    let same = there.size === file.size;
    if (same && there.sha256) same = there.sha256 === file.sha256;
    else if (same) {
      // Written by another tool, without our metadata: only its bytes can tell.
      const body = await this.getStream(key);
      const hash = createHash('sha256');
      if (body) for await (const chunk of body) hash.update(chunk as Buffer);
      same = hash.digest('hex') === file.sha256;
    }
    if (same) return true;
    throw new HnError('EPUBLISH_EXISTS', `s3://${this.bucket}/${key} already exists with other content; published files are immutable: publish under a new version`);
  }

  /** A small upload's bytes, in memory so that the SDK can resend them on a retry. */
  private async smallBody(file: Upload): Promise<Uint8Array> {
    const bytes = 'path' in file.source ? await readFile(file.source.path) : file.source.bytes;
    if (bytes.length !== file.size) {
      const where = 'path' in file.source ? file.source.path : `${file.name} (in memory)`;
      throw new HnError('EVERIFY', `${where} is ${bytes.length} bytes, but ${file.size} were announced; it changed after it was hashed: build or publish again`);
    }
    return bytes;
  }

  /**
   * One PUT. `exclusive` asks the server to refuse when the key exists (If-None-Match: *);
   * `sha256` is stored as metadata and sent as the checksum S3 verifies before it keeps the object.
   */
  private async putObject(key: string, body: Uint8Array, opts: { sha256?: string; exclusive?: boolean }): Promise<void> {
    const send = (conditional: boolean) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          ...(opts.sha256 ? { Metadata: { sha256: opts.sha256 }, ChecksumSHA256: Buffer.from(opts.sha256, 'hex').toString('base64') } : {}),
          ...(conditional ? { IfNoneMatch: '*' } : {}),
        }),
      );
    const conditional = !!opts.exclusive && this.conditionalPuts;
    try {
      await send(conditional);
    } catch (e) {
      if (isPreconditionFailed(e)) throw e; // the caller decides what an existing key means
      if (!(conditional && isNotImplemented(e))) throw this.explain(e, 'put', key);
      // A server without conditional writes: we checked before writing, which is what is left.
      this.conditionalPuts = false;
      await send(false).catch((again: unknown) => {
        throw this.explain(again, 'put', key);
      });
    }
  }

  private async multipartUpload(key: string, file: Upload): Promise<void> {
    try {
      await this.multipartOnce(key, file, this.conditionalPuts);
    } catch (e) {
      if (!(this.conditionalPuts && isNotImplemented(e))) throw e;
      // A server without conditional writes: we checked before writing, which is what is left.
      this.conditionalPuts = false;
      await this.multipartOnce(key, file, false);
    }
  }

  private async multipartOnce(key: string, file: Upload, conditional: boolean): Promise<void> {
    const body =
      'path' in file.source
        ? createReadStream(file.source.path, { highWaterMark: MiB })
        : Buffer.from(file.source.bytes.buffer, file.source.bytes.byteOffset, file.source.bytes.byteLength);
    const upload = new MultipartUpload({
      client: this.client,
      // lib-storage passes IfNoneMatch on to CompleteMultipartUpload: the object appears only if absent.
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: file.size,
        Metadata: { sha256: file.sha256 },
        ...(conditional ? { IfNoneMatch: '*' } : {}),
      },
      partSize: this.partSize,
      queueSize: this.options.queueSize ?? 4,
      // A failed upload is aborted, so no parts are left to pay for.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } finally {
      if ('destroy' in body) body.destroy();
    }
  }

  private async getStream(key: string): Promise<Readable | undefined> {
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.explain(e, 'get', key);
    }
    // Errors in the middle of the body (a dropped connection) become one ESTORE line too.
    const body = res.Body as Readable;
    const out = new PassThrough({ highWaterMark: 4 * MiB });
    body.on('error', (e) => out.destroy(this.explain(e, 'get', key) as Error));
    out.on('close', () => body.destroy());
    body.pipe(out);
    return out;
  }

  private async getBytes(key: string): Promise<Uint8Array | undefined> {
    const stream = await this.getStream(key);
    if (!stream) return undefined;
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  }

  private async deleteObject(key: string): Promise<void> {
    await this.call('delete', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  private async call<T>(operation: string, key: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.explain(e, operation, key);
    }
  }

  /** An SDK or network error as one HnError line naming the store, the operation and the status. */
  private explain(e: unknown, operation: string, key: string): unknown {
    if (e instanceof HnError) return e;
    const { name, status, attempts, message } = describeError(e);
    const what = `${operation} of s3://${this.bucket}/${key}`;
    if (name === 'NoSuchBucket') return new HnError('ESTORE_URL', `${this.url}: bucket ${this.bucket} does not exist; create it or fix the URL`, { cause: e });
    if (name === 'CredentialsProviderError') {
      return new HnError('ESTORE_DENIED', `${this.url}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`, { cause: e });
    }
    // Before the status check: some servers answer a quota refusal with 403.
    if (FULL.has(name)) {
      return new HnError('ESTORE_FULL', `${this.url}: ${what} was refused (${name}): no space or quota left; free space, raise the quota or prune (hnforge prune --keep N)`, { cause: e });
    }
    if (DENIED.has(name) || status === 401 || status === 403) {
      return new HnError('ESTORE_DENIED', `${this.url}: ${what} was refused (HTTP ${status ?? '?'} ${name}); check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket's policy`, { cause: e });
    }
    const answer = status ? `HTTP ${status} ${name}` : `${name}: ${message}`;
    const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
    return new HnError('ESTORE', oneLine(`${this.url}: ${what} failed (${answer})${tries}; check HNFORGE_S3_ENDPOINT, the network and the server, then retry`), { cause: e });
  }
}

const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AllAccessDisabled', 'ExpiredToken', 'InvalidToken', 'AccountProblem']);
const FULL = new Set(['EntityTooLarge', 'QuotaExceeded', 'XMinioStorageFull', 'StorageFull', 'InsufficientStorage', 'ServiceQuotaExceededException']);

interface ErrorFacts {
  name: string;
  status?: number;
  attempts?: number;
  message: string;
}

function describeError(e: unknown): ErrorFacts {
  const err = e as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number; attempts?: number } };
  const status = err?.$metadata?.httpStatusCode;
  const attempts = err?.$metadata?.attempts;
  return {
    // A HEAD error has no body: the SDK names it after the status ("NotFound", "Forbidden") or "Unknown".
    name: err?.Code ?? (err?.name && err.name !== 'Error' ? err.name : undefined) ?? err?.code ?? 'Error',
    ...(status ? { status } : {}),
    ...(attempts ? { attempts } : {}),
    message: err?.message ?? String(e),
  };
}

function isNotFound(e: unknown) {
  const { name, status } = describeError(e);
  return name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket');
}

function isPreconditionFailed(e: unknown) {
  const { name, status } = describeError(e);
  // 409 ConditionalRequestConflict: another conditional write to the key was in flight.
  return name === 'PreconditionFailed' || status === 412 || name === 'ConditionalRequestConflict';
}

function isNotImplemented(e: unknown) {
  const { name, status } = describeError(e);
  return name === 'NotImplemented' || status === 501;
}

function oneLine(s: string) {
  return s.replace(/\s+/g, ' ').trim();
}
