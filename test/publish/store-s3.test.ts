// The S3 store (s3://bucket/prefix) against the store contract on s3rver (an
// S3 server in this process, its data in a temp dir), plus what only S3 shows:
// the key layout under a prefix, multipart uploads, 5xx and dropped connections
// injected by a proxy in front of the server, refusals as one line, the lock on
// a server that ignores If-None-Match.
//
// The SDK reads credentials and the endpoint from the environment: each test
// sets them for itself and puts the old values back.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseS3Url, s3Settings } from '../../pipeline/publish/s3-config.ts';
import { openS3Store, type S3StoreOptions } from '../../pipeline/publish/store-s3.ts';
import type { ChannelRef, Store, Upload } from '../../pipeline/publish/store.ts';
import { openStore } from '../../pipeline/publish/stores.ts';
import { bytesOf, describeStoreContract, failure, upload } from './store-contract.ts';
import { startFaultProxy, type FaultProxy } from './registry-fixtures.ts';
import { BUCKET, s3Env, setEnv, startS3, type S3Server } from './s3-fixtures.ts';

const MiB = 1 << 20;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function rawClient(endpoint: string) {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
}

async function keysUnder(client: S3Client, prefix: string): Promise<string[]> {
  const res = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (res.Contents ?? []).map((c) => c.Key!).sort();
}

async function exists(client: S3Client, key: string): Promise<boolean> {
  return client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(
    () => true,
    (e: { name?: string }) => {
      if (e.name === 'NotFound') return false;
      throw e;
    },
  );
}

function proxyEndpoint(proxy: FaultProxy) {
  return proxy.oci.replace(/^oci:/, 'http:');
}

describeStoreContract('s3', async () => {
  const server = await startS3();
  const restore = s3Env(server.endpoint);
  try {
    return {
      store: await openS3Store(`s3://${BUCKET}/contract/run-${randomBytes(3).toString('hex')}`),
      cleanup: async () => {
        restore();
        await server.stop();
      },
    };
  } catch (e) {
    restore();
    await server.stop();
    throw e;
  }
});

