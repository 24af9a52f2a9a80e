// The OCI store (`oci://host[:port]/repository`): the layout of
// pipeline/publish/store.ts as OCI artifacts in a registry, over OciClient.
//
//   <repository>/<profile>                      one repository per profile
//     :<version>          artifact application/vnd.hnforge.root.v1, one titled layer per payload file
//     :channel-<channel>  artifact application/vnd.hnforge.channel.v1, layers SHA256SUMS (+ SHA256SUMS.gpg)
//     :<channel>          the channel's head version manifest, so plain OCI tools
//                         (`skopeo copy docker://host/repo/profile:nightly dir:x`) fetch the newest image
//     :publish-lock       the advisory publish lock (see lock())
//
// Blobs belong to a repository, not to a tag: every channel of a profile
// shares the version manifests, so promote (copyFiles) uploads nothing and
// only a version no channel lists (lastReference) is deleted. Registries
// delete manifests only by digest, which removes every tag on it; version
// manifests carry their version and creation time, so no two share a digest.
// Blob storage is reclaimed by the registry's own (offline) garbage collect.
//
// profiles() needs the catalog API (GET /v2/_catalog, filtered by the
// repository prefix). Registries that do not offer it (most hosted ones) get
// one clear ESTORE line instead of a second, racy index of profiles kept by
// hand: every other operation names its profile and works without it.
//
// Version tags: versions may hold "+" and "~", which tags may not; they become
// "_p" and "_t" (versions never hold "_", so the mapping is one-to-one).
// Versions named like the store's own tags (channel-*, publish-lock, or a
// channel's name) are refused.

import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { HnError } from '../errors.ts';
import { ANNOTATION, EMPTY_CONFIG, EMPTY_CONFIG_DESCRIPTOR, OciClient, artifactManifest, parseOciUrl, type Descriptor, type ManifestRead, type OciClientOptions, type OciTarget } from './oci.ts';
import { parseSums } from './sums.ts';
import { INDEX_FILES, NAME_PATTERN, versionOfFile, type ChannelIndex, type ChannelRef, type Store, type PutResult, type StoreLock, type StoredFile, type Upload } from './store.ts';
import { checkVersion, newestFirst } from './version.ts';

export const ARTIFACT_TYPE = {
  root: 'application/vnd.hnforge.root.v1',
  channel: 'application/vnd.hnforge.channel.v1',
  lock: 'application/vnd.hnforge.lock.v1',
} as const;

export const LOCK_TAG = 'publish-lock';
const CHANNEL_TAG_PREFIX = 'channel-';
/** The annotation of the lock manifest holding its holder as JSON. */
const LOCK_ANNOTATION = 'org.hnforge.lock';
const CHANNEL_ANNOTATION = 'org.hnforge.channel';
/** One repository path component, as the distribution spec allows it. */
const REPOSITORY_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export interface OciStoreOptions extends OciClientOptions {
  /** After writing the lock tag, how long to wait before reading it back (lets a concurrent writer's PUT land). Default 1 s. */
  lockSettleMs?: number;
  /** How often a waiting locker looks again. Default 500 ms. */
  lockPollMs?: number;
  /** A lock older than this is taken over whoever holds it. Default 6 h. */
  staleLockMs?: number;
  /** A download that delivers nothing for this long (while its reader is ready) fails. Default 2 min. */
  readIdleMs?: number;
}

interface LockHolder {
  host: string;
  pid: number;
  since: string;
  token: string;
}

export async function openOciStore(url: string, opts: OciStoreOptions = {}): Promise<Store> {
  let target: OciTarget;
  try {
    target = parseOciUrl(url, opts);
  } catch (e) {
    // The client's line suggests a tag, which a store URL must not have: keep only its reason.
    const why = e instanceof HnError ? e.message.replace(/^.*?: /, '').replace(/; write .*$/, '') : String(e);
    throw new HnError('ESTORE_URL', `store ${url}: ${why}; write oci://host[:port]/repository, e.g. oci://registry.example.org/hn/images`, { cause: e });
  }
  if (target.tag) throw new HnError('ESTORE_URL', `store ${url}: a store is a repository, not a tag; drop ":${target.tag}" (write oci://host[:port]/repository)`);
  return new OciStore(target, opts);
}

