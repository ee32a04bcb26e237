// A horizontal bar chart as standalone SVG (viewable on GitHub): one bar per case at its median,
// a whisker from min to max over the repetitions. No dependency: the suite writes it directly.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * @param {{ title: string, unit: string, rows: { label: string, median: number, min: number, max: number, ours?: boolean }[],
 *   format?: (x: number) => string }} chart
 */
export function barChart({ title, unit, rows, format = (x) => x.toLocaleString('en-US', { maximumFractionDigits: 2 }) }) {
  const labelW = 300;
  const barW = 420;
  const rowH = 26;
  const top = 46;
  const width = labelW + barW + 140;
  const height = top + rows.length * rowH + 30;
  const max = Math.max(...rows.map((r) => r.max), 1e-9);
  const x = (v) => labelW + (v / max) * barW;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="12" y="38" fill="#555">${esc(unit)}; bar = median, whisker = min–max over repetitions</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const mid = y + rowH / 2;
    out.push(
      `<text x="${labelW - 8}" y="${mid + 4}" text-anchor="end"${r.ours ? ' font-weight="bold"' : ''}>${esc(r.label)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${Math.max(1, x(r.median) - labelW).toFixed(1)}" height="${rowH - 8}" fill="${r.ours ? '#2b6cb0' : '#a0aec0'}"/>`,
      `<line x1="${x(r.min).toFixed(1)}" x2="${x(r.max).toFixed(1)}" y1="${mid}" y2="${mid}" stroke="#1a202c" stroke-width="1.5"/>`,
      `<text x="${(x(r.max) + 6).toFixed(1)}" y="${mid + 4}" fill="#1a202c">${esc(format(r.median))}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
