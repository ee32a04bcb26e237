// Regenerates the options table in docs/api.md from OPTION_SPECS (lib/options.ts), the one
// declaration of every setting. Run after `npm run build`: node scripts/gen-api-options.mjs
import fs from 'node:fs';
import { OPTION_SPECS } from '../dist/index.js';

const rows = OPTION_SPECS.map((s) => `| \`${s.name}\` | ${s.defaultText.replace(/\|/g, '\\|')} | ${s.description.replace(/\|/g, '\\|')} | ${s.cli ? `\`--${s.cli.flag}\`${s.cli.short ? ` / \`-${s.cli.short}\`` : ''}` : ''} |`);
const table = ['| option | default | meaning | CLI flag |', '|---|---|---|---|', ...rows].join('\n');
const file = new URL('../docs/api.md', import.meta.url);
const doc = fs.readFileSync(file, 'utf8');
const next = doc.replace(/<!-- options:begin -->[\s\S]*<!-- options:end -->/, `<!-- options:begin -->\n${table}\n<!-- options:end -->`);
fs.writeFileSync(file, next);
console.log(next === doc ? 'docs/api.md: options table unchanged' : 'docs/api.md: options table updated');