export class OciStore implements Store {
  readonly url: string;
  private readonly clients = new Map<string, OciClient>();
  private readonly timing: Required<Pick<OciStoreOptions, 'lockSettleMs' | 'lockPollMs' | 'staleLockMs' | 'readIdleMs'>>;

  constructor(
    readonly target: OciTarget,
    private readonly opts: OciStoreOptions = {},
  ) {
    this.url = `oci://${target.registry}/${target.repository}`;
    this.timing = { lockSettleMs: 1000, lockPollMs: 500, staleLockMs: 6 * 3600_000, readIdleMs: 120_000, ...opts };
  }

  /** The repository of a profile. */
  repositoryOf(profile: string): string {
    if (!NAME_PATTERN.test(profile) || !REPOSITORY_COMPONENT.test(profile)) {
      throw new HnError('EPROFILE', `${this.url}: profile name "${profile}" cannot be an OCI repository name; use lowercase letters and digits separated by single ".", "_" or "-"`);
    }
    return `${this.target.repository}/${profile}`;
  }

  /** One client per repository: each keeps the Authorization its registry last accepted. */
  client(profile?: string): OciClient {
    const repository = profile === undefined ? this.target.repository : this.repositoryOf(profile);
    let c = this.clients.get(repository);
    if (!c) {
      c = new OciClient({ ...this.target, repository }, this.opts);
      this.clients.set(repository, c);
    }
    return c;
  }

  /** The tag of a version: its name, with "+" and "~" (not allowed in tags) as "_p" and "_t". */
  versionTag(version: string): string {
    const tag = checkVersion(version).replaceAll('+', '_p').replaceAll('~', '_t');
    if (tag === LOCK_TAG || tag.startsWith(CHANNEL_TAG_PREFIX)) {
      throw new HnError('EVERSION', `${this.url}: version "${version}" is a tag name the OCI store uses itself (${LOCK_TAG}, ${CHANNEL_TAG_PREFIX}*); choose another version`);
    }
    return tag;
  }

  async profiles(): Promise<string[]> {
    return this.guard(async () => {
      const all = await this.client().listRepositories();
      if (!all) {
        throw new HnError('ESTORE', `${this.url}: registry ${this.target.registry} does not list its repositories (catalog API refused), so the profiles under ${this.target.repository} cannot be listed; name the profile explicitly`);
      }
      const prefix = `${this.target.repository}/`;
      const candidates = all.filter((r) => r.startsWith(prefix)).map((r) => r.slice(prefix.length)).filter((p) => !p.includes('/') && NAME_PATTERN.test(p) && REPOSITORY_COMPONENT.test(p));
      const found: string[] = [];
      for (const p of candidates) if ((await this.channels(p)).length) found.push(p);
      return found.sort();
    });
  }

  async channels(profile: string): Promise<string[]> {
    return this.guard(async () => {
      const tags = await this.client(profile).listTags();
      return tags
        .filter((t) => t.startsWith(CHANNEL_TAG_PREFIX))
        .map((t) => t.slice(CHANNEL_TAG_PREFIX.length))
        .filter((c) => NAME_PATTERN.test(c))
        .sort();
    });
  }

  async readIndex(ref: ChannelRef): Promise<ChannelIndex> {
    return this.guard(async () => {
      const client = this.client(ref.profile);
      const index = await maybeManifest(client, CHANNEL_TAG_PREFIX + ref.channel);
      if (!index) return {};
      const read = async (name: string) => {
        const layer = layerTitled(index, name);
        if (!layer) return undefined;
        return new Uint8Array(await collect(await this.download(client, layer, `${ref.profile}/${ref.channel}/${name}`)));
      };
      const sums = await read(INDEX_FILES.sums);
      const signature = await read(INDEX_FILES.signature);
      return { ...(sums ? { sums } : {}), ...(signature ? { signature } : {}) };
    });
  }

