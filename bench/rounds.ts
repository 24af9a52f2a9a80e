// The side-by-side benchmark's plan: which builds run in which order. The peer
// and hnforge take turns going first, round after round, so that neither alone
// profits from a mirror (or proxy) the other has just warmed up.

export type Contender = 'peer' | 'hnforge';

export interface BenchOptions {
  /** Run the peer (mkosi) too; `--no-peer` times hnforge alone. */
  peer: boolean;
  rounds: number;
}

/** `--no-peer`, `--rounds N` (default 2); anything else is a mistake, said in one line. */
export function parseBenchArgs(args: string[]): BenchOptions {
  const opts: BenchOptions = { peer: true, rounds: 2 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--no-peer') opts.peer = false;
    else if (a === '--rounds' || a.startsWith('--rounds=')) {
      const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--rounds ${value ?? ''}: use a whole number of rounds, at least 1 (default 2)`);
      opts.rounds = n;
    } else throw new Error(`unknown argument '${a}'; usage: npm run bench [-- --no-peer] [--rounds N]`);
  }
  return opts;
}

/** Round by round, the order of the cold builds: the peer first in odd rounds, hnforge first in even ones. */
export function roundOrder(opts: BenchOptions): Contender[][] {
  return Array.from({ length: opts.rounds }, (_, i): Contender[] => {
    if (!opts.peer) return ['hnforge'];
    return i % 2 === 0 ? ['peer', 'hnforge'] : ['hnforge', 'peer'];
  });
}
