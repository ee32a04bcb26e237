import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { MPMS, type Metrics, type RestartReason } from '../dist/index.js';
import { fixture, guardChildren, runNode } from './helpers.js';

const worker = fixture('basic-worker.mjs');

guardChildren();

/**
 * The keys of a JSON object's top level, duplicates included, read from the raw text:
 * JSON.parse keeps only the last of two equal keys, so it cannot see a duplicate.
 */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (line[k] === ' ') k++;
      if (depth === 1 && line[k] === ':') keys.push(JSON.parse(line.slice(i, j + 1)) as string);
      i = j;
    } else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
  }
  return keys;
}

function duplicateKeys(line: string): string[] {
  const keys = topLevelKeys(line);
  return keys.filter((k, i) => keys.indexOf(k) !== i);
}

describe('logging', () => {
  it('the duplicate-key check sees what JSON.parse hides', () => {
    expect(duplicateKeys('{"pid":1,"a":{"pid":2},"b":["pid",{"pid":3}],"s":"x\\"pid\\":"}')).toEqual([]);
    expect(duplicateKeys('{"level":40,"pid":1,"engine":"e","pid":2,"msg":"m"}')).toEqual(['pid']);
  });

  it('default logger: nothing per task at level warn; a thread and a process crash each log one line naming the child, with exactly one pid', async () => {
    const { code, stdout, stderr } = await runNode([fixture('log-script.mjs')]);
    expect(code, stderr).toBe(0);
    const out = JSON.parse(stdout) as { master: number; thread: number; proc: number; statuses: string[] };
    expect(out.statuses).toEqual(['crashed', 'crashed']);
    const [before, after] = stderr.split('MARK\n') as [string, string];
    // 100 ok and 20 throwing tasks: not one line at the default level.
    expect(before).toBe('');
    const raw = after.split('\n').filter(Boolean);
    for (const line of raw) expect(duplicateKeys(line), line).toEqual([]);
    const lines = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const l of lines) {
      expect(l.level).toBeGreaterThanOrEqual(40);
      expect(l.engine).toBe('logtest');
      // pino's own field: the process that wrote the line, always the master.
      expect(l.pid).toBe(out.master);
    }
    const threadLine = lines.find((l) => l.taskId === out.thread);
    expect(threadLine, after).toMatchObject({ processIndex: 0, threadIndex: expect.any(Number) });
    expect(threadLine!.childPid).toEqual(expect.any(Number));
    expect(threadLine!.childPid).not.toBe(out.master);
    const procLine = lines.find((l) => l.taskId === out.proc);
    expect(procLine, after).toMatchObject({ processIndex: 0, childPid: threadLine!.childPid, signal: 'SIGKILL' });
    expect(lines.length).toBeLessThanOrEqual(4);
  });

  it('a user-supplied logger is used as given: its level, fields and destination, children lines included', async () => {
    const raw: string[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        raw.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    });
    const logger = pino({ level: 'info', name: 'userlog' }, dest);
    const m = new MPMS({ worker, processes: 1, threads: 1, logger, name: 'given' });
    await m.start();
    const crashed = await m.put('exit-thread', 5);
    await m.put('echo', 1);
    await m.join();
    for (const line of raw) expect(duplicateKeys(line), line).toEqual([]);
    const lines = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const l of lines) expect(l).toMatchObject({ name: 'userlog', engine: 'given', pid: process.pid });
    // Relayed from the child: the user's destination, the child's fields.
    expect(lines.find((l) => l.taskId === crashed)).toMatchObject({ level: 40, processIndex: 0, threadIndex: 0, childPid: expect.any(Number) });
    // Its level, not ours: info lines (the shutdown steps) are there.
    expect(lines.some((l) => l.level === 30)).toBe(true);
  });
});

describe('metrics().threadsAlive', () => {
  /** The next 'restart' event, with the metrics as they were when it was emitted. */
  const nextRestart = (m: MPMS) =>
    new Promise<{ info: { processIndex: number; threadIndex?: number; reason: RestartReason }; metrics: Metrics }>((resolve) =>
      m.once('restart', (info) => resolve({ info, metrics: m.metrics() })),
    );
  const outcome = (m: MPMS, id: number) => new Promise<void>((resolve) => m.on('task', (meta) => meta.taskId === id && resolve()));

  it('counts the threads the children report alive: down on a thread or process death, up once the replacement is ready', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2 });
    await m.start();
    expect(m.metrics()).toMatchObject({ processesAlive: 1, threadsAlive: 2 });

    let restart = nextRestart(m);
    await m.put('exit-thread', 3);
    let seen = await restart;
    expect(seen.info).toMatchObject({ reason: 'crash', threadIndex: expect.any(Number) });
    // One of two threads is dead: the process is still alive, so processes x threads would say 2.
    expect(seen.metrics).toMatchObject({ processesAlive: 1, threadsAlive: 1 });

    restart = nextRestart(m);
    await m.put('kill-process');
    seen = await restart;
    expect(seen.info.threadIndex).toBeUndefined();
    expect(seen.metrics).toMatchObject({ processesAlive: 0, threadsAlive: 0 });

    // A task can only reach the replacement once it reported every thread ready.
    const id = await m.put('echo', 1);
    await outcome(m, id);
    expect(m.metrics()).toMatchObject({ processesAlive: 1, threadsAlive: 2 });
    await m.join();
    expect(m.metrics()).toMatchObject({ processesAlive: 0, threadsAlive: 0 });
  });

  it('a single thread: 0 while it is replaced, 1 again once its replacement ran a task', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const restart = nextRestart(m);
    await m.put('exit-thread', 3);
    expect((await restart).metrics.threadsAlive).toBe(0);
    const id = await m.put('echo', 1);
    await outcome(m, id);
    expect(m.metrics().threadsAlive).toBe(1);
    await m.join();
  });
});
