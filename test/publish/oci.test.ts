// The OCI client against Debian's docker-registry 2.8 on 127.0.0.1 (storage
// and config in a temp dir, killed by PID afterwards), with a proxy that cuts
// connections and answers 500 to test resumed uploads and retries.
// CI's host-package list must include docker-registry and apache2-utils.
// NOT verified here: TLS, real token services (the Bearer dance runs against
// the test proxy), credential helpers, registries other than distribution 2.8
// (whose tag list ignores pagination: the Link walk runs against a fake).

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EMPTY_CONFIG_DESCRIPTOR, MEDIA_TYPE, OciClient, parseOciUrl, pushArtifact, sha256Digest, type OciClientOptions } from '../../pipeline/publish/oci.ts';
import { dockerConfigPath, parseDockerConfig, readDockerCredentials } from '../../pipeline/publish/oci-credentials.ts';
import { ensureDebianPackage, freePort, registryAvailable, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './registry-fixtures.ts';
import { failure } from './store-contract.ts';

const MiB = 1024 * 1024;
const ARTIFACT = 'application/vnd.hnforge.root.v1';
/** Fast retries: the tests inject failures on purpose. */
const quick: OciClientOptions = { credentials: null, retries: 4, backoffMs: 20 };


async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of stream) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'hnforge-oci-test-'));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('oci:// destinations and Docker credentials', () => {
  it('parses host, port, repository and tag; loopback speaks http, others https unless insecure', () => {
    expect(parseOciUrl('oci://127.0.0.1:5000/hn/root')).toEqual({ registry: '127.0.0.1:5000', repository: 'hn/root', baseUrl: 'http://127.0.0.1:5000' });
    expect(parseOciUrl('oci://registry.example.org/hn/root:1.2.0')).toEqual({
      registry: 'registry.example.org', repository: 'hn/root', tag: '1.2.0', baseUrl: 'https://registry.example.org',
    });
    expect(parseOciUrl('oci://build-host:5000/root', { insecure: true }).baseUrl).toBe('http://build-host:5000');
    for (const bad of ['https://host/repo', 'oci://host', 'oci://host/Upper', 'oci://host/repo:bad tag', 'oci://ho st/repo']) {
      expect(() => parseOciUrl(bad), bad).toThrow(expect.objectContaining({ code: 'EOCI_REFERENCE' }));
    }
  });

  it('reads auths.<host>.auth, matching host:port and URL-shaped keys', async () => {
    const auth = (s: string) => Buffer.from(s).toString('base64');
    const config = JSON.stringify({
      auths: {
        '127.0.0.1:5000': { auth: auth('ci:pa:ss') },
        'https://registry.example.org/v1/': { auth: auth('alice:secret') },
        'other.example.org': { username: 'bob', password: 'pw' },
      },
      credsStore: 'desktop',
    });
    expect(parseDockerConfig(config, '127.0.0.1:5000')).toEqual({ username: 'ci', password: 'pa:ss' });
    expect(parseDockerConfig(config, 'registry.example.org')).toEqual({ username: 'alice', password: 'secret' });
    expect(parseDockerConfig(config, 'other.example.org')).toEqual({ username: 'bob', password: 'pw' });
    expect(parseDockerConfig(config, '127.0.0.1:5001')).toBeUndefined();
    expect(parseDockerConfig('{}', 'x')).toBeUndefined();
    expect(() => parseDockerConfig('{not json', 'x')).toThrow(expect.objectContaining({ code: 'EOCI_CREDENTIALS' }));
    expect(() => parseDockerConfig(JSON.stringify({ auths: { x: { auth: auth('nocolon') } } }), 'x')).toThrow(/not base64 of user:password/);

    const dir = join(tmp, 'docker');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), config);
    expect(dockerConfigPath({ DOCKER_CONFIG: dir })).toBe(join(dir, 'config.json'));
    expect(dockerConfigPath({ HOME: '/home/ci' })).toBe('/home/ci/.docker/config.json');
    expect(await readDockerCredentials('registry.example.org', { DOCKER_CONFIG: dir })).toEqual({ username: 'alice', password: 'secret' });
    expect(await readDockerCredentials('registry.example.org', { DOCKER_CONFIG: join(tmp, 'absent') })).toBeUndefined();
  });

  it('follows Link headers through every page of tags', async () => {
    // docker-registry 2.8 returns all tags at once; this fake pages two at a time.
    const all = ['a', 'b', 'c', 'd', 'e'];
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const from = url.searchParams.get('last') ? all.indexOf(url.searchParams.get('last')!) + 1 : 0;
      const page = all.slice(from, from + 2);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (from + 2 < all.length) headers.link = `</v2/hn/root/tags/list?n=2&last=${page.at(-1)}>; rel="next"`;
      res.writeHead(200, headers);
      res.end(JSON.stringify({ name: 'hn/root', tags: page }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new OciClient(`oci://127.0.0.1:${(server.address() as { port: number }).port}/hn/root`, quick);
      expect(await client.listTags(2)).toEqual(all);
    } finally {
      server.close();
    }
  });
});

