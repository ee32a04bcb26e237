// docs/api.md's options table is generated from OPTION_SPECS: fail when someone changed a
// setting and did not run `node scripts/gen-api-options.mjs`.
import fs from 'node:fs';
import { expect, it } from 'vitest';
import { OPTION_SPECS } from '../../dist/index.js';
// @ts-expect-error a plain .mjs script, no types
import { optionsTable, withOptionsTable } from '../../scripts/api-options-table.mjs';

it('docs/api.md lists every setting as OPTION_SPECS declares it', () => {
  const doc = fs.readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  expect(doc).toContain('<!-- options:begin -->');
  expect(withOptionsTable(doc, optionsTable(OPTION_SPECS)), 'run: npm run build && node scripts/gen-api-options.mjs').toBe(doc);
});
