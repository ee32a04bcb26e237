/**
 * Prints N task lines for `mpms run examples/sha256-worker.mjs`: `[i, rounds]` per line.
 *
 *   node examples/make-tasks.mjs [N=1000] [rounds=50]
 *
 * Writes with backpressure, so piping a huge N into a slower consumer costs no memory, and exits
 * quietly when the consumer stops reading (EPIPE), e.g. after Ctrl+C on `mpms run`.
 */
const n = process.argv[2] === undefined ? 1000 : Number(process.argv[2]);
const rounds = process.argv[3] === undefined ? 50 : Number(process.argv[3]);
if (!Number.isSafeInteger(n) || n < 0 || !Number.isSafeInteger(rounds) || rounds < 1) {
  process.stderr.write('usage: node examples/make-tasks.mjs [N >= 0] [rounds >= 1]\n');
  process.exitCode = 2;
} else {
  process.stdout.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
    process.exitCode = 0;
  });
  const CHUNK = 256;
  for (let i = 0; i < n && !process.stdout.destroyed; i += CHUNK) {
    let text = '';
    for (let j = i; j < Math.min(n, i + CHUNK); j++) text += `[${j}, ${rounds}]\n`;
    if (!process.stdout.write(text)) {
      await new Promise((resolve) => {
        const done = () => {
          process.stdout.off('drain', done);
          process.stdout.off('close', done);
          resolve();
        };
        process.stdout.on('drain', done);
        process.stdout.on('close', done);
      });
    }
  }
}
