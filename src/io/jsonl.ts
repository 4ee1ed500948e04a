/** JSON Lines: one JSON object per line, errors naming file:line. */

export class JsonlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonlError';
  }
}

export interface JsonlRow {
  row: Record<string, unknown>;
  /** `file:line`, for error messages. */
  where: string;
  /** 0-based line index. */
  line: number;
}

/**
 * The objects of a JSONL text, in order; blank lines skipped. With `ignoreTornTail`, a last line
 * without its '\n' (a writer still running, or killed mid-write) is left out instead of parsed.
 */
export function* jsonlObjects(
  text: string,
  file: string,
  opts: { ignoreTornTail?: boolean; error?: (message: string) => Error } = {},
): Generator<JsonlRow> {
  const fail = opts.error ?? ((m: string) => new JsonlError(m));
  let body = text;
  if (opts.ignoreTornTail) {
    const end = text.lastIndexOf('\n');
    body = end >= 0 ? text.slice(0, end) : '';
  }
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw fail(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(`${where}: expected a JSON object per line`);
    yield { row: v as Record<string, unknown>, where, line: i };
  }
}
