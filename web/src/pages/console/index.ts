// The secretary console on the protocol page (secretary and administrators):
// one disclosure holding the tools, each in its own file by what it edits
// (agenda.ts, participants.ts, invitations.ts, details.ts). This file
// assembles them, loads what they pick from (agencies, people), keeps the
// meeting and agenda they show, and sets the tools aside while the protocol
// is locked.

import type { AgendaItem } from '../../agenda'
import { ApiError, type Agency, type Me, type MeetingView, type Person, api } from '../../api'
import { h } from '../../dom'
import { t } from '../../i18n'
import { agendaTool } from './agenda'
import { detailsTool } from './details'
import { invitationsTool } from './invitations'
import { participantsTool } from './participants'
import type { ToolContext } from './shared'

export interface ConsoleContext {
  meetingId: string
  me: Me
  view: MeetingView
  agenda: () => AgendaItem[]
  /** The meeting's details or participants changed: reload them. */
  changed: () => void
}

export interface Console {
  el: HTMLElement
  update(view: MeetingView, agenda: AgendaItem[]): void
  destroy(): void
}

export function secretaryConsole(ctx: ConsoleContext): Console {
  const c = t()
  let view = ctx.view
  let agenda = ctx.agenda()
  let agencies: Agency[] = []
  let people: Person[] = []

  const status = h('p', { class: 'console-status', role: 'status' })
  const say = (text: string) => {
    status.textContent = text
  }
  const tools: ToolContext = {
    meetingId: ctx.meetingId,
    me: ctx.me,
    view: () => view,
    agenda: () => agenda,
    agencies: () => agencies,
    people: () => people,
    say,
    fail: (e) => say(e instanceof ApiError && e.status !== 0 && e.status !== 500 ? e.message : c.genericError),
    changed: ctx.changed,
  }
  const agendaAdmin = agendaTool(tools)
  const participants = participantsTool(tools)
  const invitations = invitationsTool(tools)
  const details = detailsTool(tools)

  // A disclosure (WAI-ARIA accordion pattern): the tools are long, and at
  // tablet width they sit above the protocol.
  const toggle = h('button', { type: 'button', class: 'disclosure', 'aria-expanded': 'false', 'aria-controls': 'console-body' }, c.console)
  // While the protocol is locked the server refuses every change to the
  // agenda, the participants and the details (409): the tools step aside.
  const frozenNote = h('p', { class: 'frozen-note' }, c.frozenConsole)
  const editable = h('div', null, agendaAdmin.el, participants.el, invitations.el, details.el)
  const showFrozen = () => {
    const frozen = (view.state ?? 'draft') !== 'draft'
    frozenNote.hidden = !frozen
    editable.hidden = frozen
  }
  showFrozen()
  const body = h('div', { id: 'console-body', hidden: true }, h('p', { class: 'muted' }, c.consoleIntro), status, frozenNote, editable)
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true'
    toggle.setAttribute('aria-expanded', String(open))
    body.hidden = !open
  })
  const el = h('section', { class: 'console', 'aria-labelledby': 'console-h' }, h('h2', { id: 'console-h' }, toggle), body)

  void (async () => {
    const [a, p] = await Promise.allSettled([api.agencies(), api.people()])
    if (a.status === 'fulfilled') agencies = a.value
    if (p.status === 'fulfilled') people = p.value
    invitations.loaded()
    agendaAdmin.refreshOwners()
    participants.render()
  })()
  void invitations.loadPending()

  return {
    el,
    update(next, nextAgenda) {
      const participantsChanged = next.participants !== view.participants
      view = next
      agenda = nextAgenda
      showFrozen()
      agendaAdmin.render()
      agendaAdmin.refreshOwners()
      if (participantsChanged) participants.render()
      details.update()
    },
    destroy() {
      el.remove()
    },
  }
}
