/**
 * Prompt length bounds, checked before a prompt is tokenized and before any output is created:
 *
 * - characters: a prompt of C characters is at least ⌈C / m⌉ tokens, m = the longest token of the
 *   vocabulary in characters (every token covers at most that many UTF-16 units of text). So a
 *   prompt longer than context × m characters cannot fit and is refused without tokenizing it
 *   (tokenizing a multi-MB string can take minutes and gigabytes);
 * - tokens: the prompt plus at least one new token must fit the model's context
 *   (max_position_embeddings, or the backend's own context).
 */
import type { RacTokenizer } from './tokenizer.ts';
import { RacError } from '../errors.ts';

export class PromptLengthError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'PromptLengthError';
  }
}

/** Most characters a prompt can have and still fit `contextLength` tokens with `tok`. */
export function promptCharLimit(tok: Pick<RacTokenizer, 'maxTokenChars'>, contextLength: number): number {
  return contextLength * Math.max(1, tok.maxTokenChars);
}

/** Refuses a text that cannot fit the context, from its length alone (no tokenizing). */
export function checkPromptChars(chars: number, tok: Pick<RacTokenizer, 'maxTokenChars'>, contextLength: number): void {
  const limit = promptCharLimit(tok, contextLength);
  if (chars > limit) {
    throw new PromptLengthError(
      `the prompt has ${chars} characters and cannot fit the model's ${contextLength}-token context (at most ${limit} characters: ${contextLength} tokens × ${tok.maxTokenChars}, this tokenizer's longest token); refused before tokenizing`,
    );
  }
}

/** Refuses a prompt of `tokens` tokens that leaves no room for one new token. */
export function checkPromptTokens(tokens: number, contextLength: number): void {
  if (tokens + 1 > contextLength) {
    throw new PromptLengthError(
      `the prompt has ${tokens} tokens; the model's context is ${contextLength} tokens, so it leaves no room for a new token`,
    );
  }
}

/** Total characters of a prompt given as text or messages. */
export function promptChars(prompt: string | readonly { content: string }[], system?: string): number {
  const body =
    typeof prompt === 'string' ? prompt.length : prompt.reduce((a, m) => a + (typeof m.content === 'string' ? m.content.length : 0), 0);
  return body + (system?.length ?? 0);
}
