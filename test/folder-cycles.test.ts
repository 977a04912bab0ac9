import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findCycles, readFolderGraph } from './support/folder-graph.js';

const SOURCE = resolve(import.meta.dirname, '../src');

describe('the folders of src/', () => {
  it('import one another in one direction only: no cycle between folders', () => {
    const graph = readFolderGraph(SOURCE);
    expect(graph.get('turns')).toContain('store');
    expect(findCycles(graph)).toEqual([]);
  });

  it('finds a cycle through several folders, and none in a chain', () => {
    const edges = (pairs: [string, string][]) => {
      const graph = new Map<string, Set<string>>();
      for (const [from, to] of pairs) graph.set(from, new Set([...(graph.get(from) ?? []), to]));
      return graph;
    };
    expect(
      findCycles(
        edges([
          ['server', 'turns'],
          ['turns', 'store'],
          ['store', 'config'],
        ]),
      ),
    ).toEqual([]);
    expect(
      findCycles(
        edges([
          ['server', 'turns'],
          ['turns', 'store'],
          ['store', 'observability'],
          ['observability', 'turns'],
        ]),
      ),
    ).toEqual([['observability', 'store', 'turns']]);
  });
});
