/** Small DOM helpers: every page builds its markup with `h`, so text is never parsed as HTML. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/**
 * `h('button', {class: 'primary', onclick: fn}, 'Send')`. String children become text nodes;
 * attributes starting with `on` are listeners; `true` sets a boolean attribute, false/null skips it.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

let uid = 0;
/** A unique id for label/aria wiring. */
export function nextId(prefix: string): string {
  return `${prefix}-${++uid}`;
}

/** A labelled form field: `<div class="field"><label for=…>label</label>control hint</div>`. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLDivElement {
  const id = control.id || nextId('f');
  control.id = id;
  const hintEl = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

export function numberInput(opts: {
  value: number | '';
  min?: number;
  max?: number;
  step?: number | 'any';
  name?: string;
  placeholder?: string;
}): HTMLInputElement {
  return h('input', {
    type: 'number',
    value: String(opts.value),
    min: opts.min,
    max: opts.max,
    step: opts.step ?? 'any',
    name: opts.name,
    placeholder: opts.placeholder,
    inputmode: 'decimal',
  });
}

/** Value of a number input, or `fallback` when empty/invalid. */
export function readNumber(input: HTMLInputElement, fallback: number): number {
  const v = input.valueAsNumber;
  return Number.isFinite(v) ? v : fallback;
}

/** A status line (`role=status`) whose text and tone can be set. */
export function statusLine(): {
  el: HTMLParagraphElement;
  set(text: string, tone?: 'info' | 'ok' | 'warn' | 'error'): void;
} {
  const el = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    set(text, tone = 'info') {
      el.textContent = text;
      el.dataset.tone = tone;
      el.hidden = !text;
    },
  };
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Offers `text` as a file download. */
export function downloadText(name: string, text: string, type = 'application/x-ndjson'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
