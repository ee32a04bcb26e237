#!/usr/bin/env node
// child_process.fork IPC: serialization 'json' vs 'advanced', measured side by side.
//
// The engine needs 'advanced' for structured-clone fidelity (Buffer, Map, Date, BigInt survive);
// this bench answers what that fidelity costs. Each case is an echo: the master keeps a fixed
// window of messages in flight, the child sends every message straight back. Both modes run
// back to back inside each repetition, so the per-rep ratio advanced/json is the figure to trust
// on a noisy machine; absolute rates are only context.
//
// Usage: node bench/ipc-serialization.mjs [--reps N] [--quick] [--json]

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isDeepStrictEqual } from 'node:util';
import v8 from 'node:v8';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- child side

function runChild(caseName) {
  // JSON cannot carry a Buffer, so a real engine in json mode must base64 the bytes at every
  // hop; the child does the decode + re-encode a task runner would have to do, so json pays
  // the full cost of faithful bytes rather than a free pass as an opaque string.
  const mode = process.env.MPMS_BENCH_SER;
  const reencode = caseName.startsWith('payload') && mode === 'json';
  // 'advanced+text' carries JSON text over the advanced channel; a child must parse it to use
  // the tasks and stringify its results, so the echo does both.
  const text = mode === 'advanced+text';
  process.on('message', (m) => {
    if (text) {
      process.send(JSON.stringify(JSON.parse(m)));
    } else if (reencode) {
      const bytes = Buffer.from(m[1], 'base64');
      process.send([m[0], bytes.toString('base64')]);
    } else {
      process.send(m);
    }
  });
  // The parent's exit closes the channel; leaving then means no orphan even if it was killed.
  process.on('disconnect', () => process.exit(0));
  process.send('ready');
}

// ---------------------------------------------------------------- master side

function makeCases(quick) {
  const k = quick ? 0.2 : 1;
  const tuple = (i) => [i, [i, 'x'], 0, 1];
  const batch = (i) => {
    const b = new Array(256);
    for (let j = 0; j < 256; j++) b[j] = tuple(i * 256 + j);
    return b;
  };
  const payload = (size) => {
    const bytes = Buffer.alloc(size);
    for (let j = 0; j < size; j++) bytes[j] = (j * 31 + 7) & 0xff;
    return bytes;
  };
  const p100k = payload(100 * 1024);
  const p1m = payload(1024 * 1024);
  const b100k = p100k.toString('base64');
  const b1m = p1m.toString('base64');
  const text = (f) => (i) => JSON.stringify(f(i));
  const parse = (m) => JSON.parse(m);
  const same = (m) => m;
  return [
    // window: enough in flight to keep the pipe busy without queueing unbounded memory
    { name: 'batch of 256 tuples', key: 'batch256', count: Math.round(2000 * k), window: 8, tasksPerMsg: 256,
      make: { json: batch, advanced: batch, 'advanced+text': text(batch) },
      decode: { json: same, advanced: same, 'advanced+text': parse } },
    { name: 'single tuple, pipelined', key: 'small', count: Math.round(40000 * k), window: 256, tasksPerMsg: 1,
      make: { json: tuple, advanced: tuple, 'advanced+text': text(tuple) },
      decode: { json: same, advanced: same, 'advanced+text': parse } },
    { name: 'single tuple, ping-pong', key: 'pingpong', count: Math.round(4000 * k), window: 1, tasksPerMsg: 1,
      make: { json: tuple, advanced: tuple, 'advanced+text': text(tuple) },
      decode: { json: same, advanced: same, 'advanced+text': parse } },
    { name: '100 KiB payload', key: 'payload100k', count: Math.round(1000 * k), window: 4, bytes: p100k.length,
      make: { json: (i) => [i, b100k], advanced: (i) => [i, p100k] },
      decode: { json: (m) => Buffer.from(m[1], 'base64'), advanced: (m) => m[1] } },
    { name: '1 MiB payload', key: 'payload1m', count: Math.round(150 * k), window: 4, bytes: p1m.length,
      make: { json: (i) => [i, b1m], advanced: (i) => [i, p1m] },
      decode: { json: (m) => Buffer.from(m[1], 'base64'), advanced: (m) => m[1] } },
  ];
}

function startChild(mode, caseName) {
  const child = fork(SELF, ['--child', caseName], {
    serialization: mode === 'json' ? 'json' : 'advanced',
    env: { ...process.env, MPMS_BENCH_SER: mode },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`ipc child exited early (code ${code})`)));
    child.once('message', (m) => (m === 'ready' ? resolve(child) : reject(new Error(`unexpected ${m}`))));
  });
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.disconnect();
  });
}

