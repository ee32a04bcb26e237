// Regenerates the tables of docs/api.md from the settings' declarations (lib/options.ts,
// lib/scale-out/settings.ts, lib/cli/flags.ts). Run after `npm run build`:
// node scripts/gen-api-options.mjs (test/unit/docs-api.test.ts fails while a checked-in table
// differs from what this writes).
import fs from 'node:fs';
import { apiTables, withTables } from './api-options-table.mjs';

const file = new URL('../docs/api.md', import.meta.url);
const doc = fs.readFileSync(file, 'utf8');
const next = withTables(doc, apiTables());
fs.writeFileSync(file, next);
console.log(next === doc ? 'docs/api.md: tables unchanged' : 'docs/api.md: tables updated');
