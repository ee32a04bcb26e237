// The benchmark workloads' task functions, one module for every peer (mpms, tinypool, piscina
// and the bare echo load it by export name; workerpool through workerpool-tasks.mjs). The work is
// trivial or fixed, so what differs between peers is the engine's cost, not the work's.

/** No-op: returns its argument. */
export default function noop(x) {
  return x;
}
export { noop };

/** Burns about `ms` of CPU (a busy loop on the clock, so the cost is the same on every peer). */
export function spin(ms) {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return x;
}

/** Waits `ms` without using CPU: async I/O stand-in. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms, ms));
}

/** Returns a Buffer of `bytes` bytes: the result payload workloads. */
export function alloc(bytes) {
  return Buffer.alloc(bytes, 7);
}
