// The formatting toolbar above a section the person may write: bold,
// italic, heading, lists, link, undo and redo, each button named in the
// language now chosen (relabelToolbar names them again after a switch).

import type { Editor } from '@tiptap/core'
import { t } from '../i18n'
import { h } from '../dom'
import { type IconName, icon } from '../icons'

/** The toolbar's buttons, each named by its catalogue entry. */
type ToolName = 'bold' | 'italic' | 'heading' | 'bulletList' | 'orderedList' | 'link' | 'undo' | 'redo'

export function toolbar(editor: Editor, section: string): HTMLElement {
  // Each button's face is an icon (no text) or its own name ("Länk"), so
  // what a person sees is what speech input and screen readers call it
  // (WCAG 2.5.3); the tooltip says the name for everyone else.
  type Item = { name: ToolName; face: IconName | null; run: () => void; active?: () => boolean }
  const items: Item[] = [
    { name: 'bold', face: 'bold', run: () => editor.chain().focus().toggleBold().run(), active: () => editor.isActive('bold') },
    { name: 'italic', face: 'italic', run: () => editor.chain().focus().toggleItalic().run(), active: () => editor.isActive('italic') },
    { name: 'heading', face: 'heading', run: () => editor.chain().focus().toggleHeading({ level: 3 }).run(), active: () => editor.isActive('heading') },
    { name: 'bulletList', face: 'bulletList', run: () => editor.chain().focus().toggleBulletList().run(), active: () => editor.isActive('bulletList') },
    { name: 'orderedList', face: 'orderedList', run: () => editor.chain().focus().toggleOrderedList().run(), active: () => editor.isActive('orderedList') },
    {
      name: 'link',
      face: null,
      run: () => {
        const previous = (editor.getAttributes('link').href as string | undefined) ?? ''
        const url = window.prompt(t().linkPrompt, previous)
        if (url === null) return
        if (url.trim() === '') editor.chain().focus().extendMarkRange('link').unsetLink().run()
        else editor.chain().focus().extendMarkRange('link').setLink({ href: url.trim() }).run()
      },
      active: () => editor.isActive('link'),
    },
    { name: 'undo', face: 'undo', run: () => editor.commands.undo() },
    { name: 'redo', face: 'redo', run: () => editor.commands.redo() },
  ]
  const buttons = items.map((item) => {
    const b = h(
      'button',
      {
        type: 'button',
        'data-tool': item.name,
        'aria-pressed': item.active ? 'false' : null,
        onmousedown: (e: Event) => e.preventDefault(),
        onclick: () => item.run(),
      },
      item.face ? icon(item.face) : null,
    )
    return { b, item }
  })
  const refresh = () => {
    for (const { b, item } of buttons) if (item.active) b.setAttribute('aria-pressed', String(item.active()))
  }
  editor.on('transaction', refresh)
  const bar = h('div', { role: 'toolbar', class: 'format-bar' }, buttons.map((x) => x.b))
  relabelToolbar(bar, section)
  return bar
}

/** Names a toolbar's buttons (and the toolbar) in the language now chosen. */
export function relabelToolbar(bar: HTMLElement, section: string): void {
  const c = t()
  bar.setAttribute('aria-label', c.formatting(section))
  for (const b of bar.querySelectorAll<HTMLButtonElement>('button[data-tool]')) {
    const label = c[b.dataset.tool as ToolName]
    b.title = label
    // A text face is the name itself; an icon needs one.
    if (b.querySelector('svg')) b.setAttribute('aria-label', label)
    else b.textContent = label
  }
}
