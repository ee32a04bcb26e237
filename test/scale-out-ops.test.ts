/**
 * Operating a fleet (issue 18, item 5), with real Redis servers and real `mpms worker`
 * processes: Redis settings from files and the environment (nothing secret in `ps`), TLS with
 * CA/cert/key files, the cause of a failed connection said at once, `--stats`,
 * `--metrics-port` (/metrics, /health), `mpms status`, and the deployment examples of
 * docs/scale-out.md (generated or run here).
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { MPMS } from '../dist/index.js';
import { bullmqTransport } from '../dist/scale-out/index.js';
import { CLI, WORKER, exited, freePort, HAS_REDIS_SERVER, scaleOutSuite, startRedisServer, until, workerId } from './scale-out-helpers.js';

const suite = await scaleOutSuite('test/scale-out-ops.test.ts');
const REDIS = suite.url;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The TLS test makes its certificates with openssl. */
const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;

/** Runs `mpms <args>` to its end (bounded); returns its exit code and output. */
function mpms(args: string[], env: NodeJS.ProcessEnv = {}, ms = 30_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MPMS_REDIS_URL: '', MPMS_REDIS_PASSWORD: '', ...env } });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`mpms ${args.join(' ')} did not end within ${ms} ms: ${err}`));
    }, ms);
    p.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Starts `mpms worker` with a given environment (and no inherited Redis settings); resolves once it serves. */
function worker(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const p = spawn(process.execPath, [CLI, 'worker', ...args], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MPMS_REDIS_URL: '', MPMS_REDIS_PASSWORD: '', ...env } });
  suite.started.push(p);
  let err = '';
  p.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    suite.logs.set(p, err);
  });
  return new Promise((resolve, reject) => {
    p.stderr!.on('data', () => err.includes('serving queue') && resolve(p));
    p.once('exit', (code) => reject(new Error(`mpms worker exited (${code}): ${err}`)));
  });
}

