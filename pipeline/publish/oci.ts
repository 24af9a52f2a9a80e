// A small client for the OCI distribution API over Node's fetch: enough to
// publish an image as an OCI artifact (blobs, one manifest, tags), read it
// back, serve range reads, and prune. Large blobs go up in chunks and survive
// dropped connections and 5xx: the client asks the upload session how much it
// holds and continues from there (or starts the blob over when the registry
// has dropped the session), hashing the file once while it streams.
//
// Every failure the registry or the network causes is an HnError with one
// line: which registry, what was being done, the status, and what to do.

import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { HnError, type ErrorCode } from '../errors.ts';
import { readDockerCredentials, type RegistryCredentials } from './oci-credentials.ts';

export const MEDIA_TYPE = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

/** `{}`, the config blob of an artifact that has no config (the OCI "empty descriptor"). */
export const EMPTY_CONFIG = Buffer.from('{}');
export const EMPTY_CONFIG_DESCRIPTOR: Descriptor = {
  mediaType: MEDIA_TYPE.empty,
  digest: sha256Digest(EMPTY_CONFIG),
  size: EMPTY_CONFIG.length,
};

export const ANNOTATION = {
  title: 'org.opencontainers.image.title',
  version: 'org.opencontainers.image.version',
  created: 'org.opencontainers.image.created',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

// ---------------------------------------------------------------------------
// Destinations

export interface OciTarget {
  /** host[:port], as credentials and error messages name it. */
  registry: string;
  repository: string;
  tag?: string;
  /** http(s)://host[:port] */
  baseUrl: string;
}

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Parses `oci://host[:port]/repository[:tag]`; loopback hosts (or `insecure`) speak plain http. */
export function parseOciUrl(url: string, opts: { insecure?: boolean } = {}): OciTarget {
  const bad = (why: string) =>
    new HnError('EOCI_REFERENCE', `${url}: ${why}; write oci://host[:port]/repository[:tag], e.g. oci://registry.example.org/hn/root:1.0`);
  const m = /^oci:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw bad('not an oci:// destination with a repository');
  const registry = m[1]!.toLowerCase();
  if (!/^(?:[a-z0-9.-]+|\[[0-9a-f:]+\])(?::\d{1,5})?$/.test(registry)) throw bad(`"${registry}" is not host[:port]`);
  let repository = m[2]!;
  let tag: string | undefined;
  const colon = repository.lastIndexOf(':');
  if (colon > repository.lastIndexOf('/')) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`"${tag}" is not a valid tag`);
  }
  if (!REPOSITORY.test(repository)) throw bad(`"${repository}" is not a repository name (lowercase, digits, . _ - and /)`);
  const host = registry.replace(/:\d+$/, '');
  const scheme = opts.insecure || LOOPBACK.has(host) ? 'http' : 'https';
  return { registry, repository, ...(tag ? { tag } : {}), baseUrl: `${scheme}://${registry}` };
}

// ---------------------------------------------------------------------------
// Errors

interface RegistryErrorBody {
  errors?: { code?: string; message?: string }[];
}

/** The registry's own error code and message, when its body has the spec's shape. */
async function registryReason(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const first = (JSON.parse(text) as RegistryErrorBody).errors?.[0];
    if (first?.code) return ` ${first.code}${first.message ? ` (${first.message})` : ''}`;
  } catch {
    // Not JSON: a proxy's HTML page, say; the status says enough.
  }
  return '';
}

