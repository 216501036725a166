// The protocol's fixed parts, laid out as a municipal protocol: the head
// (body, "Protokoll" and its state, title, date, time and place), who is
// present grouped by agency, and the signature lines (the secretary; the
// chair and justerare with their sign-offs once locked). Plain functions
// from the meeting to elements, in the language now chosen.

import type { LockedProtocol, MeetingView, Participant } from '../api'
import { type Child, h } from '../dom'
import { clock, dateTime, longDate } from '../format'
import { t } from '../i18n'

/** The head: the body's name, the kind and state, the title, the facts. */
export function protocolHead(v: MeetingView): Child[] {
  const c = t()
  const state = v.state ?? 'draft'
  const meta: Array<[string, string]> = []
  if (v.date) meta.push([c.dateLabel, longDate(v.date)])
  if (v.time) meta.push([c.timeLabel, clock(v.time)])
  if (v.place) meta.push([c.placeLabel, v.place])
  return [
    v.body ? h('p', { class: 'body-name' }, v.body) : null,
    h('p', { class: 'doc-kind' }, c.protocol, ' ', h('span', { class: `state state-${state}` }, c.states[state] ?? state)),
    h('h1', { id: 'protocol-title' }, v.title),
    meta.length ? h('dl', { class: 'meta' }, meta.map(([k, val]) => h('div', null, h('dt', null, k), h('dd', null, val)))) : null,
  ]
}

/** "Närvarande": the heading and the participants by agency. */
export function attendance(participants: Participant[]): Child[] {
  return [h('h2', { id: 'present-h' }, t().present), byAgency(participants)]
}

/** The signature lines, `locked` once the protocol is. */
export function signatures(participants: Participant[], locked: LockedProtocol | null): Child[] {
  const c = t()
  const secretaries = participants.filter((p) => p.role === 'secretary')
  const verifiers = participants.filter((p) => p.role === 'chair').concat(participants.filter((p) => p.role === 'justerare'))
  return [
    h('h2', { id: 'signatures-h', class: 'visually-hidden' }, c.signatures),
    h(
      'div',
      { class: 'signature-block' },
      h('p', { class: 'signature-head' }, c.atTheProtocol),
      secretaries.length
        ? secretaries.map((p) => signature(p.user.display_name, c.roles.secretary ?? ''))
        : h('p', { class: 'muted' }, c.noSecretary),
    ),
    verifiers.length || locked
      ? h(
          'div',
          { class: 'signature-block' },
          h('p', { class: 'signature-head' }, c.verifiedBy),
          locked
            ? locked.required.map((r) => signature(r.name, c.roles[r.role] ?? r.role, r.signed_at ? c.signedAt(dateTime(r.signed_at)) : c.notSigned, !!r.signed_at))
            : verifiers.map((p) => signature(p.user.display_name, c.roles[p.role] ?? p.role, c.notSigned)),
        )
      : null,
  ]
}

function byAgency(participants: Participant[]): HTMLElement {
  const c = t()
  if (participants.length === 0) return h('p', { class: 'muted' }, c.noParticipants)
  const groups = new Map<string, Participant[]>()
  for (const p of participants) {
    const key = p.user.agency?.name ?? c.otherParticipants
    groups.set(key, [...(groups.get(key) ?? []), p])
  }
  const names = [...groups.keys()].sort((a, b) =>
    a === c.otherParticipants ? 1 : b === c.otherParticipants ? -1 : a.localeCompare(b, c.locale),
  )
  return h(
    'dl',
    { class: 'present' },
    names.map((agency) =>
      h(
        'div',
        null,
        h('dt', null, agency),
        (groups.get(agency) ?? []).map((p) =>
          h('dd', null, p.user.display_name, p.role !== 'member' ? h('span', { class: 'role' }, `, ${(c.roles[p.role] ?? p.role).toLowerCase()}`) : null),
        ),
      ),
    ),
  )
}

function signature(name: string, role: string, note: string | null = null, signed = false): HTMLElement {
  return h(
    'div',
    { class: signed ? 'signature signed' : 'signature' },
    h('div', { class: 'signature-line', 'aria-hidden': 'true' }),
    h('p', { class: 'signature-name' }, name),
    h('p', { class: 'signature-role' }, role, note ? ` · ${note}` : ''),
  )
}

