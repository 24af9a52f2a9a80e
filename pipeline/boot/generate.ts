// `npm run generate`: rewrites the generated copies of the boot contract
// (pipeline/boot/contract.ts) in the shell files that carry one.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SHELL_FILES_WITH_CONTRACT, withShellBlock } from './contract.ts';

const repoDir = join(import.meta.dirname, '../..');
for (const rel of SHELL_FILES_WITH_CONTRACT) {
  const path = join(repoDir, rel);
  const before = await readFile(path, 'utf8');
  const after = withShellBlock(before, rel);
  if (after !== before) {
    await writeFile(path, after);
    console.log(`updated ${rel}`);
  }
}
