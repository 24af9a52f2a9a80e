// Placeholder until the S3 store lands.
import { HnError } from '../errors.ts';
import type { Store } from './store.ts';

export async function openS3Store(url: string): Promise<Store> {
  throw new HnError('ESTORE_URL', `store ${url}: s3:// stores are not supported yet`);
}
