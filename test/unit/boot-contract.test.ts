// The boot contract has one home (pipeline/boot/contract.ts); the shell module
// carries a generated copy. These tests fail when the copy drifts or when the
// shell module spells a contract name out instead of using the constant.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  extractShellBlock, HOSTPART_FILES, KERNEL_PARAMS, SHELL_FILES_WITH_CONTRACT, SIDECAR, shellContractBlock, withShellBlock,
} from '../../pipeline/boot/contract.ts';
import { formatSidecar } from '../../pipeline/boot/sidecar.ts';

const repo = join(import.meta.dirname, '../..');

describe('boot contract', () => {
  it.each(SHELL_FILES_WITH_CONTRACT)('%s carries the generated block unchanged (run `npm run generate` after editing contract.ts)', async (rel) => {
    const text = await readFile(join(repo, rel), 'utf8');
    expect(extractShellBlock(text)).toBe(shellContractBlock(rel));
  });

  it('outside the generated block, hn-boot.sh code names no contract value literally', async () => {
    const text = await readFile(join(repo, 'boot/hn-boot.sh'), 'utf8');
    const code = text
      .replace(extractShellBlock(text)!, '')
      .split('\n')
      .filter((l) => !/^\s*#/.test(l))
      .join('\n');
    for (const value of [...Object.values(HOSTPART_FILES), ...Object.values(KERNEL_PARAMS), SIDECAR.format]) {
      expect(code, value).not.toContain(value);
    }
  });

  it('a changed contract value changes the generated block (the check above can fail)', () => {
    const text = `x\n${shellContractBlock()}\ny\n`;
    const tampered = text.replace(`HN_CUR=${HOSTPART_FILES.current}`, 'HN_CUR=other.img');
    expect(extractShellBlock(tampered)).not.toBe(shellContractBlock());
    expect(withShellBlock(tampered)).toBe(text);
  });

  it('the sidecar the factory writes starts with the format the shell module expects', () => {
    expect(formatSidecar({ size: 1, sha256: 'a'.repeat(64) })).toMatch(new RegExp(`^format=${SIDECAR.format}\\n`));
  });
});