describe('s3 store configuration', () => {
  it('reads bucket and prefix from the URL and refuses what S3 cannot address', async () => {
    expect(parseS3Url('s3://images')).toEqual({ bucket: 'images', prefix: '', url: 's3://images' });
    expect(parseS3Url('s3://my.images-1/hn//root/')).toEqual({ bucket: 'my.images-1', prefix: 'hn/root', url: 's3://my.images-1/hn/root' });
    for (const bad of ['s3://Images/x', 's3://ab', 's3://-images', 's3://im_ages', 's3://a..b', 's3://192.168.1.1', 's3://', 's3://images/../x', 's3://images/x?y=1']) {
      const e = await failure(Promise.resolve().then(() => parseS3Url(bad)));
      expect(e.code, bad).toBe('ESTORE_URL');
      expect(e.message, bad).not.toContain('\n');
    }
    const e = await failure(Promise.resolve().then(() => parseS3Url('s3://key:secret@images/x')));
    expect(e.message).toContain('AWS_ACCESS_KEY_ID');
    expect(e.message).not.toContain('secret');
  });

  it('takes endpoint and region from the environment, path-style when an endpoint is set', async () => {
    expect(s3Settings({})).toEqual({ region: 'us-east-1', forcePathStyle: false });
    expect(s3Settings({ AWS_REGION: 'eu-central-1', AWS_ENDPOINT_URL: 'http://minio:9000/' })).toEqual({ region: 'eu-central-1', endpoint: 'http://minio:9000', forcePathStyle: true });
    expect(s3Settings({ HNFORGE_S3_ENDPOINT: 'https://s3.lan', AWS_ENDPOINT_URL: 'http://other' }).endpoint).toBe('https://s3.lan');
    for (const endpoint of ['minio:9000', 'ftp://minio', 'http://user:pw@minio']) {
      const e = await failure(Promise.resolve().then(() => s3Settings({ HNFORGE_S3_ENDPOINT: endpoint })));
      expect(e.code, endpoint).toBe('ESTORE_URL');
      expect(e.message).toContain('HNFORGE_S3_ENDPOINT');
    }
  });

  it('no credentials anywhere is one ESTORE_DENIED line saying where to put them', async () => {
    const restore = setEnv({
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
      AWS_CONFIG_FILE: '/nonexistent/hnforge-test',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/hnforge-test',
      AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
      // No instance-metadata lookup: this is not a cloud VM, and it would only be slow.
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    try {
      const store = await openS3Store('s3://images/x', { env: { HNFORGE_S3_ENDPOINT: 'http://127.0.0.1:9' } });
      try {
        const e = await failure(store.profiles());
        expect(e.code).toBe('ESTORE_DENIED');
        expect(e.message).toBe('s3://images/x: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE');
      } finally {
        await store.close();
      }
    } finally {
      restore();
    }
  });

  it('openStore hands s3:// URLs to the S3 store', async () => {
    const restore = s3Env('http://127.0.0.1:9');
    try {
      const store = await openStore('s3://images/hn/');
      expect(store.url).toBe('s3://images/hn');
      await store.close();
      expect((await failure(openStore('s3://Images'))).code).toBe('ESTORE_URL');
    } finally {
      restore();
    }
  });
});

describe('s3 store on a server', () => {
  let server: S3Server;
  let proxy: FaultProxy;
  let raw: S3Client;
  let scratch: string;
  let restoreEnv: () => void = () => {};
  const nightly: ChannelRef = { profile: 'p', channel: 'nightly' };
  const stores: Store[] = [];

  /** A store reached through the fault proxy; closed after the tests. */
  async function viaProxy(prefix: string, options: S3StoreOptions = {}): Promise<Store> {
    const store = await openS3Store(`s3://${BUCKET}/${prefix}`, { env: { HNFORGE_S3_ENDPOINT: proxyEndpoint(proxy) }, ...options });
    stores.push(store);
    return store;
  }

  beforeAll(async () => {
    server = await startS3();
    proxy = await startFaultProxy(server.port);
    raw = rawClient(server.endpoint);
    scratch = await mkdtemp(join(tmpdir(), 'hnforge-s3-test-'));
    restoreEnv = s3Env(server.endpoint);
  }, 60_000);
  // A fault left by one test must not reach the next.
  beforeEach(() => proxy.reset());
  afterAll(async () => {
    restoreEnv();
    for (const s of stores) await s.close();
    raw?.destroy();
    await proxy?.close();
    await server?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('keeps the directory store\'s layout under the prefix, the sha256 in metadata, the lock beside the channels', async () => {
    const store = await viaProxy('layout/x');
    const files = [upload('hn-root_1.img.zst', Buffer.from('image')), upload('hn-root_1.json', Buffer.from('{}')), upload('hn-root_1.report.txt', Buffer.from('ok'))];
    await store.putFiles(nightly, '1', files);
    await store.writeIndex(nightly, Buffer.from('sums'), Buffer.from('sig'));
    const lock = await store.lock('p', 0);
    expect(await keysUnder(raw, 'layout/')).toEqual([
      'layout/x/p/.publish.lock',
      'layout/x/p/nightly/SHA256SUMS',
      'layout/x/p/nightly/SHA256SUMS.gpg',
      'layout/x/p/nightly/hn-root_1.img.zst',
      'layout/x/p/nightly/hn-root_1.json',
      'layout/x/p/nightly/hn-root_1.report.txt',
    ]);
    await lock.release();
    expect(await exists(raw, 'layout/x/p/.publish.lock')).toBe(false);
    const head = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'layout/x/p/nightly/hn-root_1.img.zst' }));
    expect(head.Metadata?.sha256).toBe(files[0]!.sha256);
    // Promote keeps the sha256 with the copy.
    await store.copyFiles(nightly, { profile: 'p', channel: 'stable' }, '1', [files[0]!]);
    const copied = await raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'layout/x/p/stable/hn-root_1.img.zst' }));
    expect(copied.Metadata?.sha256).toBe(files[0]!.sha256);
    // It was a server-side copy: no PUT carried the payload again.
    expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/stable/')).length).toBe(1);
    expect(proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/nightly/hn-root_1.img.zst')).length).toBe(0);
  });

  it('uploads a file above the threshold in parts and reads back the same bytes', async () => {
    const store = await viaProxy('multipart', { multipartThreshold: 5 * MiB, partSize: 5 * MiB });
    const bytes = randomBytes(12 * MiB + 7);
    const path = join(scratch, 'multipart.img.zst');
    await writeFile(path, bytes);
    const file: Upload = { name: 'hn-root_2.img.zst', sha256: sha(bytes), size: bytes.length, source: { path } };
    await store.putFiles(nightly, '2', [file]);
    const parts = proxy.requests.filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.path));
    expect(parts.length).toBe(3);
    expect(proxy.requests.some((r) => r.method === 'POST' && /[?&]uploads/.test(r.path))).toBe(true);
    expect(sha(await bytesOf(await store.readFile(nightly, file)))).toBe(file.sha256);
    // The same file again is a HEAD, not a second upload.
    proxy.reset();
    await store.putFiles(nightly, '2', [file]);
    expect(proxy.requests.map((r) => r.method)).toEqual(['HEAD']);
  }, 60_000);

  it('retries 500s and the upload succeeds', async () => {
    const store = await viaProxy('retry-500');
    proxy.fault = (req, index) => (req.method === 'PUT' && index < 2 ? { kind: 'status', status: 500 } : undefined);
    const file = upload('hn-root_3.json', randomBytes(64 * 1024));
    await store.putFiles(nightly, '3', [file]);
    expect(proxy.requests.filter((r) => r.method === 'PUT').length).toBe(3);
    expect(sha(await bytesOf(await store.readFile(nightly, file)))).toBe(file.sha256);
  }, 60_000);

  it('a connection dropped in the middle of a PUT is retried and the upload succeeds', async () => {
    const store = await viaProxy('retry-cut');
    proxy.fault = (req, index) => (req.method === 'PUT' && index === 0 ? { kind: 'cut-midway', forwardHalf: true } : undefined);
    const file = upload('hn-root_4.img.zst', randomBytes(2 * MiB));
    await store.putFiles(nightly, '4', [file]);
    expect(proxy.requests.filter((r) => r.method === 'PUT').length).toBe(2);
    expect(sha(await bytesOf(await store.readFile(nightly, file)))).toBe(file.sha256);
  }, 60_000);

  it('parts whose connection keeps dropping fail as one ESTORE line and leave no object under the final name', async () => {
    const store = await viaProxy('cut-always', { multipartThreshold: 5 * MiB, partSize: 5 * MiB, maxAttempts: 2 });
    proxy.fault = (req) => (req.method === 'PUT' && /[?&]partNumber=2/.test(req.path) ? { kind: 'cut-midway', forwardHalf: true } : undefined);
    const bytes = randomBytes(11 * MiB);
    const file: Upload = { name: 'hn-root_5.img.zst', sha256: sha(bytes), size: bytes.length, source: { bytes } };
    const e = await failure(store.putFiles(nightly, '5', [file]));
    expect(e.code).toBe('ESTORE');
    expect(e.message).not.toContain('\n');
    expect(e.message).toContain(`s3://${BUCKET}/cut-always`);
    expect(e.message).toContain('upload of');
    proxy.fault = undefined;
    expect(await exists(raw, 'cut-always/p/nightly/hn-root_5.img.zst')).toBe(false);
    expect((await failure(store.readFile(nightly, file))).code).toBe('EPUBLISH_MISSING');
    // The failed upload was aborted (DELETE ?uploadId), so no parts are left behind.
    expect(proxy.requests.some((r) => r.method === 'DELETE' && /[?&]uploadId=/.test(r.path))).toBe(true);
  }, 60_000);

  it('a server failing past the retries is one ESTORE line naming the store, the operation and the status', async () => {
    const store = await viaProxy('down', { maxAttempts: 2 });
    proxy.fault = () => ({ kind: 'status', status: 503 });
    const e = await failure(store.readIndex(nightly));
    expect(e.code).toBe('ESTORE');
    expect(e.message).toMatch(new RegExp(`^s3://${BUCKET}/down: get of s3://${BUCKET}/down/p/nightly/SHA256SUMS failed \\(HTTP 503 .*\\) after 2 attempts`));
    expect(e.message).not.toContain('\n');
    expect(proxy.requests.length).toBe(2);
  }, 60_000);

  it('an unreachable endpoint is one ESTORE line', async () => {
    const store = await openS3Store(`s3://${BUCKET}/x`, { env: { HNFORGE_S3_ENDPOINT: 'http://127.0.0.1:9' }, maxAttempts: 1 });
    stores.push(store);
    const e = await failure(store.channels('p'));
    expect(e.code).toBe('ESTORE');
    expect(e.message).toContain('ECONNREFUSED');
    expect(e.message).not.toContain('\n');
  });

  it('wrong credentials are one ESTORE_DENIED line; an unknown bucket one ESTORE_URL line', async () => {
    const restore = s3Env(server.endpoint, 'NOT-A-KEY');
    try {
      const store = await openS3Store(`s3://${BUCKET}/x`);
      stores.push(store);
      for (const op of [() => store.profiles(), () => store.putFiles(nightly, '1', [upload('hn-root_1.json', Buffer.from('x'))]), () => store.readIndex(nightly)]) {
        const e = await failure(op());
        expect(e.code).toBe('ESTORE_DENIED');
        expect(e.message).toContain('AWS_ACCESS_KEY_ID');
        expect(e.message).not.toContain('\n');
      }
    } finally {
      restore();
    }
    const store = await openS3Store('s3://no-such-bucket/x', { env: { HNFORGE_S3_ENDPOINT: server.endpoint } });
    stores.push(store);
    for (const op of [() => store.profiles(), () => store.readIndex(nightly), () => store.putFiles(nightly, '1', [upload('hn-root_1.json', Buffer.from('x'))])]) {
      const e = await failure(op());
      expect(e.code).toBe('ESTORE_URL');
      expect(e.message).toBe('s3://no-such-bucket/x: bucket no-such-bucket does not exist; create it or fix the URL');
    }
  });

  it('an object written by another tool counts as the same file only with the same bytes', async () => {
    const store = await viaProxy('foreign');
    const key = 'foreign/p/nightly/hn-root_6.json';
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from('{"a":1}') }));
    await store.putFiles(nightly, '6', [upload('hn-root_6.json', Buffer.from('{"a":1}'))]);
    const e = await failure(store.putFiles(nightly, '6', [upload('hn-root_6.json', Buffer.from('{"a":2}'))]));
    expect(e.code).toBe('EPUBLISH_EXISTS');
    expect(e.message).toContain(`s3://${BUCKET}/${key}`);
  });

  it('takes over a lock whose holder died on this host, and names a live holder on another host', async () => {
    const store = await viaProxy('locks');
    const dead = await execa('sh', ['-c', 'echo $$']);
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'locks/p/.publish.lock', Body: JSON.stringify({ host: hostname(), pid: Number(dead.stdout), since: 'then' }) }));
    const lock = await store.lock('p', 0);
    await lock.release();
    await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'locks/p/.publish.lock', Body: JSON.stringify({ host: 'builder-7', pid: 4242, since: '2026-12-02T10:00:00Z' }) }));
    const e = await failure(store.lock('p', 0));
    expect(e.code).toBe('EPUBLISH_BUSY');
    expect(e.message).toContain('pid 4242 on builder-7 since 2026-12-02T10:00:00Z');
    expect(e.message).toContain(`s3://${BUCKET}/locks/p/.publish.lock`);
  });

  it('two lockers racing on a server that ignores If-None-Match: exactly one gets the lock', async () => {
    // s3rver overwrites on a conditional PUT, so only the read-back decides.
    const a = await viaProxy('race');
    const b = await viaProxy('race');
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([a.lock('p', 0), b.lock('p', 0)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won.length, `round ${round}`).toBe(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((lost.reason as { code?: string }).code).toBe('EPUBLISH_BUSY');
      await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
    }
  });
});

