/**
 * Trace selection: which traces of a file calibrate, decided before the token budget is applied
 * (so modes and selections compared at one budget still see the same number of tokens).
 *
 *   correct     any | correct | incorrect — by the grade `rac trace` recorded on the row
 *               (`correct`, from the dataset's answer, graded as `rac eval` grades)
 *   dropTruncated  drop rows cut at max_new_tokens (finish_reason "length")
 *   min/maxTokens  keep completions (decode tokens) in a length band (0 = no bound)
 *   difficulty  any | mixed — mixed keeps the prompts the traces' model solves in some but not all
 *               of its samples (needs n ≥ 2 graded samples per prompt; judged on all of a
 *               prompt's samples, before the other filters)
 */
import { CalibError } from './calib.ts';

export interface TraceSelection {
  correct: 'any' | 'correct' | 'incorrect';
  dropTruncated: boolean;
  minTokens: number;
  maxTokens: number;
  difficulty: 'any' | 'mixed';
}

export interface SelectionCounts {
  rows: number;
  kept: number;
  dropped: { correct: number; truncated: number; length: number; difficulty: number };
  /** Prompts with ≥ 1 row, and those the difficulty filter kept (mixed only). */
  prompts: number;
  mixed_prompts?: number;
}

export interface SelectableRow {
  row: Record<string, unknown>;
  where: string;
}

function decodeLen(row: Record<string, unknown>): number {
  if (typeof row['num_decode_tokens'] === 'number') return row['num_decode_tokens'];
  if (Array.isArray(row['completion_ids'])) return row['completion_ids'].length;
  return 0;
}

function gradeOf(r: SelectableRow): boolean {
  const c = r.row['correct'];
  if (typeof c !== 'boolean')
    throw new CalibError(
      `${r.where}: trace selection by grade or difficulty needs a "correct" field (trace a dataset with answers: rac trace grades each row)`,
    );
  return c;
}

/** The rows `sel` keeps, in their order, and what it dropped and why (a row counts under its first failing filter). */
export function selectTraces<T extends SelectableRow>(rows: T[], sel: TraceSelection): { kept: T[]; counts: SelectionCounts } {
  const byPrompt = new Map<string, T[]>();
  for (const r of rows) {
    const id = String(r.row['prompt_id'] ?? r.row['prompt_index'] ?? r.where);
    let list = byPrompt.get(id);
    if (!list) byPrompt.set(id, (list = []));
    list.push(r);
  }
  const mixed = new Set<string>();
  if (sel.difficulty === 'mixed') {
    let multi = 0;
    for (const [id, list] of byPrompt) {
      if (list.length < 2) continue;
      multi++;
      const solved = list.filter(gradeOf).length;
      if (solved > 0 && solved < list.length) mixed.add(id);
    }
    if (multi === 0) throw new CalibError('trace selection by difficulty needs ≥ 2 samples per prompt (rac trace --n 2 or more)');
  }
  const counts: SelectionCounts = {
    rows: rows.length,
    kept: 0,
    dropped: { correct: 0, truncated: 0, length: 0, difficulty: 0 },
    prompts: byPrompt.size,
  };
  if (sel.difficulty === 'mixed') counts.mixed_prompts = mixed.size;
  const kept: T[] = [];
  for (const r of rows) {
    const id = String(r.row['prompt_id'] ?? r.row['prompt_index'] ?? r.where);
    if (sel.difficulty === 'mixed' && !mixed.has(id)) {
      counts.dropped.difficulty++;
      continue;
    }
    if (sel.correct !== 'any' && gradeOf(r) !== (sel.correct === 'correct')) {
      counts.dropped.correct++;
      continue;
    }
    if (sel.dropTruncated && r.row['finish_reason'] === 'length') {
      counts.dropped.truncated++;
      continue;
    }
    const n = decodeLen(r.row);
    if ((sel.minTokens > 0 && n < sel.minTokens) || (sel.maxTokens > 0 && n > sel.maxTokens)) {
      counts.dropped.length++;
      continue;
    }
    kept.push(r);
  }
  counts.kept = kept.length;
  if (kept.length === 0) throw new CalibError(`trace selection ${JSON.stringify(sel)} keeps none of ${rows.length} traces`);
  return { kept, counts };
}