describe.skipIf(!registryAvailable)('[root] OCI client against docker-registry 2.8', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  const client = (repo: string, over: OciClientOptions = {}) => new OciClient(`${registry.oci}/${repo}`, { ...quick, ...over });
  const viaProxy = (repo: string, over: OciClientOptions = {}) => new OciClient(`${proxy.oci}/${repo}`, { ...quick, ...over });

  /** 40 MiB, mostly a hole, with random data at a few places so a misplaced chunk changes the digest. */
  let bigFile: string;
  let bigDigest: string;

  beforeAll(async () => {
    if (!(await ensureDebianPackage('/usr/bin/docker-registry', 'docker-registry'))) throw new Error('docker-registry could not be installed');
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.port);
    bigFile = join(tmp, 'big.img');
    const fh = await open(bigFile, 'w');
    const h = createHash('sha256');
    let at = 0;
    for (const [offset, len] of [[0, MiB], [7 * MiB + 3, 2 * MiB], [23 * MiB, MiB], [40 * MiB - 4096, 4096]] as const) {
      const data = randomBytes(len);
      await fh.write(data, 0, len, offset);
      h.update(Buffer.alloc(offset - at));
      h.update(data);
      at = offset + len;
    }
    await fh.close();
    bigDigest = `sha256:${h.digest('hex')}`;
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });
  beforeEach(() => proxy?.reset());

  it('pushes a two-layer artifact, reads back manifest, tags and a byte range', async () => {
    const oci = client('hn/root');
    const kernel = Buffer.from('kernel bytes '.repeat(100));
    const imagePath = join(tmp, 'hn-root.img.zst');
    await writeFile(imagePath, randomBytes(300_000));
    const created = new Date('2026-01-02T03:04:05Z');
    const { digest, manifest } = await pushArtifact(
      oci,
      {
        artifactType: ARTIFACT, version: '1.0.0', created,
        files: [
          { source: { path: imagePath }, mediaType: 'application/zstd', title: 'hn-root_1.0.0.img.zst' },
          { source: { bytes: kernel }, mediaType: 'application/octet-stream', title: 'vmlinuz' },
        ],
      },
      ['1.0.0', 'latest'],
    );

    const read = await oci.getManifest('1.0.0');
    expect(read.digest).toBe(digest);
    expect(read.mediaType).toBe(MEDIA_TYPE.manifest);
    expect(read.manifest).toEqual(manifest);
    expect(read.manifest.artifactType).toBe(ARTIFACT);
    expect(read.manifest.config).toEqual(EMPTY_CONFIG_DESCRIPTOR);
    expect(EMPTY_CONFIG_DESCRIPTOR.digest).toBe('sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
    expect(read.manifest.annotations).toEqual({ 'org.opencontainers.image.version': '1.0.0', 'org.opencontainers.image.created': '2026-01-02T03:04:05.000Z' });
    expect(read.manifest.layers.map((l) => l.annotations?.['org.opencontainers.image.title'])).toEqual(['hn-root_1.0.0.img.zst', 'vmlinuz']);
    expect((await oci.getManifest(digest)).digest).toBe(digest);
    expect((await oci.listTags()).sort()).toEqual(['1.0.0', 'latest']);
    expect(await oci.tag('1.0.0', 'stable')).toBe(digest);
    expect((await oci.listTags()).sort()).toEqual(['1.0.0', 'latest', 'stable']);

    const layer = read.manifest.layers[1]!;
    expect(await oci.blobExists(layer.digest)).toBe(true);
    const range = await oci.getBlob(layer.digest, { start: 13, end: 25 });
    expect(range.status).toBe(206);
    expect(range.total).toBe(kernel.length);
    expect(await text(range.body)).toBe(kernel.subarray(13, 26).toString());
    const whole = await oci.getBlob(read.manifest.layers[0]!.digest);
    expect(whole.status).toBe(200);
    expect(await sha256Of(whole.body)).toBe(read.manifest.layers[0]!.digest);

    // The second push finds every blob in place and uploads nothing.
    const again = await oci.pushBlob({ path: imagePath });
    expect(again.uploaded).toBe(false);
  });

  it('uploads a 40 MiB file in 5 MiB chunks, hashing it on the way', async () => {
    const progress: number[] = [];
    const oci = viaProxy('hn/chunked', { chunkSize: 5 * MiB, onUploadProgress: (p) => progress.push(p.sent) });
    const blob = await oci.pushBlob({ path: bigFile });
    expect(blob).toEqual({ digest: bigDigest, size: 40 * MiB, uploaded: true });
    expect(proxy.requests.filter((r) => r.method === 'PATCH')).toHaveLength(8);
    expect(progress.at(-1)).toBe(40 * MiB);
    expect(await sha256Of((await oci.getBlob(bigDigest)).body)).toBe(bigDigest);
    const tail = await oci.getBlob(bigDigest, { start: 40 * MiB - 4096 });
    expect(tail.status).toBe(206);
    expect(tail.length).toBe(4096);
  });

  it('resumes at the offset the session reports when the 2nd PATCH is cut off before the registry saw it', async () => {
    const oci = viaProxy('hn/resume', { chunkSize: 5 * MiB });
    proxy.fault = (r, i) => (r.method === 'PATCH' && i === 1 ? { kind: 'cut-midway', forwardHalf: false } : undefined);
    const blob = await oci.pushBlob({ path: bigFile });
    expect(blob.digest).toBe(bigDigest);
    const methods = proxy.requests.map((r) => r.method);
    expect(methods.filter((m) => m === 'POST')).toHaveLength(1); // same session throughout
    expect(methods.filter((m) => m === 'PATCH')).toHaveLength(9); // 8 chunks, the 2nd twice
    expect(methods).toContain('GET'); // the status request that gave the offset
    expect(await oci.blobExists(bigDigest)).toBe(true);

    // With the digest supplied, nothing is hashed and the same resume works.
    proxy.reset();
    proxy.fault = (r, i) => (r.method === 'PATCH' && i === 1 ? { kind: 'cut-midway', forwardHalf: false } : undefined);
    const known = await viaProxy('hn/resume-known', { chunkSize: 5 * MiB }).pushBlob({ path: bigFile }, { digest: bigDigest });
    expect(known).toEqual({ digest: bigDigest, size: 40 * MiB, uploaded: true });
    expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('starts the blob over when a cut-off PATCH left half a chunk in the session (docker-registry then drops it)', async () => {
    const oci = viaProxy('hn/restart', { chunkSize: 5 * MiB });
    proxy.fault = (r, i) => (r.method === 'PATCH' && i === 1 ? { kind: 'cut-midway', forwardHalf: true } : undefined);
    const blob = await oci.pushBlob({ path: bigFile });
    expect(blob.digest).toBe(bigDigest);
    // docker-registry answers the status request with BLOB_UPLOAD_INVALID (its file holds more than the
    // session's state says) and cancels the session; the client opens a new one and sends from byte 0.
    expect(proxy.requests.map((r) => r.method)).toContain('GET');
    expect(await sha256Of((await oci.getBlob(bigDigest)).body)).toBe(bigDigest);
  });

  it('rides out a registry answering 500 for a while', async () => {
    const oci = viaProxy('hn/flaky', { chunkSize: 5 * MiB });
    // The 2nd and 3rd PATCH, the first manifest PUT and a HEAD fail; everything recovers.
    proxy.fault = (r, i) =>
      (r.method === 'PATCH' && (i === 1 || i === 2)) || (r.method === 'PUT' && r.path.includes('/manifests/') && i <= 1) || (r.method === 'HEAD' && i === 0)
        ? { kind: 'status', status: 500 }
        : undefined;
    const { digest } = await pushArtifact(oci, { artifactType: ARTIFACT, files: [{ source: { path: bigFile }, mediaType: 'application/octet-stream', title: 'big.img' }] }, ['v1']);
    expect((await oci.getManifest('v1')).digest).toBe(digest);
    expect(proxy.requests.some((r) => r.method === 'PATCH')).toBe(true);
  });

  it('gives one clear line when the registry keeps failing', async () => {
    const oci = viaProxy('hn/down', { retries: 2 });
    proxy.fault = (r) => (r.method === 'PUT' ? { kind: 'status', status: 503 } : undefined);
    const e = await failure(pushArtifact(oci, { artifactType: ARTIFACT, files: [{ source: { bytes: Buffer.from('x') }, mediaType: 'text/plain', title: 'x' }] }, ['v1']));
    expect(e.code).toBe('EOCI_REGISTRY');
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(new RegExp(`^registry 127\\.0\\.0\\.1:\\d+: upload blob sha256:[0-9a-f]+ in hn/down: still failing after 3 attempts \\(last: HTTP 503 UNKNOWN .*\\); check that http://127\\.0\\.0\\.1:\\d+ is up`));

    // Nothing listening at all: the same kind of line.
    const port = await freePort();
    const e2 = await failure(new OciClient(`oci://127.0.0.1:${port}/hn/none`, { ...quick, retries: 1 }).listTags());
    expect(e2.code).toBe('EOCI_REGISTRY');
    expect(e2.message).toBe(`registry 127.0.0.1:${port}: list tags in hn/none: still failing after 2 attempts (last: ECONNREFUSED); check that http://127.0.0.1:${port} is up and its log, then rerun`);
  });

  it('deletes a manifest by digest, which removes its tags', async () => {
    const oci = client('hn/prune');
    const spec = (v: string) => ({ artifactType: ARTIFACT, version: v, files: [{ source: { bytes: Buffer.from(`image ${v}`) }, mediaType: 'text/plain', title: 'img' }] });
    const old = await pushArtifact(oci, spec('1'), ['1']);
    await pushArtifact(oci, spec('2'), ['2']);
    expect((await oci.listTags()).sort()).toEqual(['1', '2']);
    expect(await oci.deleteManifest(old.digest)).toBe(true);
    expect(await oci.listTags()).toEqual(['2']);
    expect((await failure(oci.getManifest('1'))).code).toBe('EOCI_NOT_FOUND');
    expect(await oci.deleteManifest(old.digest)).toBe(false);
    expect(await client('hn/never-pushed').listTags()).toEqual([]);
  });

  it('says how to enable deletion when the registry has it off', async () => {
    const keeping = await startRegistry({ deleteEnabled: false });
    try {
      const oci = new OciClient(`${keeping.oci}/hn/keep`, quick);
      const { digest } = await pushArtifact(oci, { artifactType: ARTIFACT, files: [{ source: { bytes: Buffer.from('k') }, mediaType: 'text/plain', title: 'k' }] }, ['v1']);
      const e = await failure(oci.deleteManifest(digest));
      expect(e.code).toBe('EOCI_REFUSED');
      expect(e.message).toMatch(/HTTP 405 UNSUPPORTED.*; enable deletion in the registry \(docker-registry: storage\.delete\.enabled: true\)$/);
    } finally {
      await keeping.stop();
    }
  });

  it('answers a Bearer challenge with a token from the realm', async () => {
    const bearer = await startFaultProxy(registry.port, { bearer: { user: 'ci', password: 'tok-pass' } });
    try {
      const url = `${bearer.oci}/hn/bearer`;
      const ok = new OciClient(url, { ...quick, credentials: { username: 'ci', password: 'tok-pass' } });
      const { digest } = await pushArtifact(ok, { artifactType: ARTIFACT, files: [{ source: { bytes: Buffer.from('b') }, mediaType: 'text/plain', title: 'b' }] }, ['v1']);
      expect((await ok.getManifest('v1')).digest).toBe(digest);
      const refused = await failure(new OciClient(url, { ...quick, credentials: { username: 'ci', password: 'wrong' } }).listTags());
      expect(refused.code).toBe('EOCI_AUTH');
      expect(refused.message).toMatch(/token service refused the credentials: HTTP 401 UNAUTHORIZED/);
    } finally {
      await bearer.close();
    }
  });

  it('authenticates with Basic credentials from the Docker config against an htpasswd registry', async (ctx) => {
    if (!(await ensureDebianPackage('/usr/bin/htpasswd', 'apache2-utils'))) {
      ctx.skip(); // htpasswd -B (apache2-utils) is needed to write the bcrypt password file
      return;
    }
    const secured = await startRegistry({ htpasswd: { user: 'ci', password: 's3cret' } });
    try {
      const host = `127.0.0.1:${secured.port}`;
      const dockerDir = join(tmp, 'docker-basic');
      await mkdir(dockerDir, { recursive: true });
      await writeFile(join(dockerDir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from('ci:s3cret').toString('base64') } } }));
      const fromConfig = new OciClient(`${secured.oci}/hn/basic`, { retries: 1, backoffMs: 20, env: { DOCKER_CONFIG: dockerDir } });
      const { digest } = await pushArtifact(fromConfig, { artifactType: ARTIFACT, files: [{ source: { bytes: Buffer.from('s') }, mediaType: 'text/plain', title: 's' }] }, ['v1']);
      expect((await fromConfig.getManifest('v1')).digest).toBe(digest);

      const none = await failure(new OciClient(`${secured.oci}/hn/basic`, { ...quick, env: { DOCKER_CONFIG: join(tmp, 'absent') } }).listTags());
      expect(none.code).toBe('EOCI_AUTH');
      expect(none.message).toContain(`none are configured; run \`docker login ${host}\``);
      const wrong = await failure(new OciClient(`${secured.oci}/hn/basic`, { ...quick, credentials: { username: 'ci', password: 'nope' } }).listTags());
      expect(wrong.code).toBe('EOCI_AUTH');
      expect(wrong.message).toMatch(/HTTP 401 UNAUTHORIZED.*credentials were refused/);
    } finally {
      await secured.stop();
    }
  });

  it('refuses content whose digest differs from the one announced', async () => {
    const e = await failure(client('hn/digest').pushBlob({ bytes: Buffer.from('abc') }, { digest: sha256Digest(Buffer.from('abd')) }));
    expect(e.code).toBe('EOCI_DIGEST');
  });
});

if (!registryAvailable) {
  describe('OCI client against docker-registry', () => {
    it.skip('skipped: /usr/bin/docker-registry is missing and installing it needs root (apt-get install docker-registry)', () => {});
  });
}