  async writeIndex(ref: ChannelRef, sums: Uint8Array, signature: Uint8Array | undefined): Promise<void> {
    return this.guard(async () => {
      const client = this.client(ref.profile);
      const plainTag = ref.channel;
      if (plainTag === LOCK_TAG || plainTag.startsWith(CHANNEL_TAG_PREFIX)) {
        throw new HnError('EUSAGE', `${this.url}: channel name "${ref.channel}" is a tag name the OCI store uses itself (${LOCK_TAG}, ${CHANNEL_TAG_PREFIX}*); choose another channel name`);
      }
      // A tag named like the channel without the channel's own index tag is a version's (see putFiles).
      if ((await maybeManifest(client, plainTag)) && !(await maybeManifest(client, CHANNEL_TAG_PREFIX + ref.channel))) {
        throw new HnError('EPUBLISH_EXISTS', `${this.url}: ${ref.profile} has a version tagged "${plainTag}", the tag channel ${ref.channel} would move; choose another channel name`);
      }
      // The head is resolved before anything is written: an index naming a version the
      // registry lacks is refused whole rather than written with a stale head tag.
      const listed = parseSums(Buffer.from(sums).toString('utf8'), `${ref.profile}/${ref.channel}/${INDEX_FILES.sums}`);
      const versions = new Set([...listed.keys()].map(versionOfFile).filter((v): v is string => v !== undefined));
      const head = newestFirst(versions)[0];
      const headManifest = head === undefined ? undefined : await maybeManifest(client, this.versionTag(head));
      if (head !== undefined && !headManifest) {
        throw new HnError('EPUBLISH_MISSING', `${this.url}: ${INDEX_FILES.sums} of ${ref.profile}/${ref.channel} lists version ${head}, which is not in ${client.target.repository}; put its files first`);
      }

      await client.pushBlob({ bytes: EMPTY_CONFIG });
      const layers: Descriptor[] = [];
      const entries: [string, Uint8Array, string][] = [[INDEX_FILES.sums, sums, 'text/plain']];
      if (signature) entries.push([INDEX_FILES.signature, signature, 'application/pgp-signature']);
      for (const [name, bytes, mediaType] of entries) {
        const blob = await client.pushBlob({ bytes });
        layers.push({ mediaType, digest: blob.digest, size: blob.size, annotations: { [ANNOTATION.title]: name } });
      }
      // One manifest PUT moves the tag: readers see the old pair or the new pair, never a mix.
      const manifest = artifactManifest({ artifactType: ARTIFACT_TYPE.channel, layers, created: new Date(), annotations: { [CHANNEL_ANNOTATION]: ref.channel } });
      await client.putManifest(CHANNEL_TAG_PREFIX + ref.channel, manifest);
      // The index is the truth; the plain tag follows it (a failure here is repaired by the next write).
      // A channel emptied of versions keeps its plain tag on its last head: registries delete
      // a tag only with its manifest, which is that version's.
      if (headManifest) await client.putManifest(plainTag, headManifest.bytes);
    });
  }

  async putFiles(ref: ChannelRef, version: string, files: Upload[]): Promise<PutResult> {
    const tag = this.versionTag(version);
    return this.guard(async () => {
      const client = this.client(ref.profile);
      if (await maybeManifest(client, CHANNEL_TAG_PREFIX + tag)) {
        throw new HnError('EVERSION', `${this.url}: version "${version}" is the name of a channel of ${ref.profile}, whose tag follows that channel's head; choose another version`);
      }
      const old = await maybeManifest(client, tag);
      if (old && old.manifest.artifactType !== ARTIFACT_TYPE.root) {
        throw new HnError('EPUBLISH_EXISTS', `${this.url}: tag ${tag} of ${client.target.repository} holds something other than an hnforge version (${old.manifest.artifactType ?? old.mediaType}); publish under a new version`);
      }
      const layers = new Map<string, Descriptor>();
      for (const l of old?.manifest.layers ?? []) layers.set(l.annotations?.[ANNOTATION.title] ?? l.digest, l);
      // Decide before uploading anything: a conflict must not cost a multi-gigabyte upload first.
      const missing: Upload[] = [];
      for (const f of files) {
        const there = layers.get(f.name);
        if (!there) missing.push(f);
        else if (there.digest !== `sha256:${f.sha256}` || there.size !== f.size) {
          throw new HnError('EPUBLISH_EXISTS', `${this.url}: ${ref.profile} version ${version} already holds ${f.name} with ${there.digest}, not sha256:${f.sha256}; published files are immutable: publish under a new version`);
        }
      }
      if (!missing.length) return { linked: [] };
      await client.pushBlob({ bytes: EMPTY_CONFIG });
      for (const f of missing) {
        // The announced digest lets the client skip blobs the repository has and spares a second read of the file.
        const blob = await client.pushBlob(f.source, { digest: `sha256:${f.sha256}` });
        if (blob.size !== f.size) {
          throw new HnError('EVERIFY', `${this.url}: ${f.name} has ${blob.size} bytes, ${f.size} were announced; rebuild and publish again`);
        }
        layers.set(f.name, { mediaType: mediaTypeOf(f.name), digest: blob.digest, size: blob.size, annotations: { [ANNOTATION.title]: f.name } });
      }
      // Only now, with every blob in place, does the tag name the version: a failed upload leaves no tag.
      const manifest = artifactManifest({
        artifactType: ARTIFACT_TYPE.root,
        layers: [...layers.values()],
        version,
        ...(old ? { annotations: old.manifest.annotations } : { created: new Date() }),
      });
      await client.putManifest(tag, manifest);
      return { linked: [] };
    });
  }

