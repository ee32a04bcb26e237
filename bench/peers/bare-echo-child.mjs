// Child side of the bare echo: relays task batches from the master to its threads under a
// per-thread credit window, and result batches back, coalescing while a send is in flight.
// argv: <threads> <threadWindow> <task function name>
import { Worker } from 'node:worker_threads';

const THREADS = Number(process.argv[2]);
const THREAD_WINDOW = Number(process.argv[3]);
const FN = process.argv[4] ?? 'noop';
const threadUrl = new URL('./bare-echo-thread.mjs', import.meta.url);

// Tasks the master sent beyond what the threads have credit for (master window > threads' sum).
let queue = [];
let head = 0;
// Results waiting for the current process.send to complete.
let out = [];
let sending = false;

const slots = [];

function dispatch() {
  for (const slot of slots) {
    const room = THREAD_WINDOW - slot.inflight;
    const avail = queue.length - head;
    if (room <= 0 || avail <= 0) continue;
    const n = Math.min(room, avail);
    const chunk = queue.slice(head, head + n);
    head += n;
    slot.inflight += n;
    slot.worker.postMessage(chunk);
  }
  // Drop the consumed prefix only now and then, so the queue costs O(1) per task.
  if (head === queue.length) {
    queue = [];
    head = 0;
  } else if (head > 4096) {
    queue = queue.slice(head);
    head = 0;
  }
}

// process.send's callback fires when the write is done; until then results pile up in `out` and
// leave as one message, so a busy pipe makes batches bigger instead of the queue of writes longer.
function flush() {
  if (sending || out.length === 0) return;
  const batch = out;
  out = [];
  sending = true;
  process.send(batch, (err) => {
    sending = false;
    if (err) process.exit(1); // master gone: nothing left to serve
    flush();
  });
}

await Promise.all(
  Array.from({ length: THREADS }, () => {
    const worker = new Worker(threadUrl, { workerData: { fn: FN } });
    const slot = { worker, inflight: 0 };
    slots.push(slot);
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m) => {
        if (m !== 'ready') return reject(new Error(`thread said ${m}`));
        worker.on('message', (results) => {
          slot.inflight -= results.length;
          for (let k = 0; k < results.length; k++) out.push(results[k]);
          flush();
          dispatch();
        });
        resolve();
      });
    });
  }),
);

process.on('message', (batch) => {
  for (let k = 0; k < batch.length; k++) queue.push(batch[k]);
  dispatch();
});

// The master closes the channel to stop us; it also closes if the master dies, so no orphan.
process.on('disconnect', async () => {
  await Promise.allSettled(slots.map((s) => s.worker.terminate()));
  process.exit(0);
});

process.send('ready');
