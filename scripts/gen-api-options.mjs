// Regenerates the options table in docs/api.md from OPTION_SPECS (lib/options.ts), the one
// declaration of every setting. Run after `npm run build`: node scripts/gen-api-options.mjs
// (test/unit/docs-api.test.ts fails while the checked-in table differs from what this writes).
import fs from 'node:fs';
import { OPTION_SPECS } from '../dist/index.js';
import { optionsTable, withOptionsTable } from './api-options-table.mjs';

const file = new URL('../docs/api.md', import.meta.url);
const doc = fs.readFileSync(file, 'utf8');
const next = withOptionsTable(doc, optionsTable(OPTION_SPECS));
fs.writeFileSync(file, next);
console.log(next === doc ? 'docs/api.md: options table unchanged' : 'docs/api.md: options table updated');
