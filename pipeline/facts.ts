// Facts a stage needs and provides (pipeline/context.ts declares each one),
// checked twice: when a stage table is loaded (every need is provided by an
// earlier stage of the same table) and after each stage runs (it provided
// what it declared). A violation is a bug in hnforge, not a user error.

import { FACTS, type BuildContext, type FactName } from './context.ts';
import type { StageDef } from './stage.ts';

export function checkFactOrder(stages: readonly StageDef[]): void {
  const provided = new Set<FactName>();
  for (const stage of stages) {
    const missing = (stage.needs ?? []).filter((f) => !provided.has(f));
    if (missing.length) {
      throw new Error(`stage table bug: ${stage.name} needs ${missing.join(', ')}, which no earlier stage provides`);
    }
    for (const f of stage.provides ?? []) provided.add(f);
  }
}

export function checkProvided(stage: StageDef, ctx: BuildContext): void {
  const missing = (stage.provides ?? []).filter((f) => ctx[f] === undefined || ctx[f] === null);
  if (missing.length) throw new Error(`stage ${stage.name} finished without providing ${missing.join(', ')}`);
}

/** The facts of a stage saved with it in the cache (held resources are not). */
export function cachedFacts(stage: StageDef, ctx: BuildContext): Record<string, unknown> {
  const facts = (stage.provides ?? []).filter((f) => FACTS[f] === 'cached' && ctx[f] !== undefined);
  return Object.fromEntries(facts.map((f) => [f, ctx[f]]));
}
