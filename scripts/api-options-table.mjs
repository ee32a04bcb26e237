// The options table of docs/api.md, generated from OPTION_SPECS: used by gen-api-options.mjs (to
// write it) and by test/unit/docs-api.test.ts (to fail when the checked-in table is stale).
const cell = (text) => text.replace(/\|/g, '\\|');

/** The markdown table of every setting. */
export function optionsTable(specs) {
  const flag = (s) => (s.cli ? `\`--${s.cli.flag}\`${s.cli.short ? ` / \`-${s.cli.short}\`` : ''}` : '');
  const rows = specs.map((s) => `| \`${s.name}\` | ${cell(s.defaultText)} | ${cell(s.description)} | ${flag(s)} |`);
  return ['| option | default | meaning | CLI flag |', '|---|---|---|---|', ...rows].join('\n');
}

/** `doc` with the table between its `options:begin`/`options:end` markers replaced. */
export function withOptionsTable(doc, table) {
  return doc.replace(/<!-- options:begin -->[\s\S]*<!-- options:end -->/, `<!-- options:begin -->\n${table}\n<!-- options:end -->`);
}