  async copyFiles(from: ChannelRef, to: ChannelRef, version: string, files: StoredFile[]): Promise<void> {
    const tag = this.versionTag(version);
    if (from.profile !== to.profile) {
      throw new HnError('EPUBLISH_MISSING', `${this.url}: cannot copy ${from.profile} version ${version} to profile ${to.profile}: channels share content only within a profile`);
    }
    return this.guard(async () => {
      // Blobs are shared by every channel of the repository: nothing moves, but the version must be there.
      const client = this.client(from.profile);
      const manifest = await maybeManifest(client, tag);
      if (!manifest) throw this.missing(from, version, `no tag ${tag} in ${client.target.repository}`);
      for (const f of files) {
        const layer = layerTitled(manifest, f.name);
        if (!layer) throw this.missing(from, version, `its manifest has no layer titled ${f.name}`);
        if (layer.digest !== `sha256:${f.sha256}`) {
          throw new HnError('EVERIFY', `${this.url}: ${from.profile} version ${version} holds ${f.name} as ${layer.digest}, the channel lists sha256:${f.sha256}; verify the channel`);
        }
      }
    });
  }

  async readFile(ref: ChannelRef, file: StoredFile): Promise<Readable> {
    return this.guard(async () => {
      const version = versionOfFile(file.name);
      if (version === undefined) throw this.missing(ref, file.name, 'the OCI store holds only version files');
      const client = this.client(ref.profile);
      const tag = this.versionTag(version);
      const manifest = await maybeManifest(client, tag);
      const layer = manifest && layerTitled(manifest, file.name);
      if (!layer) throw this.missing(ref, version, `no layer ${file.name} under tag ${tag}`);
      return this.download(client, layer, `${ref.profile}/${file.name}`);
    });
  }

  async removeFiles(ref: ChannelRef, version: string, files: StoredFile[], lastReference: boolean): Promise<void> {
    // Other channels still list the version and share its manifest: it stays.
    if (!lastReference) return;
    const tag = this.versionTag(version);
    return this.guard(async () => {
      const client = this.client(ref.profile);
      const old = await maybeManifest(client, tag);
      if (!old) return;
      const names = new Set(files.map((f) => f.name));
      const kept = old.manifest.layers.filter((l) => !names.has(l.annotations?.[ANNOTATION.title] ?? ''));
      if (kept.length === old.manifest.layers.length) return;
      if (kept.length) {
        // Part of the version goes: the tag moves to a manifest without those layers, then the old one goes.
        await client.putManifest(tag, { ...old.manifest, layers: kept });
      }
      // Deleting by digest removes the version tag (and a channel's plain tag, which no longer lists it).
      await client.deleteManifest(old.digest);
    });
  }

