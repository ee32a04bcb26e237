// Thread side of the bare echo: runs a batch of no-op tasks and answers with one batch.
import { parentPort } from 'node:worker_threads';

const work = (x) => x;

parentPort.on('message', (batch) => {
  const out = new Array(batch.length);
  for (let k = 0; k < batch.length; k++) out[k] = [batch[k][0], work(batch[k][1])];
  parentPort.postMessage(out);
});
parentPort.postMessage('ready');
