// What the secretary console's tools share: the context each is given (the
// meeting, the lists loaded once, the console's status line) and the two
// form pieces they all use (a labelled field, a role picker).

import type { AgendaItem } from '../../agenda'
import type { Agency, Me, MeetingView, Person, Role } from '../../api'
import { h } from '../../dom'
import { t } from '../../i18n'

export interface ToolContext {
  meetingId: string
  me: Me
  /** The meeting as last loaded. */
  view: () => MeetingView
  /** The live agenda, as last shown. */
  agenda: () => AgendaItem[]
  /** The agencies and people the secretary may pick (empty until loaded). */
  agencies: () => Agency[]
  people: () => Person[]
  /** Says something in the console's status line. */
  say: (text: string) => void
  /** Says what went wrong with a request. */
  fail: (e: unknown) => void
  /** The meeting's details or participants changed: reload them. */
  changed: () => void
}

const ROLES: Role[] = ['member', 'chair', 'justerare', 'secretary']

export function field(id: string, label: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control)
}

export function roleSelect(id: string, current: Role): HTMLSelectElement {
  const c = t()
  const select = h('select', { id }, ROLES.map((r) => h('option', { value: r }, c.roles[r] ?? r)))
  select.value = current
  return select
}
