// Model output as markdown (GFM: tables, fenced code), sanitized: whatever a model writes, no script of its runs in
// this page (DOMPurify, plus the page's CSP). Code blocks get a copy button.
import DOMPurify from 'dompurify';
import { marked } from 'marked';
import { useEffect, useMemo, useRef } from 'preact/hooks';

marked.setOptions({ gfm: true, breaks: false });

// Links from model output open elsewhere and cannot reach back into this page.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false }) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ['style', 'form', 'input'] });
}

export function Markdown({ text, class: className }: { text: string; class?: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const root = ref.current;
    if (!root) return;
    for (const pre of root.querySelectorAll('pre')) {
      if (pre.querySelector('.copy-code')) continue;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'copy-code';
      button.textContent = 'Copy';
      button.setAttribute('aria-label', 'Copy code');
      button.addEventListener('click', () => {
        navigator.clipboard?.writeText(pre.querySelector('code')?.textContent ?? pre.textContent ?? '').then(
          () => (button.textContent = 'Copied'),
          () => (button.textContent = 'Copy failed'),
        );
        setTimeout(() => (button.textContent = 'Copy'), 1500);
      });
      pre.appendChild(button);
    }
  }, [html]);
  return <div ref={ref} class={`markdown ${className ?? ''}`} dangerouslySetInnerHTML={{ __html: html }} />;
}
