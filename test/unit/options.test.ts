// Settings resolution: every default comes from its spec, derived defaults from earlier settings.
import { describe, expect, it } from 'vitest';
import os from 'node:os';
import { ConfigError, OPTION_SPECS } from '../../dist/index.js';
import { resolveOptions } from '../../dist/options.js';

describe('resolveOptions', () => {
  it('fills every default from OPTION_SPECS, derived ones from the settings before them', () => {
    const o = resolveOptions({ worker: 'w.mjs', threads: 3 });
    expect(o.processes).toBe(os.availableParallelism());
    expect(o.taskQueueMaxsize).toBe(o.processes * 3 * 3 + 30);
    expect(o.resultQueueMaxsize).toBe(o.taskQueueMaxsize);
    const plain = resolveOptions({ worker: 'w.mjs' });
    for (const spec of OPTION_SPECS) {
      if (spec.default !== undefined) expect(plain[spec.name as keyof typeof plain], spec.name).toEqual(spec.default);
    }
    expect(resolveOptions({ worker: 'w.mjs', taskQueueMaxsize: 7 }).resultQueueMaxsize).toBe(7);
  });

  it('gives each engine its own copy of array and object defaults', () => {
    const a = resolveOptions({ worker: 'w.mjs' });
    a.workerGracefulDieErrors.push('X');
    (a.meta as Record<string, unknown>).k = 1;
    const b = resolveOptions({ worker: 'w.mjs' });
    expect(b.workerGracefulDieErrors).toEqual(['WorkerGracefulDie']);
    expect(b.meta).toEqual({});
  });

  it('keeps given values, turns a URL worker into its href', () => {
    const o = resolveOptions({ worker: new URL('file:///x/w.mjs'), retries: 2, name: 'n' });
    expect(o).toMatchObject({ worker: 'file:///x/w.mjs', retries: 2, name: 'n' });
  });

  it('reports every problem at once', () => {
    let err: unknown;
    try {
      resolveOptions({ threads: 0, bogus: 1, taskTimeout: -1 } as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const needle of ['`bogus`', '`worker` is required', '`threads`', '`taskTimeout`']) expect(msg).toContain(needle);
  });

  it('every default text is derived from the value where there is one', () => {
    const threads = OPTION_SPECS.find((s) => s.name === 'threads')!;
    expect(threads.defaultText).toBe(String(threads.default));
    expect(OPTION_SPECS.find((s) => s.name === 'name')!.defaultText).toBe("'mpms'");
  });
});
