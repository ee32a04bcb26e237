// Summaries and formatting shared by the benchmark scripts.

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Nearest-rank percentile of `xs` (0 ≤ q ≤ 1). */
export const percentile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

export const fmt = {
  int: (x) => Math.round(x).toLocaleString('en-US'),
  ms: (x) => (x >= 100 ? Math.round(x).toString() : x.toFixed(x >= 10 ? 1 : 3)),
  x2: (x) => x.toFixed(2),
  mib: (x) => x.toFixed(1),
};

/** "median (min–max)" of `xs`, each formatted by `f`; 'failed' when there is none. */
export const span = (xs, f, unit = '') => {
  if (!xs.length) return 'failed';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? `${f(lo)}${unit}` : `${f(median(xs))} (${f(lo)}–${f(hi)})${unit}`;
};
