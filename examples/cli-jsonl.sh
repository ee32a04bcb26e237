#!/bin/sh
# The command line over JSON lines: 200 SHA-256 tasks piped into `mpms run`, one JSON line per
# outcome written to a file, then counted.
#
#   sh examples/cli-jsonl.sh [N=200]          (from anywhere; run `npm run build` once first)
#
# Each input line is a JSON array of arguments ([seed, rounds]); each output line is
# {"taskId","status","result"|"error","runMs"}. `mpms run` exits 0 when every task is ok, 1 when
# any is not, so `set -e` stops the script on a failed task. Once installed, `mpms run ...` is the
# same as `node dist/cli/main.js run ...`. MPMS_EXAMPLE_OUT overrides the output file.
set -eu

cd "$(dirname "$0")/.."
N="${1:-200}"
OUT="${MPMS_EXAMPLE_OUT:-/tmp/out.jsonl}"

node examples/make-tasks.mjs "$N" | node dist/cli/main.js run examples/sha256-worker.mjs --input - --output "$OUT"

echo "first result: $(head -n 1 "$OUT")"
echo "ok lines: $(grep -c '"status":"ok"' "$OUT")"
wc -l "$OUT"