function describeNetworkError(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError') return 'timed out';
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

const isRetryableStatus = (status: number) => status >= 500 || status === 429 || status === 408;

// ---------------------------------------------------------------------------
// The client

export interface OciClientOptions {
  /** Plain http even for a non-loopback host. */
  insecure?: boolean;
  /** Explicit credentials; `null` means none; absent means the Docker config file's. */
  credentials?: RegistryCredentials | null;
  /** Blobs up to this size go up in one request; larger ones in chunks of this size. Default 16 MiB. */
  chunkSize?: number;
  /** Consecutive failures tolerated per operation (each followed by a backoff). Default 5. */
  retries?: number;
  /** First backoff; doubles each time, capped at 30 s. Default 1 s. */
  backoffMs?: number;
  /** Per-request timeout, except for blob downloads which stream for as long as they take. Default 5 min. */
  requestTimeoutMs?: number;
  /** Called after every accepted chunk of a blob upload. */
  onUploadProgress?: (p: { digest?: string; sent: number; total: number }) => void;
  env?: NodeJS.ProcessEnv;
}

export interface BlobRange {
  start: number;
  /** Inclusive; absent means to the end. */
  end?: number;
}

export interface BlobDownload {
  status: 200 | 206;
  body: Readable;
  /** Bytes in `body` when the registry said. */
  length?: number;
  /** Total blob size when a 206 said. */
  total?: number;
}

export interface ManifestRead {
  manifest: OciManifest;
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export type BlobSource = { bytes: Uint8Array } | { path: string };

export interface PushedBlob {
  digest: string;
  size: number;
  /** False when the registry already had it. */
  uploaded: boolean;
}

interface Call {
  /** What is being done, for messages: "PATCH blob upload", "GET manifest 1.0". */
  what: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Statuses the caller handles itself; anything else is an error. */
  expect: number[];
  /** The timeout stops at the response headers: the body streams for as long as it takes (blob downloads). */
  stream?: boolean;
}

/** A failure worth another attempt: a dropped connection, a timeout or a 5xx. */
class Transient extends Error {}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

function parseChallenge(header: string | null): Challenge | undefined {
  const m = header && /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)="([^"]*)"|(\w+)=([^\s,]+)/g)) params[(p[1] ?? p[3])!.toLowerCase()] = (p[2] ?? p[4])!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export class OciClient {
  readonly target: OciTarget;
  private readonly opts: Required<Pick<OciClientOptions, 'chunkSize' | 'retries' | 'backoffMs' | 'requestTimeoutMs'>> & OciClientOptions;
  private credentials: RegistryCredentials | null | undefined;
  /** The Authorization header that last worked; re-earned on the next 401 (tokens expire). */
  private authorization: string | undefined;

  constructor(url: string | OciTarget, opts: OciClientOptions = {}) {
    this.target = typeof url === 'string' ? parseOciUrl(url, opts) : url;
    this.opts = { chunkSize: 16 * 1024 * 1024, retries: 5, backoffMs: 1000, requestTimeoutMs: 5 * 60_000, ...opts };
    this.credentials = opts.credentials;
  }

  private get repoUrl(): string {
    return `${this.target.baseUrl}/v2/${this.target.repository}`;
  }

  private fail(code: ErrorCode, what: string, problem: string, todo: string): HnError {
    return new HnError(code, `registry ${this.target.registry}: ${what} in ${this.target.repository}: ${problem}; ${todo}`);
  }

  // --- transport --------------------------------------------------------

  private async fetchOnce(call: Call, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { ...call.headers };
    // Credentials go to the registry only, not to a storage host an upload Location may name.
    if (authorization && new URL(call.url).origin === new URL(this.target.baseUrl).origin) headers.authorization = authorization;
    // The timeout covers the whole exchange, except a blob download's body, which takes as long as it takes.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), this.opts.requestTimeoutMs).unref();
    try {
      return await fetch(call.url, {
        method: call.method,
        headers,
        // Buffers are views of plain ArrayBuffers; the DOM typings only want to be told.
        ...(call.body ? { body: call.body as Uint8Array<ArrayBuffer> } : {}),
        signal: controller.signal,
      });
    } catch (e) {
      throw new Transient(describeNetworkError(e));
    } finally {
      if (call.stream) clearTimeout(timer);
    }
  }

  /** One request, answering one authentication challenge if the registry sends it. */
  private async send(call: Call): Promise<Response> {
    const res = await this.fetchOnce(call, this.authorization);
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    await res.body?.cancel();
    this.authorization = await this.authorize(challenge, call.what);
    return this.fetchOnce(call, this.authorization);
  }

  private async credentialsOrFail(what: string): Promise<RegistryCredentials> {
    if (this.credentials === undefined) this.credentials = (await readDockerCredentials(this.target.registry, this.opts.env)) ?? null;
    if (!this.credentials) {
      throw this.fail('EOCI_AUTH', what, 'the registry asks for credentials and none are configured',
        `run \`docker login ${this.target.registry}\` or put auths["${this.target.registry}"].auth in $DOCKER_CONFIG/config.json`);
    }
    return this.credentials;
  }

  private async authorize(challenge: Challenge | undefined, what: string): Promise<string> {
    const { username, password } = await this.credentialsOrFail(what);
    const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    if (challenge?.scheme !== 'bearer') return basic;
    // The token dance: the realm hands out a short-lived token for the scope the registry named.
    const realm = challenge.params.realm;
    if (!realm) throw this.fail('EOCI_REGISTRY', what, 'a Bearer challenge without a realm', 'check the registry\'s auth configuration');
    const tokenUrl = new URL(realm);
    if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
    tokenUrl.searchParams.set('scope', challenge.params.scope ?? `repository:${this.target.repository}:pull,push`);
    let res: Response;
    try {
      res = await fetch(tokenUrl, { headers: { authorization: basic }, signal: AbortSignal.timeout(this.opts.requestTimeoutMs) });
    } catch (e) {
      throw this.fail('EOCI_AUTH', what, `the token service ${tokenUrl.origin} is unreachable (${describeNetworkError(e)})`, 'check the network and rerun');
    }
    if (!res.ok) {
      throw this.fail('EOCI_AUTH', what, `the token service refused the credentials: HTTP ${res.status}${await registryReason(res)}`,
        `check the credentials for ${this.target.registry} in $DOCKER_CONFIG/config.json`);
    }
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw this.fail('EOCI_AUTH', what, 'the token service answered without a token', 'check the registry\'s auth configuration');
    return `Bearer ${token}`;
  }

  /** The error for a status the caller did not expect. */
  private statusError(call: Call, status: number, reason: string): HnError {
    const problem = `HTTP ${status}${reason}`;
    switch (status) {
      case 401:
        return this.fail('EOCI_AUTH', call.what, `${problem}: the credentials were refused`, `check auths["${this.target.registry}"] in $DOCKER_CONFIG/config.json`);
      case 403:
        return this.fail('EOCI_AUTH', call.what, `${problem}: the credentials lack the rights`, `grant push/pull on ${this.target.repository} to the user`);
      case 404:
        return this.fail('EOCI_NOT_FOUND', call.what, problem, 'check the repository, tag or digest');
      case 405:
        return this.fail('EOCI_REFUSED', call.what, `${problem}: the registry does not allow it`,
          call.method === 'DELETE' ? 'enable deletion in the registry (docker-registry: storage.delete.enabled: true)' : 'use a registry that supports the operation');
      default:
        return this.fail('EOCI_REFUSED', call.what, problem, 'the request was refused as invalid; this is likely a bug in hnforge or the registry');
    }
  }

  /** Waits before attempt `failures + 1`: exponential, capped. */
  private backoff(failures: number): Promise<void> {
    return sleep(Math.min(this.opts.backoffMs * 2 ** (failures - 1), 30_000));
  }

  private gaveUp(what: string, attempts: number, last: string): HnError {
    return this.fail('EOCI_REGISTRY', what, `still failing after ${attempts} attempts (last: ${last})`,
      `check that ${this.target.baseUrl} is up and its log, then rerun`);
  }

  /** One step of an operation: a transient failure becomes Transient, any other status an HnError. */
  private async step(call: Call): Promise<Response> {
    const res = await this.send(call);
    if (call.expect.includes(res.status)) return res;
    const reason = await registryReason(res);
    if (isRetryableStatus(res.status)) throw new Transient(`HTTP ${res.status}${reason}`);
    throw this.statusError(call, res.status, reason);
  }

  /** `op` again after each transient failure, with backoff, at most `retries` times. */
  private async retrying<T>(what: string, op: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; ) {
      try {
        return await op();
      } catch (e) {
        if (!(e instanceof Transient)) throw e;
        if (++failures > this.opts.retries) throw this.gaveUp(what, failures, e.message);
        await this.backoff(failures);
      }
    }
  }

  private call(call: Call): Promise<Response> {
    return this.retrying(call.what, () => this.step(call));
  }

  // --- blobs ------------------------------------------------------------

  async blobExists(digest: string): Promise<boolean> {
    const res = await this.call({ what: `HEAD blob ${digest}`, method: 'HEAD', url: `${this.repoUrl}/blobs/${digest}`, expect: [200, 404] });
    await res.body?.cancel();
    return res.status === 200;
  }

  /** The blob, or the bytes `range` names of it (then exactly those: a registry ignoring the range is an error). */
  async getBlob(digest: string, range?: BlobRange): Promise<BlobDownload> {
    const what = `GET blob ${digest}${range ? ` bytes ${range.start}-${range.end ?? ''}` : ''}`;
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {};
    const res = await this.call({ what, method: 'GET', url: `${this.repoUrl}/blobs/${digest}`, headers, expect: [200, 206], stream: true });
    if (range && res.status !== 206) {
      await res.body?.cancel();
      throw this.fail('EOCI_REGISTRY', what, `asked for a range, got HTTP ${res.status}`, 'this registry cannot serve range reads; pull whole blobs');
    }
    const length = Number(res.headers.get('content-length') ?? NaN);
    const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN);
    return {
      status: res.status as 200 | 206,
      body: res.body ? Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>) : Readable.from([]),
      ...(Number.isFinite(length) ? { length } : {}),
      ...(Number.isFinite(total) ? { total } : {}),
    };
  }

  /**
   * Uploads a blob unless the registry has it. Small blobs go up in one PUT;
   * files larger than `chunkSize` in resumable chunks. Without `digest`, a
   * file's sha256 is computed while it is uploaded (one read of the file).
   */
  async pushBlob(source: BlobSource, opts: { digest?: string } = {}): Promise<PushedBlob> {
    if ('bytes' in source) return this.pushBytes(Buffer.from(source.bytes.buffer, source.bytes.byteOffset, source.bytes.byteLength), opts.digest);
    const { size } = await stat(source.path);
    if (size <= this.opts.chunkSize) {
      const fh = await open(source.path);
      try {
        return await this.pushBytes(await readAt(fh, 0, size), opts.digest);
      } finally {
        await fh.close();
      }
    }
    if (opts.digest && (await this.blobExists(opts.digest))) return { digest: opts.digest, size, uploaded: false };
    const digest = await this.uploadChunked(source.path, size, opts.digest);
    return { digest, size, uploaded: true };
  }

  private async pushBytes(bytes: Buffer, known: string | undefined): Promise<PushedBlob> {
    const digest = sha256Digest(bytes);
    if (known && known !== digest) {
      throw this.fail('EOCI_DIGEST', 'push blob', `the content is ${digest}, not ${known} as announced`, 'the file changed since its digest was taken; rebuild');
    }
    if (await this.blobExists(digest)) return { digest, size: bytes.length, uploaded: false };
    const what = `upload blob ${digest}`;
    await this.retrying(what, async () => {
      try {
        const location = await this.startUpload(what);
        const res = await this.step({
          what, method: 'PUT', url: withDigest(location, digest), body: bytes,
          headers: { 'content-type': 'application/octet-stream' }, expect: [201],
        });
        await res.body?.cancel();
      } catch (e) {
        // The PUT may have landed and only its answer been lost.
        if (e instanceof Transient && (await this.blobExists(digest))) return;
        throw e;
      }
    });
    return { digest, size: bytes.length, uploaded: true };
  }

  /**
   * A PATCH or final PUT of an upload session. Besides transient failures, a
   * session the registry no longer knows or whose offset differs is
   * recoverable too: the caller asks for its status and starts over if lost.
   */
  private async sessionStep(call: Call): Promise<Response> {
    const res = await this.send(call);
    if (call.expect.includes(res.status)) return res;
    const reason = await registryReason(res);
    if (/DIGEST_INVALID/.test(reason)) {
      throw this.fail('EOCI_DIGEST', call.what, `HTTP ${res.status}${reason}: the registry computed another digest`,
        'the file changed during the upload; rebuild and push again');
    }
    if (isRetryableStatus(res.status) || res.status === 404 || res.status === 416 || /BLOB_UPLOAD_(UNKNOWN|INVALID)/.test(reason)) {
      throw new Transient(`HTTP ${res.status}${reason}`);
    }
    throw this.statusError(call, res.status, reason);
  }

  /** Opens an upload session; returns its URL. */
  private async startUpload(what: string): Promise<string> {
    const res = await this.step({ what, method: 'POST', url: `${this.repoUrl}/blobs/uploads/`, expect: [202] });
    await res.body?.cancel();
    return this.location(res, what);
  }

  private location(res: Response, what: string): string {
    const loc = res.headers.get('location');
    if (!loc) throw this.fail('EOCI_REGISTRY', what, `HTTP ${res.status} without a Location header`, 'the registry broke the protocol; check its version');
    return new URL(loc, this.target.baseUrl).toString();
  }

  /**
   * Where an upload session stands: its URL and how many bytes it holds, or
   * `lost` when the registry no longer knows it (docker-registry drops a
   * session whose file holds more than its last answer said, e.g. after a
   * PATCH cut off half-way).
   */
  private async uploadStatus(location: string, confirmed: number, what: string): Promise<{ location: string; offset: number } | 'lost'> {
    const res = await this.send({ what, method: 'GET', url: location, expect: [204] });
    await res.body?.cancel();
    if (res.status === 204 || res.status === 202) {
      return { location: this.location(res, what), offset: offsetFromRange(res.headers.get('range'), confirmed) };
    }
    if (isRetryableStatus(res.status)) throw new Transient(`HTTP ${res.status} on the upload's status`);
    return 'lost';
  }

  /**
   * The chunked upload: POST, PATCH chunks, PUT ?digest=. After any failure
   * it asks the session for its offset and goes on from there, or opens a new
   * session from byte 0 when the old one is lost. The hash only ever moves
   * forward, so the file is hashed once however often chunks are re-sent.
   */
  private async uploadChunked(path: string, size: number, known: string | undefined): Promise<string> {
    const what = `upload of ${path}`;
    const hash = known ? undefined : createHash('sha256');
    let hashed = 0;
    /** The end of the furthest chunk sent: a session cannot hold more. */
    let furthest = 0;
    const fh = await open(path);
    try {
      let location = await this.retrying(what, () => this.startUpload(what));
      let offset = 0;
      let failures = 0;
      let digest = known;
      for (;;) {
        try {
          if (offset < size) {
            const len = Math.min(this.opts.chunkSize, size - offset);
            const chunk = await readAt(fh, offset, len);
            furthest = Math.max(furthest, offset + len);
            if (hash && offset + len > hashed) {
              hash.update(chunk.subarray(hashed - offset));
              hashed = offset + len;
            }
            const res = await this.sessionStep({
              what: `PATCH ${what}`, method: 'PATCH', url: location, body: chunk, expect: [202],
              headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + len - 1}` },
            });
            await res.body?.cancel();
            location = this.location(res, what);
            offset = offsetFromRange(res.headers.get('range'), offset + len);
            failures = 0;
            this.opts.onUploadProgress?.({ ...(known ? { digest: known } : {}), sent: offset, total: size });
            continue;
          }
          digest ??= `sha256:${hash!.digest('hex')}`;
          try {
            const res = await this.sessionStep({ what: `PUT ${what}`, method: 'PUT', url: withDigest(location, digest), expect: [201] });
            await res.body?.cancel();
            return digest;
          } catch (e) {
            if (e instanceof Transient && (await this.blobExists(digest))) return digest;
            throw e;
          }
        } catch (e) {
          if (!(e instanceof Transient)) throw e;
          if (++failures > this.opts.retries) throw this.gaveUp(what, failures, e.message);
          await this.backoff(failures);
          let status: Awaited<ReturnType<OciClient['uploadStatus']>>;
          try {
            status = await this.uploadStatus(location, offset, what);
          } catch (s) {
            // Still down: send the chunk again where we were; if that fails too, we come back here.
            if (s instanceof Transient) continue;
            throw s;
          }
          if (status === 'lost' || status.offset > furthest) {
            location = await this.retrying(what, () => this.startUpload(what));
            offset = 0;
          } else {
            ({ location, offset } = status);
          }
        }
      }
    } finally {
      await fh.close();
    }
  }

  // --- manifests and tags ---------------------------------------------------

  /** Puts a manifest under a tag or its digest; returns its digest as computed here and confirmed by the registry. */
  async putManifest(reference: string, manifest: OciManifest | Uint8Array): Promise<{ digest: string; size: number }> {
    const bytes = manifest instanceof Uint8Array ? Buffer.from(manifest) : Buffer.from(JSON.stringify(manifest));
    const mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? MEDIA_TYPE.manifest;
    const digest = sha256Digest(bytes);
    const what = `PUT manifest ${reference}`;
    const res = await this.call({ what, method: 'PUT', url: `${this.repoUrl}/manifests/${reference}`, body: bytes, headers: { 'content-type': mediaType }, expect: [201] });
    await res.body?.cancel();
    const echoed = res.headers.get('docker-content-digest');
    if (echoed && echoed !== digest) throw this.fail('EOCI_DIGEST', what, `the registry stored ${echoed}, the manifest is ${digest}`, 'the registry rewrote the manifest; use another registry');
    return { digest, size: bytes.length };
  }

  /** Gives an existing manifest (by digest or tag) another tag, byte for byte. */
  async tag(existing: string, tag: string): Promise<string> {
    const { bytes } = await this.getManifest(existing);
    return (await this.putManifest(tag, bytes)).digest;
  }

  /** The manifest by tag or digest; its bytes are checked against the digest asked for or announced. */
  async getManifest(reference: string): Promise<ManifestRead> {
    const what = `GET manifest ${reference}`;
    const res = await this.call({
      what, method: 'GET', url: `${this.repoUrl}/manifests/${reference}`, expect: [200],
      headers: { accept: [MEDIA_TYPE.manifest, MEDIA_TYPE.index, 'application/vnd.docker.distribution.manifest.v2+json'].join(', ') },
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256Digest(bytes);
    const claimed = reference.startsWith('sha256:') ? reference : res.headers.get('docker-content-digest');
    if (claimed && claimed !== digest) throw this.fail('EOCI_DIGEST', what, `got content ${digest}, expected ${claimed}`, 'the registry or a proxy altered the manifest');
    let manifest: OciManifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as OciManifest;
    } catch {
      throw this.fail('EOCI_REGISTRY', what, 'the manifest is not JSON', 'check what was pushed under this reference');
    }
    return { manifest, bytes, digest, mediaType: res.headers.get('content-type') ?? manifest.mediaType };
  }

  /** All tags, following the registry's Link pagination; none for a repository that does not exist. */
  async listTags(pageSize = 1000): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = `${this.repoUrl}/tags/list?n=${pageSize}`;
    while (url) {
      const res: Response = await this.call({ what: 'list tags', method: 'GET', url, expect: [200, 404] });
      if (res.status === 404) {
        await res.body?.cancel();
        return tags;
      }
      const page = (await res.json()) as { tags?: string[] | null };
      tags.push(...(page.tags ?? []));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '')?.[1];
      url = next ? new URL(next, this.target.baseUrl).toString() : undefined;
    }
    return tags;
  }

  /**
   * Every repository of the registry (the catalog API), following Link
   * pagination; undefined when the registry does not offer the catalog
   * (hosted registries answer 401/403/404 to it even with valid credentials).
   */
  async listRepositories(pageSize = 100): Promise<string[] | undefined> {
    const repositories: string[] = [];
    let url: string | undefined = `${this.target.baseUrl}/v2/_catalog?n=${pageSize}`;
    while (url) {
      let res: Response;
      try {
        res = await this.call({ what: 'list repositories', method: 'GET', url, expect: [200, 403, 404, 405] });
      } catch (e) {
        // A 401 after the credentials were sent: the token's scope does not cover the catalog.
        if (e instanceof HnError && e.code === 'EOCI_AUTH' && /HTTP 401/.test(e.message)) return undefined;
        throw e;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        return undefined;
      }
      const page = (await res.json()) as { repositories?: string[] | null };
      repositories.push(...(page.repositories ?? []));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '')?.[1];
      url = next ? new URL(next, this.target.baseUrl).toString() : undefined;
    }
    return repositories;
  }

  /** Deletes a manifest (and so every tag on it). False when it was not there. */
  async deleteManifest(digest: string): Promise<boolean> {
    if (!digest.startsWith('sha256:')) throw this.fail('EOCI_REFERENCE', `DELETE manifest ${digest}`, 'manifests are deleted by digest', 'resolve the tag with getManifest first');
    const res = await this.call({
      what: `DELETE manifest ${digest}`, method: 'DELETE', url: `${this.repoUrl}/manifests/${digest}`, expect: [202, 200, 204, 404],
    });
    await res.body?.cancel();
    // A repository that does not exist answers 404 too: the manifest is not there either way.
    return res.status !== 404;
  }
}

// ---------------------------------------------------------------------------
// Artifacts

export interface ArtifactFile {
  source: BlobSource;
  /** Media type of the layer, e.g. application/zstd. */
  mediaType: string;
  /** The file name `oras pull` writes. */
  title: string;
  digest?: string;
  annotations?: Record<string, string>;
}

export interface ArtifactSpec {
  artifactType: string;
  files: ArtifactFile[];
  version?: string;
  created?: Date;
  annotations?: Record<string, string>;
}

/** An OCI artifact manifest: empty config, artifactType, titled layers, version and creation time. */
export function artifactManifest(spec: { artifactType: string; layers: Descriptor[]; version?: string; created?: Date; annotations?: Record<string, string> }): OciManifest {
  const annotations: Record<string, string> = {
    ...spec.annotations,
    ...(spec.version ? { [ANNOTATION.version]: spec.version } : {}),
    ...(spec.created ? { [ANNOTATION.created]: spec.created.toISOString() } : {}),
  };
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.manifest,
    artifactType: spec.artifactType,
    config: EMPTY_CONFIG_DESCRIPTOR,
    layers: spec.layers,
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
}

/** Pushes the files, the empty config and the manifest, then tags it with every tag. */
export async function pushArtifact(client: OciClient, spec: ArtifactSpec, tags: string[]): Promise<{ digest: string; manifest: OciManifest }> {
  if (!tags.length) throw new HnError('EOCI_REFERENCE', `push to ${client.target.registry}/${client.target.repository}: no tag given; name at least one`);
  await client.pushBlob({ bytes: EMPTY_CONFIG });
  const layers: Descriptor[] = [];
  for (const f of spec.files) {
    const blob = await client.pushBlob(f.source, f.digest ? { digest: f.digest } : {});
    layers.push({ mediaType: f.mediaType, digest: blob.digest, size: blob.size, annotations: { ...f.annotations, [ANNOTATION.title]: f.title } });
  }
  const manifest = artifactManifest({ ...spec, layers });
  let digest = '';
  for (const t of tags) digest = (await client.putManifest(t, manifest)).digest;
  return { digest, manifest };
}

// ---------------------------------------------------------------------------
// Helpers

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new HnError('EOCI_DIGEST', `the file shrank while being uploaded (expected ${length} bytes at ${position}); rebuild`);
    got += bytesRead;
  }
  return buf;
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/**
 * Bytes a session holds from its `Range: 0-<last>` header. docker-registry
 * says `0-0` for an empty session too, so `0-0` means nothing held unless
 * more was already confirmed.
 */
function offsetFromRange(range: string | null, confirmed: number): number {
  const last = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? '')?.[1];
  if (last === undefined) return confirmed;
  const end = Number(last);
  return end === 0 && confirmed === 0 ? 0 : end + 1;
}
