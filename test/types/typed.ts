// Type test: `tsc -p test/types` must pass. Each @ts-expect-error line must be an error, or tsc fails.
import { type Meta, MPMS } from '../../dist/index.js';

export async function typed(): Promise<void> {
  const m = new MPMS<typeof import('./worker.js')>({
    worker: './worker.js',
    collector: (meta, result) => {
      const r: number | Error = result;
      // @ts-expect-error the result may be an Error (any status but ok)
      const n: number = result;
      if (!(result instanceof Error)) {
        const ok: number = result;
        void ok;
      }
      void [meta.status, r, n];
    },
  });
  const sum: number = await m.run([1, 2]);
  const big: { w: number; h: number } = await m.run([{ w: 1, h: 2 }, 3], { export: 'resize' });
  const s: string = await m.run(['x'], { export: 'greet', timeout: 100 });
  const id: number | undefined = await m.put(1, 2);
  await m.submit(['x'], { export: 'greet' });
  void [sum, big, s, id];

  // @ts-expect-error wrong argument type for the default export
  await m.run(['1', 2]);
  // @ts-expect-error too few arguments
  await m.run([1]);
  // @ts-expect-error the result of greet is a string, not a number
  const wrong: number = await m.run(['x'], { export: 'greet' });
  // @ts-expect-error no such export
  await m.run([1], { export: 'nope' });
  // @ts-expect-error not a function
  await m.run([], { export: 'version' });
  // @ts-expect-error a hook is not a task function
  await m.run([], { export: 'threadInitializer' });
  // @ts-expect-error put() follows the default export
  await m.put('a', 'b');
  // @ts-expect-error submit() follows the export it names
  await m.submit([1, 2], { export: 'greet' });
  void wrong;

  for await (const r of m.iterResults()) {
    const x: number | Error = r.result;
    // @ts-expect-error a non-ok result is an Error, not a number
    const n: number = r.result;
    // @ts-expect-error not a string either
    const s2: string | Error = r.result;
    void [x, n, s2];
  }

  // A typed engine whose default task is another export.
  const g = new MPMS<typeof import('./worker.js'), 'greet'>({ worker: './worker.js', export: 'greet' });
  const hi: string = await g.run(['you']);
  // @ts-expect-error greet takes a string
  await g.put(1);
  void hi;
}

export async function untyped(): Promise<void> {
  // Without the type parameter nothing changes: unknown[] in, unknown out.
  const m = new MPMS({ worker: './w.mjs', collector: (meta: Meta, result: unknown) => void [meta, result] });
  const r: unknown = await m.run([1, 'a', { x: 1 }], { export: 'anything' });
  await m.put(1, 'two', [3]);
  await m.submit([], { export: 'other' });
  // @ts-expect-error the result is unknown until narrowed
  const n: number = await m.run([1]);
  void [r, n];
}
