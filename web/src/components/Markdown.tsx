import { memo, useMemo, useState, type ReactNode } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import rehypeHighlight from 'rehype-highlight';
import rehypeSanitize, { defaultSchema } from 'rehype-sanitize';
import remarkGfm from 'remark-gfm';
import remend from 'remend';

// Raw HTML in an answer is never parsed as HTML (no rehype-raw): it shows as text. The sanitizer
// still runs on what markdown produces, and unsafe URLs (javascript:, data:) are dropped.
const sanitizeSchema = {
  ...defaultSchema,
  attributes: { ...defaultSchema.attributes, code: [...(defaultSchema.attributes?.code ?? []), ['className', /^language-./]] },
};
/** Shows raw HTML in an answer as the text it is, instead of dropping it. */
function remarkHtmlAsText() {
  const visit = (node: { type: string; children?: unknown[] }) => {
    if (node.type === 'html') node.type = 'text';
    for (const child of node.children ?? []) visit(child as { type: string; children?: unknown[] });
  };
  return visit;
}

const remarkPlugins = [remarkGfm, remarkHtmlAsText];
const rehypePlugins = [
  [rehypeSanitize, sanitizeSchema],
  [rehypeHighlight, { detect: false, ignoreMissing: true }],
] as const;

const components: Components = {
  a: ({ href, children }) => (
    <a href={href} target="_blank" rel="noopener noreferrer nofollow">
      {children}
    </a>
  ),
  pre: ({ children }) => <CodeBlock>{children}</CodeBlock>,
};

function textOf(node: ReactNode): string {
  if (typeof node === 'string' || typeof node === 'number') return String(node);
  if (Array.isArray(node)) return node.map(textOf).join('');
  if (node && typeof node === 'object' && 'props' in node) return textOf((node.props as { children?: ReactNode }).children);
  return '';
}

function CodeBlock({ children }: { children: ReactNode }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(textOf(children).replace(/\n$/, '')).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    });
  };
  return (
    <div className="code-block">
      <button type="button" className="code-copy" onClick={copy} aria-label="Copy code">
        {copied ? 'Copied' : 'Copy'}
      </button>
      <pre>{children}</pre>
    </div>
  );
}

/** One markdown block; finished blocks never re-render while the answer streams on. */
const Block = memo(function Block({ text }: { text: string }) {
  return (
    <ReactMarkdown remarkPlugins={remarkPlugins} rehypePlugins={rehypePlugins as never} components={components}>
      {text}
    </ReactMarkdown>
  );
});

/** Splits markdown at blank lines outside code fences, so each block can be rendered once. */
export function splitBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  let current: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) fence = fence === undefined ? marker : undefined;
    if (line.trim() === '' && fence === undefined && current.length > 0) {
      blocks.push(current.join('\n'));
      current = [];
    } else if (line.trim() !== '' || current.length > 0) {
      current.push(line);
    }
  }
  if (current.length > 0) blocks.push(current.join('\n'));
  return blocks;
}

/**
 * Renders an answer as sanitized markdown. While it streams, the unfinished last block is
 * completed (an open **bold**, `code` or fence) so half-written markdown never flickers.
 */
export function Markdown({ text, streaming }: { text: string; streaming: boolean }) {
  const blocks = useMemo(() => splitBlocks(text), [text]);
  return (
    <div className="markdown">
      {blocks.map((block, index) => (
        <Block key={index} text={streaming && index === blocks.length - 1 ? remend(block) : block} />
      ))}
    </div>
  );
}
