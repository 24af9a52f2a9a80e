// Where an S3 store lives: bucket and key prefix from the store URL
// (s3://bucket[/prefix]), the endpoint and region from the environment.
// Credentials are not read here: the SDK's default chain finds them
// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, instance
// roles), so they never appear in a URL, a log line or a report.

import { HnError } from '../errors.ts';

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  /** s3://bucket[/prefix], normalised, for messages. */
  url: string;
}

export interface S3Settings {
  region: string;
  /** An S3-compatible server (MinIO, Ceph, a test server); undefined for AWS. */
  endpoint?: string;
  /** Other servers rarely resolve bucket.host names: address buckets as a path when an endpoint is set. */
  forcePathStyle: boolean;
}

export const DEFAULT_REGION = 'us-east-1';

// S3's naming rules for new buckets (the legacy us-east-1 names with capitals or
// underscores cannot be addressed in path style reliably; refuse them too).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// Prefix segments end up in keys, messages and shell commands users copy: a plain alphabet.
const PREFIX_SEGMENT = /^[A-Za-z0-9._~+-]+$/;

export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(url);
  if (!m) throw new HnError('ESTORE_URL', `store ${redact(url)}: not s3://bucket[/prefix] (no query or fragment)`);
  const bucket = m[1]!;
  if (bucket.includes('@') || bucket.includes(':')) {
    // Never echo what may be a secret key.
    throw new HnError('ESTORE_URL', `store ${redact(url)}: credentials or a port do not belong in an s3:// URL; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and HNFORGE_S3_ENDPOINT`);
  }
  const bucketProblem = checkBucket(bucket);
  if (bucketProblem) throw new HnError('ESTORE_URL', `store ${url}: bucket name "${bucket}" ${bucketProblem}`);
  const segments = (m[2] ?? '').split('/').filter((s) => s !== '');
  for (const s of segments) {
    if (s === '.' || s === '..' || !PREFIX_SEGMENT.test(s)) {
      throw new HnError('ESTORE_URL', `store ${url}: prefix segment "${s}" is not allowed; use letters, digits and . _ ~ + - (not . or ..)`);
    }
  }
  const prefix = segments.join('/');
  return { bucket, prefix, url: `s3://${bucket}${prefix ? `/${prefix}` : ''}` };
}

/** The URL with anything before an "@" in its authority hidden. */
function redact(url: string): string {
  return url.replace(/^(s3:\/\/)[^/?#]*@/, '$1***@');
}

function checkBucket(bucket: string): string | undefined {
  if (bucket.length < 3 || bucket.length > 63) return 'must be 3 to 63 characters long';
  if (!BUCKET.test(bucket)) return 'may hold only lowercase letters, digits, "." and "-", and must start and end with a letter or digit';
  if (bucket.includes('..')) return 'must not contain ".."';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return 'must not look like an IP address';
  return undefined;
}

/** Endpoint and region from the environment (HNFORGE_S3_ENDPOINT wins over the SDK's AWS_ENDPOINT_URL). */
export function s3Settings(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const region = env.AWS_REGION || DEFAULT_REGION;
  const endpointVar = env.HNFORGE_S3_ENDPOINT ? 'HNFORGE_S3_ENDPOINT' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : undefined;
  if (!endpointVar) return { region, forcePathStyle: false };
  const endpoint = env[endpointVar]!;
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    throw new HnError('ESTORE_URL', `${endpointVar}=${endpoint} is not a URL; set it to http(s)://host[:port] of the S3 server`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new HnError('ESTORE_URL', `${endpointVar}=${endpoint} is not http(s)://host[:port]; set it to the S3 server's URL`);
  }
  if (parsed.username || parsed.password) {
    throw new HnError('ESTORE_URL', `${endpointVar} must not carry credentials; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`);
  }
  return { region, endpoint: parsed.origin + parsed.pathname.replace(/\/+$/, ''), forcePathStyle: true };
}
