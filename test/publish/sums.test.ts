// SHA256SUMS: the exact text systemd-sysupdate/systemd-pull and coreutils
// read, a parser that refuses anything else by line number, and the hashes.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { formatSums, parseSums, sha256, sha256File, Sha256Transform, withEntry, withoutEntries } from '../../pipeline/publish/sums.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'; // FIPS 180-2 sha256("abc")

function code(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof HnError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('did not throw');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hnforge-sums-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('SHA256SUMS format', () => {
  it('writes `<hex> *<file>` lines sorted by name (byte order), newline-terminated, and reads them back', () => {
    const sums = new Map([
      ['hn-root_2.img.zst', B],
      ['hn-root_10.img.zst', A],
      ['Zeta.txt', A],
    ]);
    const text = formatSums(sums);
    expect(text).toBe(`${A} *Zeta.txt\n${A} *hn-root_10.img.zst\n${B} *hn-root_2.img.zst\n`);
    expect(parseSums(text)).toEqual(sums);
    expect(formatSums(parseSums(text))).toBe(text);
    expect(formatSums(new Map())).toBe('');
    expect(parseSums('').size).toBe(0);
  });

  it.each([
    ['upper-case hex', `${A.toUpperCase()} *x\n`, 'line 1'],
    ['text-mode separator (two spaces)', `${A}  x\n`, 'line 1'],
    ['short digest', `${A.slice(1)} *x\n`, 'line 1'],
    ['no file name', `${A} *\n`, 'line 1'],
    ['CRLF line end', `${A} *x\r\n`, 'line 1'],
    ['blank line', `${A} *x\n\n${B} *y\n`, 'line 2'],
    ['coreutils escaped name', `\\${A} *a\\\\b\n`, 'line 1'],
    ['a path, not a name', `${A} *x\n${B} *dir/y\n`, 'line 2'],
    ['trailing space in the name', `${A} *x \n`, 'line 1'],
    ['duplicate name', `${A} *x\n${B} *y\n${B} *x\n`, 'line 3'],
    ['no trailing newline', `${A} *x`, 'trailing newline'],
  ])('refuses %s, naming where', (_what, text, where) => {
    const e = code(() => parseSums(text, 'out/SHA256SUMS'));
    expect(e.code).toBe('ESUMS_FORMAT');
    expect(e.message).toContain('out/SHA256SUMS');
    expect(e.message).toContain(where);
  });

  it('formatSums refuses names and digests it could not write back', () => {
    expect(code(() => formatSums(new Map([['a\nb', A]]))).code).toBe('ESUMS_FORMAT');
    expect(code(() => formatSums(new Map([['x', 'nothex']]))).code).toBe('ESUMS_FORMAT');
  });

  it('adds and removes entries without touching the input; a new digest for a listed file is refused unless replacing', () => {
    const one = parseSums(`${A} *v1.img\n`);
    const two = withEntry(one, 'v2.img', B);
    expect(one.size).toBe(1);
    expect(formatSums(two)).toBe(`${A} *v1.img\n${B} *v2.img\n`);
    expect(withEntry(two, 'v2.img', B)).toEqual(two); // a rerun of the same publish
    const conflict = code(() => withEntry(two, 'v1.img', B));
    expect(conflict.code).toBe('ESUMS_CONFLICT');
    expect(conflict.message).toContain(A);
    expect(withEntry(two, 'v1.img', B, { replace: true }).get('v1.img')).toBe(B);
    expect(code(() => withEntry(two, '../v3.img', A)).code).toBe('ESUMS_FORMAT');
    expect(formatSums(withoutEntries(two, ['v1.img', 'never-listed']))).toBe(`${B} *v2.img\n`);
  });

  it('coreutils `sha256sum -c` accepts the file and the digests of the hashing helpers', async () => {
    const big = join(dir, 'big.bin'); // several 4 MiB read chunks, an odd tail
    const data = randomBytes((9 << 20) + 12345);
    await writeFile(big, data);
    await writeFile(join(dir, 'abc.txt'), 'abc');
    const viaFile = await sha256File(big);
    expect(viaFile).toBe(createHash('sha256').update(data).digest('hex'));
    expect(await sha256File(join(dir, 'abc.txt'))).toBe(ABC);

    // The same chunks a compressor would get, through the pass-through stream.
    const t = new Sha256Transform();
    let passed = 0;
    await pipeline(createReadStream(big, { highWaterMark: 1 << 20 }), t, new Writable({ write: (c: Buffer, _e, cb) => ((passed += c.length), cb()) }));
    expect(await t.digest).toBe(viaFile);
    expect(passed).toBe(data.length);
    expect(t.bytes).toBe(data.length);

    const h = sha256();
    h.update(Buffer.from('a'));
    h.update(Buffer.from('bc'));
    expect(h.hex()).toBe(ABC);
    expect(h.bytes).toBe(3);

    await writeFile(join(dir, 'SHA256SUMS'), formatSums(new Map([['big.bin', viaFile], ['abc.txt', ABC]])));
    const ok = await execa('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir, reject: false });
    expect(ok.stdout).toBe('abc.txt: OK\nbig.bin: OK');
    expect(ok.exitCode).toBe(0);
    await writeFile(join(dir, 'abc.txt'), 'abd');
    expect((await execa('sha256sum', ['-c', 'SHA256SUMS'], { cwd: dir, reject: false })).exitCode).not.toBe(0);
  });
});
