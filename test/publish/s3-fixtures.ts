// s3rver, the S3 test server from npm, on 127.0.0.1 with one bucket in a
// temporary directory, and the environment the AWS SDK reads to reach it.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export const BUCKET = 'hnforge-test';

export interface S3Server {
  port: number;
  endpoint: string;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'hnforge-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: BUCKET, configs: [] }] });
  let address;
  try {
    address = await server.run();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port: address.port,
    endpoint: `http://127.0.0.1:${address.port}`,
    stop: async () => {
      const closed = server.close();
      // close() would wait for idle keep-alive connections of clients and proxies.
      server.httpServer?.closeAllConnections();
      await closed;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Sets environment variables (undefined removes one); returns how to put the old values back. */
export function setEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  return () => apply(saved);
}

/** What the SDK needs to reach `endpoint` with s3rver's built-in key, and nothing from this host's ~/.aws. */
export function s3Env(endpoint: string, key = 'S3RVER') {
  return setEnv({
    HNFORGE_S3_ENDPOINT: endpoint,
    AWS_ENDPOINT_URL: undefined,
    AWS_ACCESS_KEY_ID: key,
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_REGION: 'us-east-1',
    AWS_CONFIG_FILE: '/nonexistent/hnforge-test',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/hnforge-test',
  });
}
