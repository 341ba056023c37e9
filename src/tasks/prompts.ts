/**
 * The task prompts every part of the pipeline shares: the answer-format instruction of each task,
 * the agents' and the student's default system prompt, how a question (with its options) is
 * rendered, and a bare answer line. The debate (teach), the training rows (distill), the
 * evaluation (eval) and the demo all build their messages from these, so a student is evaluated
 * on exactly the prompt it was trained on.
 */
import type { ChatMessage } from '../engine/types';
import type { Task } from './answers';

/**
 * 'default': the full wording; 'compact': short instructions for small models with short
 * contexts (the embedded demo is trained on exactly these strings).
 */
export type PromptStyle = 'default' | 'compact';

const FORMAT: Record<Task, string> = {
  gsm8k:
    'Finish with the final numeric answer alone on the last line, written as "#### <number>" (digits only: no units, no commas).',
  math: 'Finish with the final answer in simplest form inside \\boxed{...} on the last line.',
  mc: 'Finish with the letter of the correct option on the last line, written as "Answer: <letter>".',
  qa: 'Finish with the short final answer (a few words, no explanation) alone on the last line, written as "Answer: <answer>".',
};

const PERSONA: Record<Task, string> = {
  gsm8k:
    'You are a careful, accurate solver of grade-school math word problems. Reason step by step, checking each calculation.',
  math: 'You are an expert competition mathematician. Work through the problem step by step, justifying each step.',
  mc: 'You are a knowledgeable expert answering multiple-choice questions. Reason step by step about each option before choosing.',
  qa: 'You are a knowledgeable assistant answering questions. Reason step by step over what you know before answering.',
};

const COMPACT_FORMAT: Record<Task, string> = {
  gsm8k: 'End with the answer as "#### <number>".',
  math: 'End with the answer as \\boxed{...}.',
  mc: 'End with "Answer: <letter>".',
  qa: 'End with "Answer: <short answer>".',
};

const COMPACT_PERSONA: Record<Task, string> = {
  gsm8k: 'Solve the math word problem step by step.',
  math: 'Solve the math problem step by step.',
  mc: 'Answer the multiple-choice question step by step.',
  qa: 'Answer the question step by step.',
};

/** The answer-format instruction each agent is given for `task`. */
export function answerFormatInstruction(task: Task, style: PromptStyle = 'default'): string {
  return style === 'compact' ? COMPACT_FORMAT[task] : FORMAT[task];
}

/** The task's persona (the system prompt without the answer-format instruction). */
export function taskPersona(task: Task, style: PromptStyle = 'default'): string {
  return style === 'compact' ? COMPACT_PERSONA[task] : PERSONA[task];
}

/** An agent's system prompt when no custom one is given: persona plus answer-format instruction. */
export function defaultAgentSystemPrompt(task: Task, style: PromptStyle = 'default'): string {
  return `${taskPersona(task, style)} ${answerFormatInstruction(task, style)}`;
}

const LETTERS = 'ABCDEFGHIJ';

/**
 * Renders a question, with lettered options for multiple choice unless the text already lists
 * them (loadQuestions puts them into the question text).
 */
export function formatQuestion(q: { question: string; choices?: unknown }): string {
  const choices = q.choices;
  if (Array.isArray(choices) && choices.every((c) => q.question.includes(String(c)))) return q.question.trim();
  let opts: string[] = [];
  if (Array.isArray(choices))
    opts = choices.map((c, i) => (/^\s*\(?[A-J][).:]\s/.test(String(c)) ? String(c) : `${LETTERS[i]}. ${String(c)}`));
  else if (choices && typeof choices === 'object')
    opts = Object.entries(choices as Record<string, unknown>).map(([k, v]) => `${k}. ${String(v)}`);
  return opts.length ? `${q.question.trim()}\n\n${opts.join('\n')}` : q.question.trim();
}

/** A final answer alone, in the task's answer format (what a sparse debate quotes). */
export function answerLine(task: Task, answer: string | null): string {
  if (answer === null) return '(no final answer)';
  return task === 'gsm8k' ? `#### ${answer}` : task === 'math' ? `\\boxed{${answer}}` : `Answer: ${answer}`; // mc, qa
}

// ---------------------------------------------------------------------------------------------
// Student prompt: identical in the training rows and in `agentark eval`'s single-agent systems

/** The default student system prompt: the debate agents' default system prompt. */
export function studentSystemPrompt(task: Task): string {
  return defaultAgentSystemPrompt(task);
}

export interface StudentPromptOptions {
  /**
   * The system message: undefined → `studentSystemPrompt(task)` (or the compact agent prompt),
   * null or '' → no system message, a string → used as is.
   */
  system?: string | null;
  /** 'compact': the debate's compact agent prompt (small models, e.g. the embedded demo). */
  style?: PromptStyle;
}

/** The messages the student is given for a question (system?, user). */
export function studentMessages(
  task: Task,
  question: { question: string; choices?: unknown },
  opts: StudentPromptOptions = {},
): ChatMessage[] {
  const system = opts.system === undefined ? defaultAgentSystemPrompt(task, opts.style ?? 'default') : opts.system;
  const out: ChatMessage[] = [];
  if (system) out.push({ role: 'system', content: system });
  out.push({ role: 'user', content: formatQuestion(question) });
  return out;
}
