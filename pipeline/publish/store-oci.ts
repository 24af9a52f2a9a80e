// Placeholder until the OCI store lands.
import { HnError } from '../errors.ts';
import type { Store } from './store.ts';

export async function openOciStore(url: string): Promise<Store> {
  throw new HnError('ESTORE_URL', `store ${url}: oci:// stores are not supported yet`);
}
