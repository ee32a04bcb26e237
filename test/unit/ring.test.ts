// The one FIFO type: order, growth across the wrap point, front insertion, removal.
import { describe, expect, it } from 'vitest';
import { Ring } from '../../dist/shared/ring.js';

describe('Ring', () => {
  it('is first in, first out across growth and wrap-around', () => {
    const r = new Ring<number>(2);
    const expected: number[] = [];
    let next = 0;
    // Interleave pushes and shifts so the head wraps before and after every growth.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < round % 7; i++) {
        r.push(next);
        expected.push(next++);
      }
      for (let i = 0; i < round % 3 && expected.length > 0; i++) expect(r.shift()).toBe(expected.shift());
      expect(r.length).toBe(expected.length);
      expect([...r]).toEqual(expected);
    }
    expect(r.drain()).toEqual(expected);
    expect(r.length).toBe(0);
    expect(r.shift()).toBeUndefined();
  });

  it('unshift puts an item at the front, even when full', () => {
    const r = new Ring<string>(2);
    r.push('b');
    r.push('c');
    r.unshift('a');
    expect(r.peek()).toBe('a');
    expect(r.at(2)).toBe('c');
    expect(r.at(3)).toBeUndefined();
    expect(r.drain()).toEqual(['a', 'b', 'c']);
  });

  it('remove takes one item out wherever it is and keeps the order of the rest', () => {
    const r = new Ring<number>(4);
    for (let i = 0; i < 6; i++) r.push(i);
    r.shift();
    r.push(6);
    expect(r.remove(3)).toBe(true);
    expect(r.remove(42)).toBe(false);
    expect([...r]).toEqual([1, 2, 4, 5, 6]);
  });
});
