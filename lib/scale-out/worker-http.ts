/**
 * `mpms worker --metrics-port`: an HTTP endpoint for Prometheus (`/metrics`: the local engine's
 * metrics plus what the worker engine did with its jobs) and for supervisors (`/health`: 200
 * while it serves, 503 with the reason otherwise).
 */
import http from 'node:http';
import { metricsText } from '../master/metrics-text.js';
import type { WorkerEngine } from './worker-engine.js';

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** The worker engine's figures in the Prometheus text format, after the local engine's own. */
export function workerMetricsText(w: WorkerEngine, engineName: string): string {
  const s = w.serveStats();
  const h = w.health();
  const l = `engine="${label(engineName)}",worker="${label(w.id)}"`;
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}{${l}} ${value}`);
  metric('mpms_worker_jobs_fetched_total', 'counter', 'Jobs taken from the queue.', s.fetched);
  metric('mpms_worker_jobs_started_total', 'counter', 'Jobs marked started and handed to the local engine.', s.started);
  metric('mpms_worker_outcomes_published_total', 'counter', "Outcomes published to their runs' outboxes.", s.published);
  metric('mpms_worker_jobs_refused_total', 'counter', 'Jobs refused: sent for another worker module, export or mpms version.', s.refused);
  metric('mpms_worker_jobs_handed_back_total', 'counter', 'Jobs handed back to the queue unstarted.', s.handedBack);
  metric('mpms_worker_engines_reaped_total', 'counter', 'Silent worker engines this one declared dead.', s.reaped);
  metric('mpms_worker_jobs_held', 'gauge', 'Jobs held, not yet started.', s.held);
  metric('mpms_worker_jobs_running', 'gauge', 'Jobs started and not yet finished.', s.running);
  metric('mpms_worker_up', 'gauge', '1 while the worker engine serves (Redis connected, heartbeat recent, not stopping).', h.ok ? 1 : 0);
  metric('mpms_worker_heartbeat_age_seconds', 'gauge', 'Seconds since the last heartbeat Redis confirmed.', h.lastBeatMs / 1000);
  return metricsText(w.metrics(), engineName) + out.join('\n') + '\n';
}

/**
 * Serves `/metrics` and `/health` on `port` (0: any free port). Resolves with the server once it
 * listens; rejects (e.g. the port is taken) with the cause.
 */
export function serveWorkerHttp(w: WorkerEngine, engineName: string, port: number, host: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(workerMetricsText(w, engineName));
    } else if (url === '/health' || url === '/healthz') {
      const h = w.health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ...h, worker: w.id, serves: w.serves }) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('mpms worker: GET /metrics or /health\n');
    }
  });
  // A scrape must never keep the process alive at exit.
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
