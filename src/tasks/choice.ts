// Multiple-choice grading (GPQA): the chosen letter is found as Math-Verify's string extraction
// finds it — "final answer is X", "answer: X", "answer … X", a letter opening a line, then any
// standalone letter — trying the higher-priority patterns first and, within one, the match that
// ends last.

export interface ChoiceGrade {
  correct: boolean;
  /** The letter found, null when none. */
  extracted: string | null;
}

const ci = (word: string): string => [...word].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c)).join('');

function patterns(letters: string): [RegExp, number][] {
  const keys = `(?<key>[${letters}])`;
  const suffix = '(?:\\*\\*)?(?:\\.|,|:|\\s|$)';
  const plain = `(?:^|\\s)(?:\\*\\*)?${keys}${suffix}`;
  const list: [string, number][] = [
    [`${ci('final answer is')}:?\\s*${keys}\\.?\\s?I hope`, 0],
    [`${ci('final answer')}.{0,100}?\\s+is:?\\s*${keys}`, 50],
    [`${ci('answer')}:.{0,50}?${plain}`, 100],
    [`${ci('answer')}.{0,50}?${plain}`, 200],
    [`^(?:\\*\\*)?${keys}${suffix}`, 250],
    [plain, 300],
  ];
  return list.map(([re, p]) => [new RegExp(re, 'g'), p]);
}

const CACHE = new Map<string, [RegExp, number][]>();

/** The letter a completion chooses among `letters` (default A–D), or null. */
export function extractChoice(text: string, letters = 'ABCD'): string | null {
  let pats = CACHE.get(letters);
  if (!pats) CACHE.set(letters, (pats = patterns(letters)));
  const prios = [...new Set(pats.map(([, p]) => p))].sort((a, b) => a - b);
  for (const prio of prios) {
    let best: RegExpExecArray | null = null;
    for (const [re, p] of pats) {
      if (p !== prio) continue;
      re.lastIndex = 0;
      for (let m = re.exec(text); m; m = re.exec(text)) {
        const end = m.index + m[0].length;
        if (!best || end > best.index + best[0].length || (end === best.index + best[0].length && m.index < best.index)) best = m;
        if (m[0].length === 0) re.lastIndex++;
      }
    }
    if (best) return best.groups!['key']!;
  }
  return null;
}

/** Grades a completion against the gold letter. */
export function gradeChoice(completion: string, gold: string, letters = 'ABCD'): ChoiceGrade {
  const extracted = extractChoice(completion, letters);
  return { correct: extracted !== null && extracted === gold.trim().toUpperCase(), extracted };
}
