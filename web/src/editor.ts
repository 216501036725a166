// One TipTap editor per section, bound to the meeting's Y.Doc fragment
// `section:{id}`. The schema is kept to what the document schema allows
// (paragraphs, headings, lists, hard breaks; bold, italic, links), so
// whatever is typed or pasted stays within what the server accepts.

import { Editor, Extension } from '@tiptap/core'
import Collaboration from '@tiptap/extension-collaboration'
import Link from '@tiptap/extension-link'
import StarterKit from '@tiptap/starter-kit'
import { yCursorPlugin } from '@tiptap/y-tiptap'
import type { Awareness } from 'y-protocols/awareness'
import type * as Y from 'yjs'
import { caret, selection } from './presence'

const Carets = Extension.create<{ awareness: Awareness | null }>({
  name: 'carets',
  addOptions() {
    return { awareness: null }
  },
  addProseMirrorPlugins() {
    const awareness = this.options.awareness
    if (!awareness) return []
    // The default `cursor` field: one caret per client across all
    // sections; each editor draws the carets that resolve inside it.
    return [yCursorPlugin(awareness, { cursorBuilder: caret, selectionBuilder: selection })]
  },
})

/**
 * A link keeps only its target. The document is written by others: a link
 * mark there may carry `target`, `rel` or `class` (an agency writing
 * `rel="opener"` would hand the reader's page to the site it links to).
 * Only `href` is an attribute of the mark, so nothing else is read from
 * the document; how the link opens is set here, for every link: in a new
 * tab, without `window.opener` and without a referrer. Targets other
 * than http, https and mailto are emptied by TipTap's own check.
 */
export const SafeLink = Link.extend({
  addAttributes() {
    return {
      href: {
        default: null,
        parseHTML: (element: HTMLElement) => element.getAttribute('href'),
      },
    }
  },
  renderHTML(props) {
    const [, attrs] = this.parent?.(props) as [string, Record<string, unknown>, 0]
    return ['a', { href: attrs.href ?? '', target: '_blank', rel: 'noopener noreferrer nofollow' }, 0]
  },
})

/** Word and web pages paste markup the schema drops anyway; this removes the rest (conditional comments, Office namespaces, styles). */
export function cleanPastedHtml(html: string): string {
  return html
    .replace(/<!--\[if[\s\S]*?<!\[endif\]-->/gi, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<style[\s\S]*?<\/style>/gi, '')
    .replace(/<\/?(o|w|v|m):[^>]*>/gi, '')
    .replace(/<(img|svg|video|audio|iframe|object|embed)\b[^>]*>/gi, '')
}

export interface EditorLabels {
  labelledBy: string
  describedBy: string
}

function attributes(writable: boolean, labels: EditorLabels): Record<string, string> {
  const attrs: Record<string, string> = {
    role: 'textbox',
    'aria-multiline': 'true',
    'aria-labelledby': labels.labelledBy,
    'aria-describedby': labels.describedBy,
    class: 'section-text',
    spellcheck: 'true',
    lang: 'sv',
  }
  // aria-readonly="true" next to contenteditable="true" would contradict;
  // ProseMirror sets contenteditable="false" when not editable.
  if (!writable) attrs['aria-readonly'] = 'true'
  return attrs
}

export function createSectionEditor(
  element: HTMLElement,
  fragment: Y.XmlFragment,
  awareness: Awareness,
  writable: boolean,
  labels: EditorLabels,
): Editor {
  return new Editor({
    element,
    // The Content-Security-Policy allows no inline <style>: TipTap's base
    // CSS is in style.css.
    injectCSS: false,
    editable: writable,
    extensions: [
      StarterKit.configure({
        undoRedo: false,
        blockquote: false,
        code: false,
        codeBlock: false,
        horizontalRule: false,
        strike: false,
        underline: false,
        heading: { levels: [3, 4] },
        link: false,
      }),
      SafeLink.configure({
        openOnClick: false,
        autolink: true,
        defaultProtocol: 'https',
        protocols: ['http', 'https', 'mailto'],
      }),
      Collaboration.configure({ fragment }),
      Carets.configure({ awareness }),
    ],
    editorProps: {
      attributes: attributes(writable, labels),
      transformPastedHTML: cleanPastedHtml,
    },
  })
}

/** Turns editing on or off without a reload (ownership changed). */
export function setWritable(editor: Editor, writable: boolean, labels: EditorLabels): void {
  if (editor.isEditable === writable) return
  editor.setOptions({ editorProps: { ...editor.options.editorProps, attributes: attributes(writable, labels) } })
  editor.setEditable(writable, false)
}
