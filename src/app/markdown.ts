/**
 * Model and user text → safe HTML: Markdown (marked, GFM) with KaTeX math ($…$, $$…$$), raw HTML
 * in the text shown as literal text, and the result sanitised by DOMPurify before it touches the
 * DOM. No images, forms or styles: a message can never fetch anything or run script.
 */
import DOMPurify from 'dompurify';
import { Marked } from 'marked';
import markedKatex from 'marked-katex-extension';
import { KATEX_OPTIONS } from './katex-options';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

const marked = new Marked({ gfm: true, breaks: true, async: false });
marked.use(markedKatex({ ...KATEX_OPTIONS }));
marked.use({
  renderer: {
    // Raw HTML written by the user or the model is shown as text, never interpreted.
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      return escapeHtml(`![${text}](${href})`);
    },
  },
});

const purifier = DOMPurify();
purifier.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const PURIFY = {
  USE_PROFILES: { html: true, mathMl: true },
  FORBID_TAGS: [
    'img',
    'style',
    'form',
    'input',
    'button',
    'textarea',
    'select',
    'video',
    'audio',
    'source',
    'picture',
    'iframe',
    'object',
    'embed',
  ],
  FORBID_ATTR: ['srcset', 'background', 'poster'],
  ALLOW_DATA_ATTR: false,
};

export function renderMarkdown(text: string): string {
  let html: string;
  try {
    html = marked.parse(text) as string;
  } catch {
    html = `<p>${escapeHtml(text)}</p>`;
  }
  return purifier.sanitize(html, PURIFY) as string;
}

/** Renders `text` into `el` (replacing its content). */
export function setMarkdown(el: Element, text: string): void {
  el.innerHTML = renderMarkdown(text);
}
