/**
 * The one FIFO of mpms: a growable ring buffer with O(1) push, shift and unshift, and no
 * allocation per element once it has grown to its working size. Every queue (the master's task
 * queue, the relay's, a thread's, the outboxes) is one of these, so a queue is never an
 * `Array.shift` (O(n)) or a hand-made head index to compact.
 */
export class Ring<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 16) {
    this.buf = new Array(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count === this.buf.length) this.grow();
    this.buf[(this.head + this.count) % this.buf.length] = item;
    this.count++;
  }

  /** Puts an item at the front (handed back, retried). */
  unshift(item: T): void {
    if (this.count === this.buf.length) this.grow();
    this.head = (this.head - 1 + this.buf.length) % this.buf.length;
    this.buf[this.head] = item;
    this.count++;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.buf.length;
    this.count--;
    return item;
  }

  /** The front item, left in place. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.buf[this.head];
  }

  /** The item `i` places from the front (0 = front). */
  at(i: number): T | undefined {
    return i < 0 || i >= this.count ? undefined : this.buf[(this.head + i) % this.buf.length];
  }

  /** Removes the first item equal to `item` wherever it is (O(n): rare paths only, e.g. an abort). */
  remove(item: T): boolean {
    const n = this.buf.length;
    for (let i = 0; i < this.count; i++) {
      if (this.buf[(this.head + i) % n] !== item) continue;
      for (let j = i; j < this.count - 1; j++) this.buf[(this.head + j) % n] = this.buf[(this.head + j + 1) % n];
      this.buf[(this.head + this.count - 1) % n] = undefined;
      this.count--;
      return true;
    }
    return false;
  }

  /** Empties the ring, returning its items in order. */
  drain(): T[] {
    const out: T[] = new Array(this.count);
    for (let i = 0; i < out.length; i++) out[i] = this.shift()!;
    return out;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.buf[(this.head + i) % this.buf.length]!;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.buf.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.buf[(this.head + i) % this.buf.length];
    this.buf = next;
    this.head = 0;
  }
}
