/** Dataset and chat-template options shared by `rac trace`, `rac prune --calib-mode` (and others). */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { parseTemplateFlag } from '../io/datasets.ts';

export interface DatasetFlags {
  dataset?: string | string[];
  promptColumn?: string;
  answerColumn?: string;
  idColumn?: string;
  limit?: number;
  system?: string;
  systemFile?: string;
  enableThinking?: boolean;
  templateFlag?: string[];
}

export function bool(name: string) {
  return (v: string): boolean => {
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new InvalidArgumentError(`${name} must be true or false, got "${v}"`);
  };
}

function collect(v: string, prev: string[] | undefined): string[] {
  try {
    parseTemplateFlag(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return [...(prev ?? []), v];
}

/** --prompt-column, --answer-column, --id-column, --limit, --system, --enable-thinking, --template-flag. */
export function addPromptOptions(cmd: Command, opts: { answer?: boolean } = {}): Command {
  cmd
    .option('--prompt-column <name>', 'dataset column with the prompt (default: problem, prompt or question)')
    .option('--id-column <name>', 'dataset column with a unique id (default: id when unique, else the row index)');
  if (opts.answer) cmd.option('--answer-column <name>', 'dataset column with the reference answer (default: answer when present)');
  return cmd
    .option('--limit <n>', 'use the first n dataset rows only', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`limit must be an integer ≥ 1, got "${v}"`);
      return n;
    })
    .option('--system <text>', 'system prompt (a first-class, recorded setting)')
    .option('--system-file <file>', 'read the system prompt from a file')
    .option('--enable-thinking <bool>', 'chat template flag enable_thinking (true | false)', bool('enable-thinking'))
    .option('--template-flag <key=value>', 'extra chat template variable (repeatable; JSON values)', collect);
}

/** The chat template variables from --enable-thinking and --template-flag. */
export function templateFlagsOf(o: DatasetFlags): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const spec of o.templateFlag ?? []) {
    const [k, v] = parseTemplateFlag(spec);
    flags[k] = v;
  }
  if (o.enableThinking !== undefined) flags['enable_thinking'] = o.enableThinking;
  return flags;
}

/** The system prompt from --system or --system-file (not both). */
export function systemOf(o: DatasetFlags): string | undefined {
  if (o.system !== undefined && o.systemFile !== undefined) throw new InvalidArgumentError('give --system or --system-file, not both');
  if (o.systemFile !== undefined) {
    try {
      return readFileSync(o.systemFile, 'utf8');
    } catch (e) {
      throw new Error(`${o.systemFile}: cannot read the system prompt (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return o.system;
}