function tmpdir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-ops-'));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A redis-server of the test's own, stopped when the test ends. */
async function ownRedis(args: string[], ready?: (port: number) => Promise<boolean>): Promise<number> {
  const port = await freePort();
  const dir = tmpdir();
  let server: ChildProcess | undefined;
  if (ready) {
    server = spawn('redis-server', ['--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args.map((a) => a.replace('{port}', String(port)))], { stdio: 'ignore' });
    await until('redis-server listens', () => ready(port), 10_000);
  } else server = await startRedisServer(port, dir, ['--save', '', '--appendonly', 'no', ...args]);
  expect(server, 'redis-server did not start').toBeDefined();
  onTestFinished(async () => {
    server!.kill('SIGKILL');
    await exited(server!, 5000);
  });
  return port;
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe.skipIf(!REDIS || !HAS_REDIS_SERVER)('scale-out operations', () => {
  it('Redis URL and password from files or the environment (none on the command line); a wrong password fails at once, saying so', { timeout: 60_000 }, async () => {
    const secret = 's3cret-pass';
    const port = await ownRedis(['--requirepass', secret]);
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'url'), `redis://127.0.0.1:${port}\n`);
    fs.writeFileSync(path.join(dir, 'pass'), `${secret}\n`);
    fs.writeFileSync(path.join(dir, 'wrong'), 'nope\n');
    const queue = suite.newQueue();

    const t0 = Date.now();
    const wrong = await mpms(['worker', WORKER, '--redis-file', path.join(dir, 'url'), '--redis-password-file', path.join(dir, 'wrong'), '--queue', queue, '-p', '1', '-t', '1']);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/authentication failed \(WRONGPASS/);
    const none = await mpms(['worker', WORKER, '--redis', `redis://127.0.0.1:${port}`, '--queue', queue, '-p', '1', '-t', '1']);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/authentication failed \(NOAUTH/);
    // At once: not after the 10 s connect bound (both runs together, engine start-ups included).
    expect(Date.now() - t0).toBeLessThan(20_000);
    const missing = await mpms(['worker', WORKER, '--queue', queue]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no Redis given: --redis URL, --redis-file PATH or \$MPMS_REDIS_URL/);

    const fromFiles = await worker([WORKER, '--redis-file', path.join(dir, 'url'), '--redis-password-file', path.join(dir, 'pass'), '--queue', queue, '-p', '1', '-t', '1']);
    const fromEnv = await worker([WORKER, '--queue', queue, '-p', '1', '-t', '1'], { MPMS_REDIS_URL: `redis://127.0.0.1:${port}`, MPMS_REDIS_PASSWORD: secret });
    for (const p of [fromFiles, fromEnv]) {
      expect(fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')).not.toContain(secret);
      expect(suite.logs.get(p)).not.toContain(secret);
    }
    const m = new MPMS({ worker: WORKER, transport: bullmqTransport({ connection: { host: '127.0.0.1', port, password: secret }, queue }), collector: () => {} });
    await m.start();
    for (let i = 0; i < 20; i++) await m.put('add', i);
    expect(await m.join()).toMatchObject({ total: 20, ok: 20 });
    for (const p of [fromFiles, fromEnv]) {
      p.kill('SIGTERM');
      expect(await exited(p, 20_000)).toBe(0);
    }
  });

  it.skipIf(!HAS_OPENSSL)('TLS with --tls-ca/--tls-cert/--tls-key serves; an untrusted server certificate fails at once as TLS', { timeout: 60_000 }, async () => {
    const dir = tmpdir();
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mpms test CA');
    fs.writeFileSync(path.join(dir, 'san'), 'subjectAltName=IP:127.0.0.1\n');
    for (const who of ['server', 'client']) {
      ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
      ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '1', '-extfile', 'san');
    }
    const f = (n: string) => path.join(dir, n);
    const port = await ownRedis(['--port', '0', '--tls-port', '{port}', '--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'), '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'yes'], listening);
    const queue = suite.newQueue();
    const url = `rediss://127.0.0.1:${port}`;
    const untrusted = await mpms(['worker', WORKER, '--redis', url, '--queue', queue, '-p', '1', '-t', '1']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.err).toMatch(/TLS failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    const w = await worker([WORKER, '--redis', url, '--tls-ca', f('ca.pem'), '--tls-cert', f('client.pem'), '--tls-key', f('client.key'), '--queue', queue, '-p', '1', '-t', '1']);
    const ca = fs.readFileSync(f('ca.pem'));
    const tls = { ca, cert: fs.readFileSync(f('client.pem')), key: fs.readFileSync(f('client.key')) };
    const m = new MPMS({ worker: WORKER, transport: bullmqTransport({ connection: { host: '127.0.0.1', port, tls }, queue }), collector: () => {} });
    await m.start();
    for (let i = 0; i < 10; i++) await m.put('add', i);
    expect(await m.join()).toMatchObject({ total: 10, ok: 10 });
    w.kill('SIGTERM');
    expect(await exited(w, 20_000)).toBe(0);
  });

  it('--stats, --metrics-port (/metrics in Prometheus text, /health 200 then 503 while draining) and mpms status (backlog, engines, rates)', { timeout: 60_000 }, async () => {
    const queue = suite.newQueue();
    const env = { MPMS_REDIS_URL: REDIS! };
    const a = await worker([WORKER, '--queue', queue, '-p', '1', '-t', '2', '--stats', '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--drain-timeout', '10s'], env);
    const b = await worker([WORKER, '--queue', queue, '-p', '1', '-t', '1'], env);
    const base = `http://${/metrics on http:\/\/([\d.:]+)\/metrics/.exec(suite.logs.get(a)!)![1]}`;
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, redis: 'ready', worker: workerId(a) });

    const m = new MPMS({ worker: WORKER, transport: bullmqTransport({ connection: REDIS!, queue, maxOutstanding: 50 }), collector: () => {} });
    await m.start();
    // Fed until both readings are taken, so the engines publish throughout them.
    let feed = true;
    let fed = 0;
    const feeding = (async () => {
      while (feed) {
        await m.put('sleep', 10);
        fed++;
      }
    })();
    const status = await mpms(['status', '--queue', queue, '--interval', '1500ms'], env);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(new RegExp(`queue ${queue} on redis://[^:]+:\\d+: \\d+ waiting; 2 worker engine\\(s\\) alive, 0 silent`));
    for (const p of [a, b]) expect(status.out).toMatch(new RegExp(`${workerId(p)}\\s+alive\\s+0\\.1\\.0\\s+mpms/2/[0-9a-f]{16}/default\\s+1×[12]`));
    expect(status.out).toMatch(/rate: [\d.,]+ outcomes\/s across the fleet/);
    const json = JSON.parse((await mpms(['status', '--queue', queue, '--json', '--interval', '1500ms'], env)).out) as { waiting: number; workers: { id: string; host: string; pid: number; version: string; load: { published: number } }[]; rates: Record<string, number> };
    expect(json.workers.map((w) => w.pid).sort()).toEqual([a.pid, b.pid].sort());
    expect(json.workers[0]).toMatchObject({ host: os.hostname(), version: '0.1.0' });
    expect(Object.values(json.rates).some((r) => r > 0), 'some engine published during the reading').toBe(true);
    feed = false;
    await feeding;
    expect(await m.join()).toMatchObject({ total: fed, ok: fed });

    const text = await (await fetch(`${base}/metrics`)).text();
    const families = new Map((parsePrometheusTextFormat(text) as { name: string; metrics: { value: string }[] }[]).map((f) => [f.name, f]));
    for (const name of ['mpms_tasks_finished_total', 'mpms_worker_jobs_fetched_total', 'mpms_worker_outcomes_published_total', 'mpms_worker_up', 'mpms_worker_jobs_refused_total']) expect(families.has(name), name).toBe(true);
    expect(Number(families.get('mpms_worker_up')!.metrics[0]!.value)).toBe(1);
    expect(Number(families.get('mpms_worker_outcomes_published_total')!.metrics[0]!.value)).toBeGreaterThan(0);
    expect(suite.logs.get(a)).toMatch(/mpms worker stats: [\d.]+ s {2}serving {2}held \d+ {2}running \d+ {2}fetched \d+ {2}published \d+/);

    // Draining: /health says so (503) while a started job finishes.
    const m2 = new MPMS({ worker: WORKER, transport: bullmqTransport({ connection: REDIS!, queue }), collector: () => {} });
    await m2.start();
    b.kill('SIGTERM');
    expect(await exited(b, 20_000)).toBe(0);
    await m2.put('sleep', 3000);
    await until('a runs the long job', async () => (await (await fetch(`${base}/metrics`)).text()).includes(`mpms_worker_jobs_running{engine="mpms",worker="${workerId(a)}"} 1`));
    a.kill('SIGTERM');
    await until('/health says draining', async () => {
      const r = await fetch(`${base}/health`).catch(() => undefined);
      return r?.status === 503 && ((await r.json()) as { reason: string }).reason === 'stopping';
    }, 5000);
    expect(await exited(a, 20_000)).toBe(0);
    expect(await m2.join()).toMatchObject({ total: 1, ok: 1 });
  });

  it('deployment examples: the systemd unit is what --print-systemd prints and its ExecStart serves; the Dockerfile is the docs\' and its CMD serves and passes its HEALTHCHECK', { timeout: 60_000 }, async () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/scale-out.md'), 'utf8');
    const block = (lang: string, after: string) => {
      const at = doc.indexOf(after);
      expect(at, `docs/scale-out.md: ${after}`).toBeGreaterThan(0);
      const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(doc.slice(at));
      return m![1]!;
    };
    const gen = /Generated by `mpms worker ([^`]+) --print-systemd`/.exec(doc)![1]!.split(' ');
    const printed = await mpms(['worker', ...gen, '--print-systemd']);
    expect(printed.code).toBe(0);
    expect(block('ini', 'Generated by `mpms worker')).toBe(printed.out);
    // Its ExecStart, with the module swapped for a test fixture and the port for a free one.
    const exec = /^ExecStart=\/usr\/bin\/env mpms worker (.*)$/m.exec(printed.out)![1]!.split(' ');
    const port = await freePort();
    const queue = suite.newQueue();
    const args = exec.map((a) => (a === '/srv/app/worker.mjs' ? WORKER : a === '9464' ? String(port) : a === 'thumbnails' ? queue : a)).map((a) => (a === '8' ? '1' : a));
    const unitWorker = await worker(args, { MPMS_REDIS_URL: REDIS! });
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    unitWorker.kill('SIGTERM');
    expect(await exited(unitWorker, 20_000)).toBe(0);

    const dockerfile = fs.readFileSync(path.join(ROOT, 'examples/scale-out/Dockerfile'), 'utf8');
    expect(block('dockerfile', 'examples/scale-out/Dockerfile')).toBe(dockerfile);
    // The CMD as the container runs it (in /app: node_modules/mpms is this package, ./worker.mjs the app's module).
    const app = tmpdir();
    fs.mkdirSync(path.join(app, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'mpms'));
    fs.copyFileSync(WORKER, path.join(app, 'worker.mjs'));
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    const hc = JSON.parse(/^HEALTHCHECK .* CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(cmd[0]).toBe('node');
    const dport = await freePort();
    const dqueue = suite.newQueue();
    const dargs = cmd.slice(1).map((a) => (a === '9464' ? String(dport) : a === 'thumbnails' ? dqueue : a === '4' ? '1' : a));
    const container = spawn(process.execPath, dargs, { cwd: app, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MPMS_REDIS_URL: REDIS!, MPMS_REDIS_PASSWORD: '' } });
    suite.started.push(container);
    let cerr = '';
    container.stderr!.on('data', (d: Buffer) => (cerr += d.toString()));
    await until('the container CMD serves', () => cerr.includes('serving queue'), 20_000);
    const check = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, hc.slice(1).map((a) => a.replace('9464', String(dport))), { stdio: 'ignore' });
      p.once('exit', resolve);
    });
    expect(check, 'HEALTHCHECK exit code').toBe(0);
    const m = new MPMS({ worker: path.join(app, 'worker.mjs'), transport: bullmqTransport({ connection: REDIS!, queue: dqueue }), collector: () => {} });
    await m.start();
    await m.put('add', 1);
    expect(await m.join()).toMatchObject({ total: 1, ok: 1 });
    container.kill('SIGTERM');
    expect(await exited(container, 20_000)).toBe(0);
  });
});
