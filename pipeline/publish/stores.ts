// A store by URL: file:///path (or an absolute path), s3://bucket[/prefix],
// oci://host[:port]/repository. The one place that knows the schemes.

import { isAbsolute, resolve } from 'node:path';
import { HnError } from '../errors.ts';
import { FileStore } from './store-file.ts';
import type { Store } from './store.ts';

export const STORE_SCHEMES = ['file', 's3', 'oci'] as const;

export async function openStore(url: string): Promise<Store> {
  if (isAbsolute(url)) return new FileStore(resolve(url));
  const scheme = /^([a-z0-9]+):\/\//.exec(url)?.[1];
  if (scheme === 'file') {
    const path = decodeURIComponent(url.slice('file://'.length));
    if (!isAbsolute(path)) throw new HnError('ESTORE_URL', `store ${url}: a file store needs an absolute path (file:///srv/images)`);
    return new FileStore(resolve(path));
  }
  if (scheme === 's3') return (await import('./store-s3.ts')).openS3Store(url);
  if (scheme === 'oci') return (await import('./store-oci.ts')).openOciStore(url);
  throw new HnError('ESTORE_URL', `store ${url}: unknown scheme; use file:///path, s3://bucket/prefix or oci://host[:port]/repository`);
}