// Echo `count` messages keeping `window` in flight; resolves with elapsed ms.
function echo(child, c, mode, count, verify) {
  const make = c.make[mode];
  const decode = c.decode[mode];
  return new Promise((resolve, reject) => {
    let sent = 0;
    let received = 0;
    const t0 = process.hrtime.bigint();
    const onMessage = (m) => {
      if (verify && received === 0) {
        const got = decode(m);
        const want = decode(make(0));
        const ok = Buffer.isBuffer(want) ? Buffer.compare(got, want) === 0 : isDeepStrictEqual(got, want);
        if (!ok) return finish(new Error(`${c.key}/${mode}: echo differs from what was sent`));
      } else {
        decode(m); // text must become values (or bytes) again to be usable
      }
      received++;
      if (received === count) return finish(null);
      if (sent < count) child.send(make(sent++));
    };
    const finish = (err) => {
      child.off('message', onMessage);
      if (err) reject(err);
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    child.on('message', onMessage);
    while (sent < Math.min(c.window, count)) child.send(make(sent++));
  });
}

async function runOne(c, mode) {
  const child = await startChild(mode, c.key);
  try {
    // warm-up: JIT both sides and grow the pipe buffers before the clock starts
    await echo(child, c, mode, Math.max(c.window, Math.ceil(c.count / 10)), true);
    const ms = await echo(child, c, mode, c.count, false);
    return ms;
  } finally {
    await stopChild(child);
  }
}

// Round-trips values that only structured clone reproduces, one at a time so one failure does
// not hide the others, to show what json loses.
async function fidelity(mode) {
  const probes = [
    ['Buffer', Buffer.from([1, 2, 3]), (v) => Buffer.isBuffer(v) && v.length === 3 && v[2] === 3],
    ['Map', new Map([['k', 1]]), (v) => v instanceof Map && v.get('k') === 1],
    ['Date', new Date(0), (v) => v instanceof Date && v.getTime() === 0],
    ['BigInt', 10n ** 20n, (v) => v === 10n ** 20n],
  ];
  const child = await startChild(mode, 'fidelity');
  const out = [];
  try {
    for (const [name, value, check] of probes) {
      try {
        const back = await new Promise((resolve, reject) => {
          child.once('message', resolve);
          try {
            child.send([value]);
          } catch (err) {
            child.removeListener('message', resolve);
            reject(err);
          }
        });
        out.push(check(back[0]) ? `${name} ok` : `${name} lost (came back as ${JSON.stringify(back[0])})`);
      } catch (err) {
        out.push(`${name} cannot be sent (${err.message})`);
      }
    }
  } finally {
    await stopChild(child);
  }
  return out.join(', ');
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const span = (xs) => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;

// In-process codec cost for the batch, without pipe or event loop: isolates how much of the
// IPC gap is the V8 serializer itself.
function codecRates(batch, iters) {
  const time = (f) => {
    for (let i = 0; i < iters / 10; i++) f();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) f();
    return (iters / (performance.now() - t0)) * 1000;
  };
  return {
    json: time(() => JSON.parse(JSON.stringify(batch))),
    v8: time(() => v8.deserialize(v8.serialize(batch))),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const reps = Number(values.reps);
  const cases = makeCases(values.quick);
  const MODES = ['json', 'advanced', 'advanced+text'];

  const guard = setTimeout(() => {
    console.error('ipc-serialization: exceeded 600 s, aborting');
    process.exit(2); // children leave on 'disconnect' when our end of the channel closes
  }, 600_000);
  guard.unref();

  // rates[case][mode] = msgs/s, one entry per rep
  const rates = Object.fromEntries(
    cases.map((c) => [c.key, Object.fromEntries(Object.keys(c.make).map((m) => [m, []]))]),
  );
  const codec = { json: [], v8: [] };
  const sampleBatch = cases[0].make.advanced(0);
  for (let r = 0; r < reps; r++) {
    for (const c of cases) {
      const modes = MODES.filter((m) => m in c.make);
      // rotate which mode goes first so drift within a rep does not favour one side
      const order = modes.map((_, i) => modes[(i + r) % modes.length]);
      for (const mode of order) {
        const ms = await runOne(c, mode);
        rates[c.key][mode].push((c.count / ms) * 1000);
      }
    }
    const cr = codecRates(sampleBatch, values.quick ? 2000 : 10000);
    codec.json.push(cr.json);
    codec.v8.push(cr.v8);
    process.stderr.write(`rep ${r + 1}/${reps} done\n`);
  }

  const ratioOf = (c, mode) => rates[c.key][mode].map((a, i) => a / rates[c.key].json[i]);
  const cell = (c, mode) => {
    const xs = rates[c.key][mode];
    if (!xs) return '—';
    let extra = '';
    if (c.bytes) extra = `; ${span(xs.map((x) => (x * c.bytes) / 1e6))} MB/s`;
    else if (c.tasksPerMsg > 1) extra = `; ${span(xs.map((x) => x * c.tasksPerMsg))} tasks/s`;
    else if (c.window === 1) extra = `; ${span(xs.map((x) => 1e6 / x))} µs RTT`;
    return `${span(xs)} msg/s${extra}`;
  };

  console.log(`\n### fork IPC: json vs advanced (node ${process.version}, ${reps} reps, median (min–max))\n`);
  console.log('| case | json | advanced | advanced / json | advanced+text | advanced+text / json |');
  console.log('|---|---|---|---|---|---|');
  const med = {};
  for (const c of cases) {
    const ra = ratioOf(c, 'advanced');
    const rt = rates[c.key]['advanced+text'] ? ratioOf(c, 'advanced+text') : null;
    med[c.key] = { advanced: median(ra), text: rt && median(rt), advTasks: median(rates[c.key].advanced) * (c.tasksPerMsg ?? 0) };
    console.log(
      `| ${c.name} (n=${c.count}, window ${c.window}) | ${cell(c, 'json')} | ${cell(c, 'advanced')} | ` +
        `${span(ra)}× | ${cell(c, 'advanced+text')} | ${rt ? span(rt) + '×' : '—'} |`,
    );
  }
  const codecRatio = codec.v8.map((v, i) => v / codec.json[i]);
  console.log(
    `\nCodec only, in-process, batch of 256 tuples (serialize + deserialize): JSON ${span(codec.json)} ops/s, ` +
      `v8 ${span(codec.v8)} ops/s, v8/JSON ${span(codecRatio)}×.`,
  );
  console.log('Ratios are per rep (both modes run back to back), then median (min–max) over reps.');
  console.log('MB/s counts payload bytes per round trip (each crosses the pipe twice); json pays base64');
  console.log('encode/decode at both ends, as an engine carrying bytes faithfully would. advanced+text =');
  console.log("advanced channel carrying JSON.stringify'd text (parsed and re-stringified by the child).");

  const fj = await fidelity('json');
  const fa = await fidelity('advanced');
  console.log(`\nFidelity, json: ${fj}.\nFidelity, advanced: ${fa}.`);

  // 'advanced' is the default for fidelity; it loses only if batching cannot lift it well past
  // what the rest of the engine can do per task (the bare echo floor is of that order).
  const batchedAdv = med.batch256.advTasks;
  const verdict =
    batchedAdv >= 100_000
      ? "use 'advanced', and batch tasks on the IPC hop"
      : "reconsider: even batched, 'advanced' carries under 100k tasks/s";
  console.log(
    `\nRecommendation: ${verdict}. advanced/json per message: batch of 256 ${med.batch256.advanced.toFixed(2)}×, ` +
      `single pipelined ${med.small.advanced.toFixed(2)}×, ping-pong ${med.pingpong.advanced.toFixed(2)}×, ` +
      `100 KiB ${med.payload100k.advanced.toFixed(2)}×, 1 MiB ${med.payload1m.advanced.toFixed(2)}×. ` +
      `Batched, advanced still echoes ~${fmt(batchedAdv)} tasks/s over one channel; ` +
      `it is ${med.payload100k.advanced.toFixed(1)}–${med.payload1m.advanced.toFixed(1)}× faster for binary payloads ` +
      `and the only mode that keeps Buffer/Map/Date/BigInt. ` +
      `JSON text over the advanced channel reaches ${med.batch256.text.toFixed(2)}× json's rate on batches: a possible fast path ` +
      `for all-primitive args, worth it only if the engine's own profile shows the codec.`,
  );
  if (values.json) console.log(JSON.stringify({ rates, codec }));
  clearTimeout(guard);
}

// Dispatch last: main() uses module-level consts that must be initialised first.
if (process.argv[2] === '--child') {
  runChild(process.argv[3]);
} else {
  await main();
}