  /**
   * The publish lock: the tag `publish-lock` of the profile's repository, on a
   * small manifest whose annotation names the holder and a random token.
   *
   * ADVISORY ONLY. Registries have no compare-and-swap: two lockers that both
   * see no lock both write, and the later PUT wins. Each writer waits
   * `lockSettleMs` and reads the tag back; only the one whose token is there
   * holds the lock. Two writers whose check-write-read windows overlap by
   * more than that wait can both believe they hold it; it keeps the common
   * case (a second publish started while one runs) out, not a determined race.
   */
  async lock(profile: string, waitMs: number): Promise<StoreLock> {
    return this.guard(async () => {
      const client = this.client(profile);
      // The lock manifest's config and layer; a repository seen for the first time lacks it.
      await client.pushBlob({ bytes: EMPTY_CONFIG });
      const deadline = Date.now() + waitMs;
      for (;;) {
        const current = await this.readLock(client);
        if (!current?.holder || this.stale(current.holder)) {
          const mine: LockHolder = { host: hostname(), pid: process.pid, since: new Date().toISOString(), token: randomBytes(16).toString('hex') };
          await client.putManifest(LOCK_TAG, lockManifest({ [LOCK_ANNOTATION]: JSON.stringify(mine) }));
          await sleep(this.timing.lockSettleMs);
          const back = await this.readLock(client);
          if (back?.holder?.token === mine.token) return { release: () => this.guard(() => this.release(client, mine)) };
          // Another locker wrote after us: its lock is judged like any other on the next round.
          continue;
        }
        if (Date.now() >= deadline) {
          const h = current.holder;
          throw new HnError('EPUBLISH_BUSY', `${this.url}: another publish, promote or prune of ${profile} holds the lock (pid ${h.pid} on ${h.host} since ${h.since}); wait for it to finish, or, if that process is gone, delete the manifest tagged ${LOCK_TAG} in ${client.target.repository} (it counts as stale after ${Math.round(this.timing.staleLockMs / 3600_000)} h)`);
        }
        await sleep(Math.max(0, Math.min(this.timing.lockPollMs, deadline - Date.now())));
      }
    });
  }

  async close(): Promise<void> {
    this.clients.clear();
  }

  // ---------------------------------------------------------------------------

  /** The lock tag's manifest; `holder` is undefined when it was released (a marker where deletion is disabled). */
  private async readLock(client: OciClient): Promise<{ digest: string; holder?: LockHolder } | undefined> {
    const read = await maybeManifest(client, LOCK_TAG);
    if (!read) return undefined;
    const text = read.manifest.annotations?.[LOCK_ANNOTATION];
    if (text === undefined) return { digest: read.digest };
    try {
      return { digest: read.digest, holder: JSON.parse(text) as LockHolder };
    } catch {
      // Unreadable: treat it as held by nobody known, from the epoch, so it counts as stale.
      return { digest: read.digest, holder: { host: '?', pid: 0, since: new Date(0).toISOString(), token: '' } };
    }
  }

  private stale(holder: LockHolder): boolean {
    // A holder that died on this host (SIGKILL, power cut of the builder) left its lock behind.
    if (holder.host === hostname() && !processAlive(holder.pid)) return true;
    const since = Date.parse(holder.since);
    return !Number.isFinite(since) || Date.now() - since > this.timing.staleLockMs;
  }

  private async release(client: OciClient, mine: LockHolder): Promise<void> {
    const current = await this.readLock(client);
    // Taken over (stale) by someone else meanwhile: theirs now, not ours to free.
    if (current?.holder?.token !== mine.token) return;
    try {
      await client.deleteManifest(current.digest);
    } catch (e) {
      if (!(e instanceof HnError && e.code === 'EOCI_REFUSED' && /HTTP 405/.test(e.message))) throw e;
      // Deletion disabled: a released marker frees the lock just as well.
      await client.putManifest(LOCK_TAG, lockManifest({ [LOCK_ANNOTATION + '.released']: new Date().toISOString() }));
    }
  }

  private missing(ref: ChannelRef, what: string, why: string): HnError {
    return new HnError('EPUBLISH_MISSING', `${this.url}: ${ref.profile}/${ref.channel} ${what} is missing (${why})`);
  }

  /** A layer's blob as a stream that fails with one ESTORE line if its bytes differ from the layer's digest or size. */
  private async download(client: OciClient, layer: Descriptor, name: string): Promise<Readable> {
    let body: Readable;
    try {
      body = (await client.getBlob(layer.digest)).body;
    } catch (e) {
      if (e instanceof HnError && e.code === 'EOCI_NOT_FOUND') {
        throw new HnError('EPUBLISH_MISSING', `${this.url}: ${name} is missing: its manifest names blob ${layer.digest}, which the registry no longer has`);
      }
      throw e;
    }
    return verifying(body, layer, `${this.url}: reading ${name}`, this.timing.readIdleMs);
  }