// What s3rver cannot show (it ignores If-None-Match and checksums): a scripted
// server answering as S3 does, recording what the store sent.
interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

async function scriptedS3(answer: (req: Seen, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    req.resume();
    req.on('end', () => {
      const r = { method: req.method ?? '', path: req.url ?? '', headers: req.headers };
      seen.push(r);
      answer(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    seen,
    endpoint,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function s3Error(res: ServerResponse, status: number, code: string) {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>scripted</Message></Error>`);
}

describe('s3 store against a server honouring conditions', () => {
  let restoreEnv: () => void = () => {};
  const nightly: ChannelRef = { profile: 'p', channel: 'nightly' };
  const file = upload('hn-root_1.json', Buffer.from('{"v":1}'));
  beforeAll(() => {
    restoreEnv = s3Env('http://127.0.0.1:9');
  });
  afterAll(() => restoreEnv());

  async function withServer(answer: (req: Seen, res: ServerResponse) => void, work: (store: Store, seen: Seen[]) => Promise<void>) {
    const server = await scriptedS3(answer);
    const store = await openS3Store(`s3://${BUCKET}/c`, { env: { HNFORGE_S3_ENDPOINT: server.endpoint }, maxAttempts: 2 });
    try {
      await work(store, server.seen);
    } finally {
      await store.close();
      await server.close();
    }
  }

  it('a PUT creates only if absent and carries the sha256 for the server to verify', async () => {
    await withServer(
      (req, res) => {
        res.writeHead(req.method === 'HEAD' ? 404 : 200, { etag: '"e"' });
        res.end();
      },
      async (store, seen) => {
        await store.putFiles(nightly, '1', [file]);
        const put = seen.find((r) => r.method === 'PUT')!;
        expect(put.headers['if-none-match']).toBe('*');
        expect(put.headers['x-amz-meta-sha256']).toBe(file.sha256);
        expect(put.headers['x-amz-checksum-sha256']).toBe(Buffer.from(file.sha256, 'hex').toString('base64'));
      },
    );
  });

  it('a key created by a concurrent writer (412) is fine with the same sha256 and EPUBLISH_EXISTS with another', async () => {
    for (const [sha256, expected] of [[file.sha256, 'ok'], ['f'.repeat(64), 'EPUBLISH_EXISTS']] as const) {
      let heads = 0;
      await withServer(
        (req, res) => {
          if (req.method === 'HEAD') {
            // Absent at first, there after the refused PUT.
            if (heads++ === 0) res.writeHead(404);
            else res.writeHead(200, { 'content-length': String(file.size), 'x-amz-meta-sha256': sha256, etag: '"e"' });
            res.end();
          } else s3Error(res, 412, 'PreconditionFailed');
        },
        async (store) => {
          const outcome = await store.putFiles(nightly, '1', [file]).then(
            () => 'ok',
            (e: { code?: string }) => e.code,
          );
          expect(outcome).toBe(expected);
        },
      );
    }
  });

  it('a server without conditional writes (501) gets a plain PUT from then on', async () => {
    await withServer(
      (req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(404);
          res.end();
        } else if (req.headers['if-none-match']) s3Error(res, 501, 'NotImplemented');
        else {
          res.writeHead(200, { etag: '"e"' });
          res.end();
        }
      },
      async (store, seen) => {
        await store.putFiles(nightly, '1', [file, upload('hn-root_1.report.txt', Buffer.from('r'))]);
        expect(seen.filter((r) => r.method === 'PUT').map((r) => r.headers['if-none-match'] ?? '-')).toEqual(['*', '-', '-']);
      },
    );
  });

  it('the lock is refused (412) while another holder has it, and names that holder', async () => {
    const holder = JSON.stringify({ host: 'builder-9', pid: 77, since: '2026-12-02T09:00:00Z', token: 'theirs' });
    let gets = 0;
    await withServer(
      (req, res) => {
        if (req.method === 'GET' && gets++ === 0) return s3Error(res, 404, 'NoSuchKey');
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-length': String(Buffer.byteLength(holder)) });
          return res.end(holder);
        }
        s3Error(res, 412, 'PreconditionFailed');
      },
      async (store) => {
        const e = await failure(store.lock('p', 0));
        expect(e.code).toBe('EPUBLISH_BUSY');
        expect(e.message).toContain('pid 77 on builder-9');
      },
    );
  });

  it('a server that accepts the connection but never answers is given up after the idle timeout: one ESTORE line', async () => {
    const server = await scriptedS3(() => undefined);
    const store = await openS3Store(`s3://${BUCKET}/c`, { env: { HNFORGE_S3_ENDPOINT: server.endpoint }, maxAttempts: 1, idleTimeoutMs: 300 });
    try {
      const started = Date.now();
      const e = await failure(store.readIndex(nightly));
      expect(e.code).toBe('ESTORE');
      expect(e.message).toContain('get of');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('a download cut in the middle fails the stream with one ESTORE line', async () => {
    const server = await scriptedS3((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(100));
      setTimeout(() => res.destroy(), 50);
    });
    const store = await openS3Store(`s3://${BUCKET}/c`, { env: { HNFORGE_S3_ENDPOINT: server.endpoint }, maxAttempts: 1 });
    try {
      const stream = await store.readFile(nightly, { name: 'hn-root_1.img.zst', sha256: 'a'.repeat(64), size: 1000 });
      const e = await failure(bytesOf(stream));
      expect(e.code).toBe('ESTORE');
      expect(e.message).toContain(`get of s3://${BUCKET}/c/p/nightly/hn-root_1.img.zst failed`);
    } finally {
      await store.close();
      await server.close();
    }
  });

  it('quota and access refusals are ESTORE_FULL and ESTORE_DENIED lines', async () => {
    for (const [code, status, expected] of [
      ['EntityTooLarge', 400, 'ESTORE_FULL'],
      ['QuotaExceeded', 403, 'ESTORE_FULL'],
      ['AccessDenied', 403, 'ESTORE_DENIED'],
    ] as const) {
      await withServer(
        (req, res) => {
          if (req.method === 'HEAD') {
            res.writeHead(404);
            res.end();
          } else s3Error(res, status, code);
        },
        async (store) => {
          const e = await failure(store.putFiles(nightly, '1', [file]));
          expect(e.code, code).toBe(expected);
          expect(e.message).toContain(`s3://${BUCKET}/c`);
          expect(e.message).not.toContain('\n');
        },
      );
    }
  });
});
