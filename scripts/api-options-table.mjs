// The generated tables of docs/api.md, one per list of settings (lib/settings.ts): the engine's
// options, serveQueue()'s and bullmqTransport()'s, and the own flags of each mpms command. Used
// by gen-api-options.mjs (to write them) and by test/unit/docs-api.test.ts (to fail when a
// checked-in table differs from its declaration).
import { OPTION_SPECS } from '../dist/index.js';
import { SERVE_SPECS, TRANSPORT_SPECS } from '../dist/scale-out/settings.js';
import { REDIS_FLAGS, RUN_FLAGS, STATUS_FLAGS, WORKER_FLAGS } from '../dist/cli/flags.js';

const cell = (text) => text.replace(/\|/g, '\\|');
const flag = (s) => (s.cli ? `\`--${s.cli.flag}\`${s.cli.short ? ` / \`-${s.cli.short}\`` : ''}` : '');

/** A table of settings as an API takes them: option, default, meaning, and (`withFlags`) the CLI flag. */
export function optionsTable(specs, withFlags = true) {
  const rows = specs.map(
    (s) => `| \`${s.name}\` | ${cell(s.defaultText)} | ${cell(s.description)} |${withFlags ? ` ${flag(s)} |` : ''}`,
  );
  const head = withFlags
    ? ['| option | default | meaning | CLI flag |', '|---|---|---|---|']
    : ['| option | default | meaning |', '|---|---|---|'];
  return [...head, ...rows].join('\n');
}

/** A table of command-line flags: flag, default, meaning. */
export function flagsTable(specs) {
  const shown = (s) => (s.kind === 'boolean' ? '' : s.required ? '(required)' : cell(s.defaultText));
  const rows = specs.map((s) => `| ${flag(s)} | ${shown(s)} | ${cell(s.description)} |`);
  return ['| flag | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** Every generated table of docs/api.md, by the name of its markers. */
export function apiTables() {
  return {
    options: optionsTable(OPTION_SPECS),
    'serve-options': optionsTable(SERVE_SPECS),
    'transport-options': optionsTable(TRANSPORT_SPECS, false),
    'run-flags': flagsTable(RUN_FLAGS),
    'worker-flags': flagsTable([...REDIS_FLAGS, ...WORKER_FLAGS]),
    'status-flags': flagsTable(STATUS_FLAGS),
  };
}

/** `doc` with each table between its `<name>:begin`/`<name>:end` markers replaced; throws on a missing marker. */
export function withTables(doc, tables) {
  let out = doc;
  for (const [name, table] of Object.entries(tables)) {
    const re = new RegExp(`<!-- ${name}:begin -->[\\s\\S]*?<!-- ${name}:end -->`);
    if (!re.test(out)) throw new Error(`docs/api.md has no <!-- ${name}:begin --> ... <!-- ${name}:end --> markers`);
    out = out.replace(re, () => `<!-- ${name}:begin -->\n${table}\n<!-- ${name}:end -->`);
  }
  return out;
}
