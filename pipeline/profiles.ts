// Loading profiles: read profiles/NAME.yaml, follow `extends`, merge, validate.
// Merge rule: objects merge key by key, the child winning; arrays are replaced,
// except the top-level `packages`, which accumulate along the chain.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { HnError } from './errors.ts';
import { profileSchema, type ResolvedProfile } from './profile-schema.ts';

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

export const profileError = (message: string) => new HnError('EPROFILE', message);

export async function listProfiles(dir: string): Promise<{ name: string; description: string; abstract: boolean }[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  const out = [];
  for (const f of files) {
    const raw = await readRaw(dir, f.replace(/\.yaml$/, ''));
    out.push({ name: String(raw.name), description: String(raw.description ?? ''), abstract: raw.abstract === true });
  }
  return out;
}

async function readRaw(dir: string, name: string): Promise<Raw> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw profileError(`invalid profile name '${name}': use lowercase letters, digits and dashes`);
  const path = join(dir, `${name}.yaml`);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    const known = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5));
    throw profileError(`unknown profile '${name}'; known profiles: ${known.join(', ')} (see 'hnforge profiles')`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw profileError(`profiles/${name}.yaml: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObject(raw)) throw profileError(`profiles/${name}.yaml: expected a mapping at the top level`);
  if (raw.name !== name) throw profileError(`profiles/${name}.yaml: 'name' must be '${name}' (it is '${String(raw.name)}')`);
  return raw;
}

export function mergeProfiles(parent: Raw, child: Raw): Raw {
  const out: Raw = { ...parent };
  for (const [key, value] of Object.entries(child)) {
    const prev = out[key];
    if (key === 'packages' && Array.isArray(prev) && Array.isArray(value)) {
      out[key] = [...new Set([...prev, ...value])];
    } else if (isObject(prev) && isObject(value)) {
      out[key] = mergeDeep(prev, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function mergeDeep(a: Raw, b: Raw): Raw {
  const out: Raw = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObject(out[k]) && isObject(v) ? mergeDeep(out[k] as Raw, v) : v;
  return out;
}

/** The chain from the root ancestor down to `name`, each with its raw content. */
async function chain(dir: string, name: string): Promise<{ name: string; raw: Raw }[]> {
  const seen: string[] = [];
  const out: { name: string; raw: Raw }[] = [];
  let current: string | undefined = name;
  while (current) {
    if (seen.includes(current)) throw profileError(`profiles/${name}.yaml: inheritance cycle ${[...seen, current].join(' -> ')}`);
    seen.push(current);
    const raw = await readRaw(dir, current);
    out.unshift({ name: current, raw });
    const parent: unknown = raw.extends;
    if (parent !== undefined && typeof parent !== 'string') throw profileError(`profiles/${current}.yaml: 'extends' must be a profile name`);
    current = parent;
  }
  return out;
}

function hasPath(raw: unknown, path: PropertyKey[]): boolean {
  let v: unknown = raw;
  for (const p of path) {
    if (!isObject(v) && !Array.isArray(v)) return false;
    v = (v as Record<PropertyKey, unknown>)[p];
    if (v === undefined) return false;
  }
  return true;
}

export async function resolveProfile(dir: string, name: string, opts: { allowAbstract?: boolean } = {}): Promise<ResolvedProfile> {
  const links = await chain(dir, name);
  let merged: Raw = {};
  for (const link of links) merged = mergeProfiles(merged, link.raw);
  merged.name = name;
  merged.abstract = links.at(-1)!.raw.abstract === true;
  delete merged.extends;
  if (merged.abstract && !opts.allowAbstract) throw profileError(`profile '${name}' is an abstract base; build one that extends it (see 'hnforge profiles')`);

  const result = profileSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const path = issue.path.map(String);
      // Name the file that holds the offending key, newest first, so the user knows what to edit.
      const keyPath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
      const owner = [...links].reverse().find((l) => hasPath(l.raw, keyPath))?.name ?? name;
      const where = [...path, ...(issue.code === 'unrecognized_keys' ? [issue.keys.join(',')] : [])].join('.') || '(top)';
      const what = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''}` : issue.message;
      return `profiles/${owner}.yaml: ${where}: ${what}`;
    });
    throw new HnError('EPROFILE', `profile '${name}' is invalid: ${lines[0]}${lines.length > 1 ? ` (and ${lines.length - 1} more)` : ''}`, {
      details: lines,
    });
  }
  const profile = result.data;
  if (profile.base === 'debian' && !profile.debian) throw profileError(`profiles/${name}.yaml: base 'debian' needs a 'debian' section`);
  if (profile.base === 'gentoo' && !profile.gentoo) throw profileError(`profiles/${name}.yaml: base 'gentoo' needs a 'gentoo' section`);
  return profile;
}
