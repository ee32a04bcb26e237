// Thread side of the bare echo: runs a batch of tasks (a sync function of bench/workers/tasks.mjs)
// and answers with one batch.
import { parentPort, workerData } from 'node:worker_threads';
import * as tasks from '../workers/tasks.mjs';

const work = tasks[workerData.fn];

parentPort.on('message', (batch) => {
  const out = new Array(batch.length);
  for (let k = 0; k < batch.length; k++) out[k] = [batch[k][0], work(batch[k][1])];
  parentPort.postMessage(out);
});
parentPort.postMessage('ready');
