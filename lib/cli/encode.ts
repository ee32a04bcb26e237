/**
 * How `mpms run` writes values as JSON: one rule for every value JSON has no form for, so a
 * result is never silently turned into `{}` or `null` (see docs/guide.md, "The command line").
 *
 * - A value JSON cannot carry becomes a one-key object naming its type:
 *   `{"$bigint":"123"}`, `{"$map":[[key, value], ...]}`, `{"$set":[value, ...]}`,
 *   `{"$bytes":"<base64>"}` (Buffer, Uint8Array, ArrayBuffer, DataView),
 *   `{"$Float64Array":[...]}` (any other typed array, by its class name; bigint elements as strings),
 *   `{"$number":"NaN"}` (also `"Infinity"`, `"-Infinity"`),
 *   `{"$error":{"name","message",...own fields}}` (an Error returned as a value).
 * - `undefined` is left out where JSON leaves a key out (an object property, or `result` itself:
 *   an ok line without `result` means the function returned undefined), and is
 *   `{"$undefined":null}` inside an array, where JSON would write `null`.
 * - Everything else is JSON's own: objects with `toJSON()` (a Date: its ISO string) as it returns.
 * Nested values follow the same rule, at any depth.
 */

/** The fields of an error in an output line: `name`, `message`, then its own enumerable fields (`code`, `cause`...). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err === null || typeof err !== 'object') return { name: 'Error', message: String(err) };
  const e = err as Record<string, unknown>;
  const out: Record<string, unknown> = {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : String(err),
  };
  for (const key of Object.keys(e)) {
    // The stack is for the worker's own logs; `meta` is the engine's (run() attaches it), not the error's.
    if (key === 'name' || key === 'message' || key === 'stack' || key === 'meta') continue;
    out[key] = e[key] instanceof Error ? errorFields(e[key]) : e[key];
  }
  return out;
}

const BYTES = (v: unknown): v is Uint8Array | ArrayBuffer | DataView =>
  v instanceof Uint8Array || v instanceof ArrayBuffer || v instanceof DataView;

function bytes(v: Uint8Array | ArrayBuffer | DataView): string {
  const view = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64');
}

/**
 * The replacer behind the rule. It reads `holder[key]`, the value *before* JSON.stringify
 * applied `toJSON()`: a Buffer's own toJSON would otherwise have made it `{type, data}` already.
 */
function replacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  switch (typeof raw) {
    case 'bigint':
      return { $bigint: raw.toString() };
    case 'number':
      return Number.isFinite(raw) ? raw : { $number: String(raw) };
    case 'undefined':
      return Array.isArray(this) ? { $undefined: null } : undefined;
    case 'object':
      if (raw === null) return null;
      if (raw instanceof Map) return { $map: [...raw] };
      if (raw instanceof Set) return { $set: [...raw] };
      if (BYTES(raw)) return { $bytes: bytes(raw) };
      if (ArrayBuffer.isView(raw)) {
        const items = [...(raw as unknown as Iterable<number | bigint>)].map((x) => (typeof x === 'bigint' ? x.toString() : x));
        return { [`$${raw.constructor.name}`]: items };
      }
      if (raw instanceof Error) return { $error: errorFields(raw) };
      return value;
    default:
      return value;
  }
}

/**
 * One JSON text for `value` under the rule above (no newline).
 * @throws TypeError for what no rule covers: a circular structure.
 */
export function encodeJson(value: unknown): string {
  // The root goes through the replacer as holder[''] too, so a bare BigInt result is covered.
  return JSON.stringify(value, replacer);
}
