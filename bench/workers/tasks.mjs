// No-op task for the throughput benchmarks: any cost measured is the engine's, not the work's.
export default function noop(x) {
  return x;
}
