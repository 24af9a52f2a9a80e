// leak-check: the finished tree (after scrub, release and chroot-leave, before
// the file list and seal) must hold nothing of the build host and none of the
// secrets the build was given. Rules are data (data/leak-patterns.yaml); the
// needles are read from the build host (hostname, machine-id, SSH host keys,
// resolv.conf, shell histories) and from what the build was given (secret
// environment variables, passwords in URLs, the signing key). A hit fails the
// build naming the file and the rule; the secret itself is never printed.
//
// The tree is walked without following links or entering mounts
// (seam/image-files.ts), every file opened O_NOFOLLOW.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { z } from 'zod';
import { need, type BuildContext } from '../pipeline/context.ts';
import { loadDataFile } from '../pipeline/data-files.ts';
import { HnError } from '../pipeline/errors.ts';
import { listRegularFiles, openImageFile, type ImageRegularFile } from '../pipeline/seam/image-files.ts';
import type { StageDef } from '../pipeline/stage.ts';

const rulesSchema = z.strictObject({
  content: z.array(z.strictObject({ name: z.string().min(1), anchor: z.string().min(4), regex: z.string().min(1) })),
  allow: z.array(z.strictObject({ path: z.string().startsWith('/'), rule: z.string().min(1), why: z.string().min(1) })).default([]),
  names: z.array(z.strictObject({ name: z.string().min(1), match: z.array(z.string().min(1)).min(1) })),
  host: z.strictObject({
    hostnameFiles: z.array(z.string()),
    minHostnameLength: z.number().int().min(1),
    genericHostnames: z.array(z.string()),
    machineIdFiles: z.array(z.string()),
    sshHostKeyDir: z.string(),
    resolvConf: z.string(),
    historyFiles: z.array(z.string()),
    homeDirs: z.array(z.string()),
    minHistoryLineLength: z.number().int().min(1),
    maxHistoryLines: z.number().int().min(1),
  }),
  environment: z.strictObject({
    secretNames: z.string().min(1),
    ignoreNames: z.array(z.string()).default([]),
    minSecretLength: z.number().int().min(1),
  }),
});

export type LeakRules = z.infer<typeof rulesSchema>;
export const LEAK_RULES_FILE = 'leak-patterns.yaml';
export const LEAK_RULES: LeakRules = loadDataFile(LEAK_RULES_FILE, rulesSchema);

/** A byte string that must not occur in the image; `what` names it (never its value). */
export interface Needle {
  what: string;
  bytes: Buffer;
  /** Only where the bytes before and after are not [A-Za-z0-9_-] (hostnames). */
  word?: boolean;
}

export interface LeakHit {
  /** Path in the image. */
  path: string;
  /** The rule or needle that matched. */
  what: string;
}

/** What the build host and the build's inputs say must not leak, plus what was left out and why. */
export interface Needles {
  needles: Needle[];
  notes: string[];
}

const readOr = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};
const listOr = (dir: string): string[] => {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
};

/** Body lines of an armored or PEM block (base64 lines, no header or armor line). */
function armorBodyLines(text: string, min = 40): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length >= min && /^[A-Za-z0-9+/=]+$/.test(l));
}

/** At most `n` lines spread over `lines` (a copy of the key holds all of them; a few suffice to find it). */
const spread = <T>(lines: T[], n: number): T[] => (lines.length <= n ? lines : Array.from({ length: n }, (_, i) => lines[Math.floor(((i + 1) * lines.length) / (n + 1))]!));

export interface HostSources {
  /** The build host's root directory (a scratch directory standing for it in tests). */
  root: string;
  /** The build host's UTS hostname (os.hostname() when not given). */
  hostname?: string;
}