  /** Runs `work`, turning the client's errors into the store's codes. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.translate(e);
    }
  }

  private translate(e: unknown): unknown {
    if (!(e instanceof HnError) || !e.code.startsWith('EOCI_')) return e;
    // The client's lines read "<registry, operation, repository>: <problem>; <what to do>".
    const cut = e.message.lastIndexOf('; ');
    const what = cut > 0 ? e.message.slice(0, cut) : e.message;
    // docker-registry itself reports a full disk only as "500 unknown error" (the cause is in its
    // log): that one stays ESTORE, whose line says to read the log.
    if (/HTTP 413|HTTP 507|quota|no space|insufficient storage/i.test(e.message)) {
      return new HnError('ESTORE_FULL', `${what}; the registry has no space or quota left (or a proxy before it limits request size): free space, raise the quota or the proxy's limit, or prune (hnforge prune --keep N)`, { cause: e });
    }
    if (e.code === 'EOCI_AUTH' || e.code === 'EOCI_CREDENTIALS') {
      return new HnError('ESTORE_DENIED', `${what}; log in with \`docker login ${this.target.registry}\` (or check auths["${this.target.registry}"] in ~/.docker/config.json or $DOCKER_CONFIG) and make sure the user may push to ${this.target.repository}`, { cause: e });
    }
    if (e.code === 'EOCI_DIGEST') return new HnError('EVERIFY', e.message, { cause: e });
    return new HnError('ESTORE', e.message, { cause: e });
  }
}

// ---------------------------------------------------------------------------

/** The manifest under a tag, or undefined when the tag (or the whole repository) does not exist. */
async function maybeManifest(client: OciClient, reference: string): Promise<ManifestRead | undefined> {
  try {
    return await client.getManifest(reference);
  } catch (e) {
    if (e instanceof HnError && e.code === 'EOCI_NOT_FOUND') return undefined;
    throw e;
  }
}

function layerTitled(read: ManifestRead, title: string): Descriptor | undefined {
  return read.manifest.layers.find((l) => l.annotations?.[ANNOTATION.title] === title);
}

function lockManifest(annotations: Record<string, string>) {
  // The empty descriptor as the one layer: the spec's advice for an artifact without content.
  return artifactManifest({ artifactType: ARTIFACT_TYPE.lock, layers: [EMPTY_CONFIG_DESCRIPTOR], created: new Date(), annotations });
}

function mediaTypeOf(name: string): string {
  if (name.endsWith('.zst')) return 'application/zstd';
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.txt')) return 'text/plain';
  return 'application/octet-stream';
}

/**
 * Passes `body` through, hashing it; ends with an ESTORE error instead of the
 * last bytes when the content is not the layer's. The idle timer runs only
 * while the reader is ready for more: a slow consumer is not a dead registry.
 */
function verifying(body: Readable, layer: Descriptor, what: string, idleMs: number): Readable {
  const hash = createHash('sha256');
  let seen = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      seen += chunk.length;
      timer.refresh();
      callback(null, chunk);
    },
    flush(callback) {
      clearTimeout(timer);
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== layer.digest || seen !== layer.size) {
        callback(new HnError('ESTORE', `${what}: got ${seen} bytes with ${got}, the manifest says ${layer.size} bytes with ${layer.digest}; the registry or a proxy altered or cut the blob: rerun, then check the registry's storage`));
      } else callback();
    },
  });
  const timer = setTimeout(function idle() {
    if (body.isPaused() || check.writableNeedDrain) {
      timer.refresh();
      return;
    }
    check.destroy(new HnError('ESTORE', `${what}: no data for ${idleMs / 1000} s; check the network and the registry, then rerun`));
  }, idleMs).unref();
  body.on('error', (e) => check.destroy(new HnError('ESTORE', `${what}: the download broke off after ${seen} bytes (${(e as Error).message}); rerun`, { cause: e })));
  check.on('close', () => {
    clearTimeout(timer);
    body.destroy();
  });
  body.pipe(check);
  return check;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
