// Who is here: the server-stamped awareness `user` of every client (never
// what a client claims about itself), which section each person's caret is
// in, their agency colour, and one debounced polite announcement of joins
// and leaves.

import type { Awareness } from 'y-protocols/awareness'
import * as Y from 'yjs'
import { h } from './dom'
import { t } from './i18n'

/** The identity the server stamps on every awareness state. */
export interface StampedUser {
  id: string
  name: string
  agency: string | null
}

/**
 * Agency colours: dark enough for white text (WCAG AA) and each with a
 * light tint for selections. A colour is only ever one of these constants,
 * picked by hashing the stamped agency, so nothing a client sends reaches a
 * style.
 */
const PALETTE: ReadonlyArray<{ solid: string; tint: string }> = [
  { solid: '#1f5fa8', tint: 'rgba(31, 95, 168, 0.18)' },
  { solid: '#a3262a', tint: 'rgba(163, 38, 42, 0.16)' },
  { solid: '#1d6b35', tint: 'rgba(29, 107, 53, 0.18)' },
  { solid: '#7a3c9e', tint: 'rgba(122, 60, 158, 0.16)' },
  { solid: '#8a4b00', tint: 'rgba(138, 75, 0, 0.18)' },
  { solid: '#0e6b73', tint: 'rgba(14, 107, 115, 0.18)' },
  { solid: '#a01f64', tint: 'rgba(160, 31, 100, 0.16)' },
  { solid: '#4b5563', tint: 'rgba(75, 85, 99, 0.18)' },
]

function hash(text: string): number {
  // FNV-1a: stable across browsers and sessions.
  let x = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    x ^= text.charCodeAt(i)
    x = Math.imul(x, 0x01000193)
  }
  return x >>> 0
}

export function colourOf(user: StampedUser): { solid: string; tint: string } {
  const key = user.agency ? `agency:${user.agency}` : `user:${user.id}`
  return PALETTE[hash(key) % PALETTE.length] ?? PALETTE[0]!
}

export function stampedUser(state: unknown): StampedUser | null {
  if (typeof state !== 'object' || state === null) return null
  const user = (state as { user?: unknown }).user
  if (typeof user !== 'object' || user === null) return null
  const { id, name, agency } = user as Record<string, unknown>
  if (typeof id !== 'string' || typeof name !== 'string') return null
  return { id, name, agency: typeof agency === 'string' ? agency : null }
}

export function describe(user: StampedUser): string {
  return user.agency ? `${user.name} (${user.agency})` : user.name
}

/** The caret drawn in an editor: a coloured bar and a name label, hidden from assistive technology (the presence list says the same in text). */
export function caret(user: unknown): HTMLElement {
  const who = stampedUser({ user }) ?? { id: '', name: '?', agency: null }
  const { solid } = colourOf(who)
  const label = h('span', { class: 'caret-label' }, describe(who))
  label.style.backgroundColor = solid
  const el = h('span', { class: 'caret', 'aria-hidden': 'true' }, '\u2060', label, '\u2060')
  el.style.borderColor = solid
  return el
}

export function selection(user: unknown): { style: string; class: string } {
  const who = stampedUser({ user }) ?? { id: '', name: '?', agency: null }
  return { style: `background-color: ${colourOf(who).tint}`, class: 'remote-selection' }
}

/** Which root fragment a caret's anchor lies in, by name (`section:{id}`), or null. */
export function caretRoot(doc: Y.Doc, cursor: unknown): string | null {
  if (typeof cursor !== 'object' || cursor === null) return null
  const anchor = (cursor as { anchor?: unknown }).anchor
  if (!anchor) return null
  let abs: Y.AbsolutePosition | null
  try {
    abs = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(anchor), doc)
  } catch {
    return null
  }
  if (!abs) return null
  let type: Y.AbstractType<unknown> = abs.type
  while (type._item && type._item.parent instanceof Y.AbstractType) type = type._item.parent
  for (const [name, root] of doc.share) {
    if (root === type) return name
  }
  return null
}

export interface PresentPerson {
  user: StampedUser
  self: boolean
  /** Section ids their carets are in. */
  sections: string[]
}

/** People connected now, one entry per person (several tabs are one). */
export function present(awareness: Awareness, doc: Y.Doc, me: StampedUser): PresentPerson[] {
  const byUser = new Map<string, PresentPerson>()
  awareness.getStates().forEach((state, client) => {
    // Our own state is stamped only on its way through the server; locally
    // we are who /api/me says.
    const user = client === awareness.clientID ? me : stampedUser(state)
    if (!user) return
    const entry = byUser.get(user.id) ?? { user, self: false, sections: [] }
    if (client === awareness.clientID) entry.self = true
    const root = caretRoot(doc, (state as { cursor?: unknown }).cursor)
    if (root?.startsWith('section:')) {
      const id = root.slice('section:'.length)
      if (!entry.sections.includes(id)) entry.sections.push(id)
    }
    byUser.set(user.id, entry)
  })
  return [...byUser.values()].sort((a, b) => Number(b.self) - Number(a.self) || a.user.name.localeCompare(b.user.name))
}

/** How long joins and leaves are gathered before one announcement. */
const ANNOUNCE_AFTER_MS = 1500

/** Announces joins and leaves politely, gathered, never per keystroke. */
export class Announcer {
  readonly el = h('div', { class: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true' })
  private known: Map<string, string> | null = null
  private joined = new Map<string, string>()
  private left = new Map<string, string>()
  private timer: number | undefined

  /** Forget who was here (after a disconnect): the next list is a baseline. */
  reset(): void {
    this.known = null
  }

  update(people: PresentPerson[]): void {
    const now = new Map(people.filter((p) => !p.self).map((p) => [p.user.id, describe(p.user)]))
    if (this.known === null) {
      this.known = now
      return
    }
    for (const [id, name] of now) {
      if (!this.known.has(id)) {
        if (this.left.has(id)) this.left.delete(id)
        else this.joined.set(id, name)
      }
    }
    for (const [id, name] of this.known) {
      if (!now.has(id)) {
        if (this.joined.has(id)) this.joined.delete(id)
        else this.left.set(id, name)
      }
    }
    this.known = now
    if (this.joined.size + this.left.size === 0) return
    window.clearTimeout(this.timer)
    this.timer = window.setTimeout(() => this.flush(), ANNOUNCE_AFTER_MS)
  }

  destroy(): void {
    window.clearTimeout(this.timer)
  }

  private flush(): void {
    const c = t()
    const parts: string[] = []
    if (this.joined.size) parts.push(c.joined([...this.joined.values()].join(', ')))
    if (this.left.size) parts.push(c.left([...this.left.values()].join(', ')))
    this.joined.clear()
    this.left.clear()
    this.el.textContent = parts.join(' ')
  }
}
