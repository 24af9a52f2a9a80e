// Fixtures for the OCI client's tests: Debian's docker-registry (distribution
// 2.8) on 127.0.0.1 with its storage in a temp dir, and a proxy in front of
// it that injects the failures a long upload meets (a connection cut in the
// middle of a PATCH, 5xx for a while) or asks for a Bearer token.
//
// CI's host-package list must include docker-registry and apache2-utils
// (htpasswd -B for the authenticated registry); the tests install them when
// run as root.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { ensurePackages } from '../../pipeline/host-packages.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REGISTRY_BIN = '/usr/bin/docker-registry';
const isRoot = process.getuid?.() === 0;

/** Whether the registry can run here: installed, or installable because we are root. */
export const registryAvailable = existsSync(REGISTRY_BIN) || isRoot;

/**
 * A test package's binary, installed (root) through the project's one install path
 * (pipeline/host-packages.ts, which `npm test` runs for the whole test list) when
 * this file runs on its own.
 */
export async function ensureDebianPackage(binary: string, pkg: string): Promise<boolean> {
  if (existsSync(binary)) return true;
  if (!isRoot) return false;
  await ensurePackages([pkg], () => {});
  return existsSync(binary);
}

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Registry {
  /** oci://127.0.0.1:<port> (append /repository) */
  oci: string;
  port: number;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

export async function startRegistry(opts: { htpasswd?: { user: string; password: string }; deleteEnabled?: boolean } = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'hnforge-registry-'));
  const port = await freePort();
  let auth = '';
  if (opts.htpasswd) {
    const line = execFileSync('htpasswd', ['-nbB', opts.htpasswd.user, opts.htpasswd.password], { encoding: 'utf8' });
    await writeFile(join(dir, 'htpasswd'), line.trim() + '\n');
    auth = `auth:\n  htpasswd:\n    realm: hnforge-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      `    enabled: ${opts.deleteEnabled ?? true}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: hnforge-test-secret',
      '',
    ].join('\n') + auth,
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || i > 100) {
      await stop();
      throw new Error(`docker-registry did not start on port ${port}: ${stderr}`);
    }
    await sleep(100);
  }
  return { oci: `oci://127.0.0.1:${port}`, port, pid: child.pid!, dir, stop };
}

// ---------------------------------------------------------------------------

export interface ProxiedRequest {
  method: string;
  path: string;
}

/** What the proxy does to one request. */
export type Fault =
  | { kind: 'status'; status: number }
  /** Cut the client's connection once half the body has arrived; `forwardHalf` sends that half to the registry first. */
  | { kind: 'cut-midway'; forwardHalf: boolean };

export interface FaultProxy {
  oci: string;
  requests: ProxiedRequest[];
  /** Consulted for every request (after auth); `index` counts requests with the same method. */
  fault: ((req: ProxiedRequest, index: number) => Fault | undefined) | undefined;
  /** Forgets requests, counts and the fault, between tests. */
  reset(): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/**
 * A proxy on 127.0.0.1 in front of the registry. With `bearer`, it plays a
 * token-auth registry: requests need `Bearer <token>`, which its /token
 * endpoint hands out for those Basic credentials.
 */
export async function startFaultProxy(upstreamPort: number, opts: { bearer?: { user: string; password: string } } = {}): Promise<FaultProxy> {
  const counts = new Map<string, number>();
  const token = 'token-for-hnforge';
  let origin = '';
  const proxy: FaultProxy = {
    oci: '',
    requests: [],
    fault: undefined,
    reset() {
      proxy.requests.length = 0;
      proxy.fault = undefined;
      counts.clear();
    },
    close: async () => {},
  };

  const forward = (req: IncomingMessage, res: ServerResponse, body?: Buffer) => {
    const headers = { ...req.headers };
    if (opts.bearer) delete headers.authorization;
    const up = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    if (body) up.end(body);
    else req.pipe(up);
  };

  const cutMidway = (req: IncomingMessage, forwardHalf: boolean) => {
    const length = Number(req.headers['content-length'] ?? 0);
    const headers = { ...req.headers };
    if (opts.bearer) delete headers.authorization;
    const up = forwardHalf ? request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }) : undefined;
    up?.on('error', () => undefined);
    let seen = 0;
    req.on('data', (d: Buffer) => {
      if (seen >= length / 2) return;
      seen += d.length;
      up?.write(d);
      if (seen >= length / 2) {
        req.socket.destroy();
        // Let the registry take in what it got before its connection goes too.
        setTimeout(() => up?.destroy(), 200);
      }
    });
  };

  const server: Server = createServer((req, res) => {
    if (opts.bearer && req.url?.startsWith('/token')) {
      const basic = `Basic ${Buffer.from(`${opts.bearer.user}:${opts.bearer.password}`).toString('base64')}`;
      const ok = req.headers.authorization === basic;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? JSON.stringify({ token }) : '{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
      return;
    }
    if (opts.bearer && req.headers.authorization !== `Bearer ${token}`) {
      const repo = /^\/v2\/(.+?)\/(?:blobs|manifests|tags)\//.exec(req.url ?? '')?.[1] ?? '';
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${origin}/token",service="hnforge-test",scope="repository:${repo}:pull,push"`,
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      req.resume();
      return;
    }
    const seen: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '' };
    proxy.requests.push(seen);
    const index = counts.get(seen.method) ?? 0;
    counts.set(seen.method, index + 1);
    const fault = proxy.fault?.(seen, index);
    if (fault?.kind === 'status') {
      void readBody(req).then(() => {
        res.writeHead(fault.status, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNKNOWN","message":"injected by the test proxy"}]}');
      });
    } else if (fault?.kind === 'cut-midway') {
      cutMidway(req, fault.forwardHalf);
    } else {
      forward(req, res);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  origin = `http://127.0.0.1:${port}`;
  proxy.oci = `oci://127.0.0.1:${port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
