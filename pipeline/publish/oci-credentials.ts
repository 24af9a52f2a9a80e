// Registry credentials as `docker login` leaves them: `auths.<host>.auth` in
// $DOCKER_CONFIG/config.json (or ~/.docker/config.json), base64 of user:pass.
// Credential helpers (credsStore, credHelpers) and identity tokens are not
// read: a factory's CI writes the plain `auth` entry.

import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HnError } from '../errors.ts';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(env.HOME || homedir(), '.docker', 'config.json');
}

/** `docker login` keys entries by host, by host:port, or by a URL such as https://host/v1/. */
function authKeyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

/** The credentials for `registry` (host[:port]) in a config file's text, if it has any. */
export function parseDockerConfig(text: string, registry: string, file = 'Docker config'): RegistryCredentials | undefined {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    throw new HnError('EOCI_CREDENTIALS', `${file} is not valid JSON; fix it or run \`docker login ${registry}\` again`);
  }
  const auths = (config as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const wanted = registry.toLowerCase();
  const entry = Object.entries(auths).find(([key]) => authKeyHost(key) === wanted)?.[1] as
    | { auth?: unknown; username?: unknown; password?: unknown }
    | undefined;
  if (!entry) return undefined;
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password };
  }
  if (typeof entry.auth !== 'string' || entry.auth === '') return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) {
    throw new HnError('EOCI_CREDENTIALS', `${file}: auths["${registry}"].auth is not base64 of user:password; run \`docker login ${registry}\` again`);
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Credentials for `registry` from the Docker config file; none when the file or its entry is absent. */
export async function readDockerCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  const file = dockerConfigPath(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HnError('EOCI_CREDENTIALS', `cannot read ${file}: ${(e as Error).message}`);
  }
  return parseDockerConfig(text, registry, file);
}
