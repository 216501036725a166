// The console's participants: who is in the meeting and with which role
// (changed in place), removing someone, adding someone the secretary may
// pick.

import { type Role, api } from '../../api'
import { clear, h, uid } from '../../dom'
import { t } from '../../i18n'
import { type ToolContext, field, roleSelect } from './shared'

export interface ParticipantsTool {
  el: HTMLElement
  /** Shows the participants and the people who may still be added. */
  render(): void
}

export function participantsTool(ctx: ToolContext): ParticipantsTool {
  const c = t()
  const list = h('ul', { class: 'participants-admin' })
  const addPerson = h('select', { id: 'c-person' })
  const addRole = roleSelect('c-person-role', 'member')
  const addForm = h(
    'form',
    { class: 'stack' },
    field('c-person', c.person, addPerson),
    field('c-person-role', c.role, addRole),
    h('button', { type: 'submit' }, c.addParticipant),
  )
  addForm.addEventListener('submit', (e) => {
    e.preventDefault()
    if (!addPerson.value) return
    void api.setParticipant(ctx.meetingId, addPerson.value, addRole.value as Role).then(() => {
      ctx.say(c.saved)
      ctx.changed()
    }, ctx.fail)
  })

  function render(): void {
    const view = ctx.view()
    clear(
      list,
      view.participants.map((p) => {
        const id = uid('role')
        const select = roleSelect(id, p.role)
        select.addEventListener('change', () => {
          void api.setParticipant(ctx.meetingId, p.user.id, select.value as Role).then(() => {
            ctx.say(c.saved)
            ctx.changed()
          }, ctx.fail)
        })
        const name = p.user.agency ? `${p.user.display_name} (${p.user.agency.name})` : p.user.display_name
        // Those who must sign off need an administrator to confirm their
        // account first: the secretary sees it here, in time to ask.
        const unconfirmed = p.user.confirmed === false && (p.role === 'chair' || p.role === 'justerare')
        return h(
          'li',
          null,
          h(
            'span',
            { class: 'participant-name' },
            name,
            unconfirmed ? h('span', { class: 'unconfirmed' }, ` (${c.unconfirmedAccount})`) : null,
          ),
          h('label', { for: id, class: 'visually-hidden' }, c.roleOf(p.user.display_name)),
          select,
          h(
            'button',
            {
              type: 'button',
              'aria-label': c.removeParticipant(p.user.display_name),
              onclick: () => {
                if (!window.confirm(c.confirmRemoveParticipant(p.user.display_name))) return
                void api.removeParticipant(ctx.meetingId, p.user.id).then(() => {
                  ctx.say(c.saved)
                  ctx.changed()
                }, ctx.fail)
              },
            },
            c.remove,
          ),
        )
      }),
    )
    const inMeeting = new Set(view.participants.map((p) => p.user.id))
    const candidates = ctx.people().filter((p) => !inMeeting.has(p.id))
    clear(
      addPerson,
      h('option', { value: '' }, c.choosePerson),
      candidates.map((p) => h('option', { value: p.id }, p.agency ? `${p.display_name} (${p.agency.name})` : p.display_name)),
    )
  }

  return {
    el: h('section', { 'aria-labelledby': 'c-part-h' }, h('h3', { id: 'c-part-h' }, c.participants), list, h('h4', null, c.addParticipant), addForm),
    render,
  }
}