/** The build host's identity: hostname, machine-id, SSH host keys, resolv.conf, shell history lines. */
export function hostNeedles(host: HostSources, rules: LeakRules = LEAK_RULES): Needles {
  const r = rules.host;
  const at = (p: string) => join(host.root, p);
  const needles: Needle[] = [];
  const notes: string[] = [];

  const names = new Set<string>();
  for (const f of r.hostnameFiles) {
    const name = readOr(at(f))?.trim();
    if (name) names.add(name);
  }
  names.add((host.hostname ?? osHostname()).trim());
  for (const name of [...names].filter(Boolean)) {
    if (name.length < r.minHostnameLength || r.genericHostnames.includes(name.toLowerCase())) {
      notes.push(`the build host's hostname '${name}' is not searched (shorter than ${r.minHostnameLength} or generic: it occurs everywhere)`);
      continue;
    }
    needles.push({ what: `the build host's hostname`, bytes: Buffer.from(name), word: true });
  }

  for (const f of r.machineIdFiles) {
    const id = readOr(at(f))?.trim();
    if (id && /^[0-9a-f]{32}$/.test(id)) needles.push({ what: `the build host's machine-id (/${f})`, bytes: Buffer.from(id) });
  }

  const sshDir = at(r.sshHostKeyDir);
  for (const name of listOr(sshDir).filter((n) => /^ssh_host_.*_key(\.pub)?$/.test(n))) {
    const text = readOr(join(sshDir, name));
    if (text === undefined) {
      notes.push(`/${r.sshHostKeyDir}/${name} is not readable: not searched`);
      continue;
    }
    const what = `the build host's SSH host key /${r.sshHostKeyDir}/${name}`;
    if (name.endsWith('.pub')) {
      const blob = text.trim().split(/\s+/)[1];
      if (blob && blob.length >= 40) needles.push({ what, bytes: Buffer.from(blob) });
    } else {
      // The first body line is the same for every key of a type (format header): skipped.
      for (const line of spread(armorBodyLines(text).slice(1), 3)) needles.push({ what, bytes: Buffer.from(line) });
    }
  }

  const resolv = readOr(at(r.resolvConf));
  for (const line of resolv?.split('\n').map((l) => l.replace(/[#;].*/, '').trim().replace(/\s+/g, ' ')) ?? []) {
    const m = /^(nameserver|search|domain) (.+)$/.exec(line);
    if (!m) continue;
    const value = m[2]!;
    // A loopback resolver (systemd-resolved's stub, dnsmasq) or the root domain says nothing about the build host.
    if (m[1] === 'nameserver' ? /^(127\.|::1$)/.test(value) : value.length < 4) continue;
    needles.push({ what: `the build's resolv.conf (${m[1]} line)`, bytes: Buffer.from(line) });
  }

  const historyFiles = [...r.historyFiles];
  for (const home of r.homeDirs) {
    for (const user of listOr(at(home))) {
      for (const f of r.historyFiles) historyFiles.push(join(home, user, f.slice(f.lastIndexOf('/') + 1)));
    }
  }
  const seen = new Set<string>();
  for (const f of historyFiles) {
    const lines = readOr(at(f))?.split('\n') ?? [];
    let n = 0;
    for (const line of lines.slice(-r.maxHistoryLines).map((l) => l.trim())) {
      if (line.length < r.minHistoryLineLength || line.startsWith('#') || seen.has(line)) continue;
      seen.add(line);
      needles.push({ what: `a line of the build host's shell history /${f}`, bytes: Buffer.from(line) });
      n++;
    }
    if (n) notes.push(`${n} lines of /${f} searched`);
  }
  return { needles, notes };
}

/** user:password@ in a URL: the password (or the whole user info when there is no password). */
export function urlPasswords(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/[a-z][a-z0-9+.-]*:\/\/([^/@\s:'"]+)(?::([^/@\s'"]+))?@/gi)) out.push(m[2] ?? m[1]!);
  return out;
}

/** Every string value of a plain object tree, with its dotted name. */
function strings(value: unknown, name = ''): [string, string][] {
  if (typeof value === 'string') return [[name, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${name}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => strings(v, name ? `${name}.${k}` : k));
  return [];
}

export interface BuildSecretSources {
  /** The build's environment (process.env). */
  env: Readonly<Record<string, string | undefined>>;
  /** Strings that may carry URLs with credentials, by name (profile fields, the resolved mirror). */
  urls: [string, string][];
  /** The armored private signing key, when the build has one. */
  signingKey?: string;
  /** The host's apt auth files (machine/login/password), relative paths read under `hostRoot`. */
  hostRoot?: string;
}

/** Secrets the build was given: secret-named environment variables, URL passwords, apt auth, the signing key. */
export function secretNeedles(src: BuildSecretSources, rules: LeakRules = LEAK_RULES): Needles {
  const r = rules.environment;
  const secretName = new RegExp(r.secretNames, 'i');
  const needles: Needle[] = [];
  const notes: string[] = [];
  const add = (what: string, value: string) => {
    if (value.length < r.minSecretLength) {
      notes.push(`${what}: shorter than ${r.minSecretLength} characters, not searched`);
      return;
    }
    if (value.includes('-----BEGIN ')) {
      for (const line of armorBodyLines(value)) needles.push({ what, bytes: Buffer.from(line) });
    } else needles.push({ what, bytes: Buffer.from(value) });
  };
  for (const [name, value] of Object.entries(src.env).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!value) continue;
    if (secretName.test(name) && !r.ignoreNames.includes(name)) add(`the value of $${name} (build environment)`, value);
    for (const p of urlPasswords(value)) add(`the password of a URL in $${name} (build environment)`, p);
  }
  for (const [name, value] of src.urls) for (const p of urlPasswords(value)) add(`the password of the URL in ${name}`, p);
  if (src.hostRoot !== undefined) {
    const dir = join(src.hostRoot, 'etc/apt');
    const files = ['auth.conf', ...listOr(join(dir, 'auth.conf.d')).map((f) => `auth.conf.d/${f}`)];
    for (const f of files) {
      for (const m of (readOr(join(dir, f)) ?? '').matchAll(/\bpassword\s+(\S+)/g)) add(`a password in the build host's /etc/apt/${f}`, m[1]!);
    }
  }
  if (src.signingKey) {
    const lines = armorBodyLines(src.signingKey);
    // The first lines carry the public key packet (the published keyring holds those bytes, though not in base64); all lines are searched.
    for (const line of lines) needles.push({ what: 'the build\'s signing key (private)', bytes: Buffer.from(line) });
  }
  return { needles, notes };
}

/** Everything a build must not leak, from the build host at `hostRoot` and the context's inputs. */
export function buildNeedles(ctx: Pick<BuildContext, 'profile' | 'mirror' | 'signingKeyArmored'>, host: HostSources = { root: '/' }, env: Readonly<Record<string, string | undefined>> = process.env): Needles {
  const h = hostNeedles(host);
  const urls: [string, string][] = strings(ctx.profile).map(([k, v]) => [`the profile's ${k}`, v]);
  if (ctx.mirror) urls.push(['the Debian mirror', ctx.mirror]);
  const s = secretNeedles({ env, urls, signingKey: ctx.signingKeyArmored, hostRoot: host.root });
  // One needle per distinct value (a password in $X and in the mirror URL is searched once, named once).
  const byValue = new Map<string, Needle>();
  for (const n of [...h.needles, ...s.needles]) if (!byValue.has(n.bytes.toString('latin1'))) byValue.set(n.bytes.toString('latin1'), n);
  return { needles: [...byValue.values()], notes: [...h.notes, ...s.notes] };
}

/** A digest of the needles (for the stage's key: a new host key or secret reruns the check; no secret is stored). */
export function needlesDigest(needles: readonly Needle[]): string {
  const h = createHash('sha256');
  for (const n of needles) h.update(`${n.what}\0${n.word ? 1 : 0}\0`).update(n.bytes).update('\0');
  return h.digest('hex');
}

/** A glob over a whole path: '*' is any characters within one component. */
const globRe = (glob: string) => new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const WORD = /[A-Za-z0-9_-]/;
const CHUNK = 8 * 1024 * 1024;
/** Characters around a content rule's anchor its regex sees. */
const BEFORE = 128;
const WINDOW = 4096;

/**
 * One regex alternating every needle and anchor (longest first): V8 scans a
 * chunk for all of them in one pass, measured as fast as one indexOf, where a
 * loop of indexOf costs one pass per needle. A match is then told apart by its text.
 */
class Matcher {
  readonly re: RegExp;
  readonly needles = new Map<string, Needle[]>();
  readonly anchors = new Map<string, { name: string; regex: RegExp }[]>();
  readonly overlap: number;

  constructor(needles: readonly Needle[], content: LeakRules['content']) {
    for (const n of needles) {
      const text = n.bytes.toString('latin1');
      this.needles.set(text, [...(this.needles.get(text) ?? []), n]);
    }
    for (const c of content) this.anchors.set(c.anchor, [...(this.anchors.get(c.anchor) ?? []), { name: c.name, regex: new RegExp(c.regex) }]);
    const texts = [...new Set([...this.needles.keys(), ...this.anchors.keys()])].sort((a, b) => b.length - a.length);
    this.re = new RegExp(texts.map(escapeRe).join('|') || '(?!)', 'g');
    // A chunk overlaps the next by the longest text or window, so nothing straddling a boundary is missed.
    this.overlap = Math.max(BEFORE + WINDOW, ...texts.map((t) => t.length + 1));
  }

  /** Adds to `found` what `text` (a chunk of a file, latin1) holds. */
  scan(text: string, found: Set<string>): void {
    const re = this.re;
    re.lastIndex = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const at = m.index;
      const hit = m[0];
      for (const n of this.needles.get(hit) ?? []) {
        if (found.has(n.what)) continue;
        if (n.word && (WORD.test(text[at - 1] ?? '') || WORD.test(text[at + hit.length] ?? ''))) continue;
        found.add(n.what);
      }
      for (const c of this.anchors.get(hit) ?? []) {
        if (!found.has(c.name) && c.regex.test(text.slice(Math.max(0, at - BEFORE), at + WINDOW))) found.add(c.name);
      }
      re.lastIndex = at + 1; // overlapping texts: each is looked for at every position
    }
  }
}

export interface ScanOptions {
  rules?: LeakRules;
  /** Files read at once (default 4). */
  concurrency?: number;
  onSkip?: (imagePath: string) => void;
}

/** Every hit in the tree at host directory `root`, sorted by path (allowed ones left out, counted). */
export async function scanTree(root: string, needles: readonly Needle[], opts: ScanOptions = {}): Promise<{ hits: LeakHit[]; allowed: LeakHit[]; files: number; bytes: number }> {
  const rules = opts.rules ?? LEAK_RULES;
  const matcher = new Matcher(needles, rules.content);
  const names = rules.names.map((n) => ({ name: n.name, res: n.match.map(globRe) }));
  const allow = rules.allow.map((a) => ({ path: globRe(a.path), rule: a.rule }));
  const files = await listRegularFiles(root, { onSkip: opts.onSkip });
  const hits: LeakHit[] = [];
  let bytes = 0;

  const scanFile = async (f: ImageRegularFile): Promise<void> => {
    if (f.size === 0) return;
    const base = f.path.slice(f.path.lastIndexOf('/') + 1);
    const found = new Set<string>();
    for (const n of names) if (n.res.some((re) => re.test(base))) found.add(n.name);
    const fh = await openImageFile(f.host);
    try {
      const buf = Buffer.allocUnsafe(Math.min(f.size, CHUNK) + matcher.overlap);
      let carry = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, carry, buf.length - carry, null);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        const end = carry + bytesRead;
        matcher.scan(buf.toString('latin1', 0, end), found);
        carry = Math.min(matcher.overlap, end);
        buf.copy(buf, 0, end - carry, end);
      }
    } finally {
      await fh.close();
    }
    for (const what of found) hits.push({ path: f.path, what });
  };
  const limit = pLimit(opts.concurrency ?? 4);
  await Promise.all(files.map((f) => limit(() => scanFile(f))));
  const byPath = (a: LeakHit, b: LeakHit) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.what < b.what ? -1 : 1);
  const isAllowed = (h: LeakHit) => allow.some((a) => a.rule === h.what && a.path.test(h.path));
  return { hits: hits.filter((h) => !isAllowed(h)).sort(byPath), allowed: hits.filter(isAllowed).sort(byPath), files: files.length, bytes };
}

/** The build failure for `hits`: one line naming the files and what matched, every hit in the details. */
export function leakError(hits: readonly LeakHit[]): HnError {
  const all = hits.map((h) => `${h.path}: ${h.what}`);
  const shown = all.slice(0, 3).join('; ') + (all.length > 3 ? `; and ${all.length - 3} more (see the stage log)` : '');
  return new HnError('ELEAK', `leak check: the image holds what must not leave the build: ${shown}; add the path to data/scrub.yaml or stop it being written`, { details: all });
}

export const leakCheck: StageDef = {
  name: 'leak-check',
  needs: ['root'],
  title: 'Check the image for leaked keys, secrets and build-host identity',
  // Changes nothing, but checks the tree the stages before it left: it chains their keys.
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  // A new host key, history line or secret reruns the check: only a digest enters the key.
  inputs: (ctx) => ({ rules: LEAK_RULES, needles: needlesDigest(buildNeedles(ctx).needles) }),
  plan: (ctx) => {
    const { needles, notes } = buildNeedles(ctx);
    return [`search every regular file (no link followed, no mount entered) for ${needles.length} build-host and build secrets and ${LEAK_RULES.content.length + LEAK_RULES.names.length} key and history rules (data/${LEAK_RULES_FILE})`, ...notes];
  },
  async run(ctx, io) {
    const { needles, notes } = buildNeedles(ctx);
    for (const n of notes) io.log(n);
    const kinds = new Map<string, number>();
    for (const n of needles) kinds.set(n.what, (kinds.get(n.what) ?? 0) + 1);
    for (const [what, count] of kinds) io.log(`searching for ${what}${count > 1 ? ` (${count} strings)` : ''}`);
    const t0 = Date.now();
    const { hits, allowed, files, bytes } = await scanTree(need(ctx, 'root'), needles, { onSkip: (p) => io.log(`not entered (another filesystem is mounted there): ${p}`) });
    io.log(`${files} files, ${(bytes / 2 ** 20).toFixed(0)} MiB searched in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const h of allowed) io.log(`allowed (data/${LEAK_RULES_FILE}) ${h.path}: ${h.what}`);
    for (const h of hits) io.log(`LEAK ${h.path}: ${h.what}`);
    if (hits.length) throw leakError(hits);
    io.progress(`${files} files clean`);
  },
};
