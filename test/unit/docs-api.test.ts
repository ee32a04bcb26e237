// docs/api.md's tables are generated from the settings' declarations: fail when someone changed
// a setting or a flag and did not run `node scripts/gen-api-options.mjs`.
import fs from 'node:fs';
import { expect, it } from 'vitest';
// @ts-expect-error a plain .mjs script, no types
import { apiTables, withTables } from '../../scripts/api-options-table.mjs';

it('docs/api.md lists every setting and every flag as they are declared (engine, serveQueue, bullmqTransport, mpms run/worker/status)', () => {
  const doc = fs.readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
  const tables = apiTables() as Record<string, string>;
  expect(Object.keys(tables)).toEqual([
    'options',
    'serve-options',
    'transport-options',
    'run-flags',
    'worker-flags',
    'status-flags',
  ]);
  expect(withTables(doc, tables), 'run: npm run build && node scripts/gen-api-options.mjs').toBe(doc);
});
