// The host programs a build runs, derived from the catalogue entries its stages
// declare (pipeline/stage.ts `commands`) plus the runner's own commands; and
// the Debian packages that provide them (HOST_TOOL_PACKAGES). Nothing here is
// a hand-written list of tool names.

import { sha256Command } from './boot/sidecar.ts';
import { fileExtents, zstdCompress } from './publish/artifact.ts';
import { type CatalogueEntry, programsOf } from './seam/catalogue.ts';
import { cmd, HOST_TOOL_PACKAGES } from './seam/command.ts';
import type { StageDef } from './stage.ts';

/**
 * What the runner runs around the stages: checkpoints (sync, trim, freeze,
 * sparse copy), restoring one (copy), the output (copy, the sidecar's sha256),
 * publishing to a store when one is named (extent map, zstd).
 */
export const ENGINE_COMMANDS: readonly CatalogueEntry[] = [cmd.sync, cmd.fstrim, cmd.fsfreeze, cmd.copySparse, sha256Command, fileExtents, zstdCompress];

/** Every catalogue entry a build with these stages may run. */
export const commandsOf = (stages: readonly StageDef[]): CatalogueEntry[] => [...ENGINE_COMMANDS, ...stages.flatMap((s) => s.commands ?? [])];

/** The host programs a build with these stages runs, each once, sorted. */
export const toolsOf = (stages: readonly StageDef[]): string[] => programsOf(commandsOf(stages));

/** The Debian packages providing `tools`; `unknown` lists tools HOST_TOOL_PACKAGES has no package for. */
export function packagesOfTools(tools: readonly string[]): { packages: string[]; unknown: string[] } {
  const unknown = tools.filter((t) => !HOST_TOOL_PACKAGES[t]);
  const packages = [...new Set(tools.flatMap((t) => HOST_TOOL_PACKAGES[t] ?? []))].sort();
  return { packages, unknown };
}
