// A bare process doing CPU work with no engine at all: told how many tasks of how many ms to run,
// it runs them back to back and reports. The ideal that CPU-bound efficiency is measured against.
import { spin } from '../workers/tasks.mjs';

process.on('message', ({ count, ms }) => {
  for (let i = 0; i < count; i++) spin(ms);
  process.send(count);
});
process.on('disconnect', () => process.exit(0));
process.send('ready');
