/**
 * Worker for examples/io-concurrency.mjs: an I/O-bound task standing in for an HTTP request.
 *
 * Each "request" waits 20–50 ms (a timer, like a network round trip) without using the CPU, so
 * one thread can run many at once (`concurrency`). It listens to the task's AbortSignal, as a
 * real `fetch(url, { signal })` would, so a timeout or a cancellation stops it at once.
 *
 * Some URLs misbehave on purpose:
 *   .../broken/...  answers 503: the task throws (outcome `error`; errors are not retried)
 *   .../flaky/...   hangs on its first attempt (outcome `timeout`, retried once), then answers
 *   .../slow/...    takes 10 s (the example cancels it with an AbortController)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { taskContext } from 'mpms';

/** A deterministic 20–50 ms latency per URL, so runs are comparable. */
function latencyOf(url) {
  let h = 0;
  for (const ch of url) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return 20 + (h % 31);
}

/**
 * @param {string} url
 * @returns {Promise<{ url: string, status: number, latencyMs: number, attempt: number }>}
 */
export default async function fetchLike(url) {
  const { signal, attempt } = taskContext();
  let ms = latencyOf(url);
  if (url.includes('/slow/')) ms = 10_000;
  if (url.includes('/flaky/') && attempt === 1) ms = 60_000; // the first try never answers in time
  // Rejects with an AbortError as soon as the engine aborts the task (timeout, cancel, shutdown).
  await sleep(ms, undefined, { signal });
  if (url.includes('/broken/')) {
    const err = new Error(`HTTP 503 from ${url}`);
    err.code = 'EHTTP503';
    throw err;
  }
  return { url, status: 200, latencyMs: ms, attempt };
}
