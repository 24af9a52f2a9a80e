// Rules that are data, not code (data/*.yaml): read once, checked against a
// zod schema, a bad file is one line naming it and the field.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';

export const DATA_DIR = join(import.meta.dirname, '..', 'data');

/** The path of data file `name` (for stages' `files`, so its content enters their keys). */
export const dataPath = (name: string) => join(DATA_DIR, name);

/** Reads and validates data/<name>; throws one line naming the file and the first bad field. */
export function loadDataFile<T extends z.ZodType>(name: string, schema: T): z.infer<T> {
  const path = dataPath(name);
  const parsed = schema.safeParse(parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`data/${name}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data;
}
