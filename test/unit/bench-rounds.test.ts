import { describe, expect, it } from 'vitest';
import { parseBenchArgs, roundOrder } from '../../bench/rounds.ts';

describe('benchmark rounds', () => {
  it('two rounds by default, the peer and hnforge taking turns going first', () => {
    expect(roundOrder(parseBenchArgs([]))).toEqual([
      ['peer', 'hnforge'],
      ['hnforge', 'peer'],
    ]);
    expect(roundOrder(parseBenchArgs(['--rounds', '3'])).map((r) => r[0])).toEqual(['peer', 'hnforge', 'peer']);
  });

  it('--no-peer times hnforge alone, still round by round', () => {
    expect(roundOrder(parseBenchArgs(['--no-peer', '--rounds=1']))).toEqual([['hnforge']]);
  });

  it('a mistaken argument is one line naming it', () => {
    expect(() => parseBenchArgs(['--rounds', '0'])).toThrow('--rounds 0: use a whole number of rounds, at least 1 (default 2)');
    expect(() => parseBenchArgs(['--rounds'])).toThrow(/^--rounds : use a whole number/);
    expect(() => parseBenchArgs(['--fast'])).toThrow("unknown argument '--fast'; usage: npm run bench [-- --no-peer] [--rounds N]");
  });
});
