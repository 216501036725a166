// The console's invitations: a link for someone without an account yet
// (username, name, role and, for administrators, the agency), and the
// meeting's pending invitations with "Återkalla".

import { type Role, api } from '../../api'
import { clear, h } from '../../dom'
import { dateTime } from '../../format'
import { t } from '../../i18n'
import { type ToolContext, field, roleSelect } from './shared'

export interface InvitationsTool {
  el: HTMLElement
  /** The agencies arrived: an administrator may pick one. */
  loaded(): void
  /** Loads the meeting's pending invitations. */
  loadPending(): Promise<void>
}

export function invitationsTool(ctx: ToolContext): InvitationsTool {
  const c = t()
  const inv = {
    username: h('input', { id: 'c-inv-username', autocomplete: 'off', required: true }),
    name: h('input', { id: 'c-inv-name', autocomplete: 'off', required: true }),
    role: roleSelect('c-inv-role', 'member'),
    agency: h('select', { id: 'c-inv-agency' }),
  }
  const result = h('div', { class: 'invitation-result' })
  const pendingList = h('ul', { class: 'pending-invitations' })
  const pendingSection = h('div', { hidden: true }, h('h4', null, c.pendingInvitations), pendingList)
  const form = h(
    'form',
    { class: 'stack' },
    field('c-inv-username', c.username, inv.username),
    field('c-inv-name', c.displayName, inv.name),
    field('c-inv-role', c.role, inv.role),
    ctx.me.is_admin ? field('c-inv-agency', c.agency, inv.agency) : null,
    h('button', { type: 'submit' }, c.createInvitation),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    void api
      .invite(ctx.meetingId, {
        username: inv.username.value,
        display_name: inv.name.value,
        role: inv.role.value as Role,
        agency_id: ctx.me.is_admin && inv.agency.value ? inv.agency.value : null,
      })
      .then((issued) => {
        const link = new URL(issued.url, location.origin).href
        const out = h('input', { id: 'c-inv-link', readonly: true, value: link, class: 'link-output' })
        clear(
          result,
          field('c-inv-link', c.invitationLink, out),
          h(
            'button',
            {
              type: 'button',
              onclick: () => {
                out.select()
                void navigator.clipboard?.writeText(link).then(
                  () => ctx.say(c.copied),
                  () => ctx.say(c.copied),
                )
              },
            },
            c.copy,
          ),
        )
        inv.username.value = ''
        inv.name.value = ''
        void load()
      }, ctx.fail)
  })

  async function load(): Promise<void> {
    try {
      const list = await api.invitations(ctx.meetingId)
      pendingSection.hidden = false
      clear(
        pendingList,
        list.length === 0
          ? h('li', { class: 'muted' }, c.noPendingInvitations)
          : list.map((i) =>
              h(
                'li',
                null,
                `${i.display_name} (${i.username}), ${c.roles[i.role] ?? i.role}, ${dateTime(i.expires_at)} `,
                h(
                  'button',
                  {
                    type: 'button',
                    'aria-label': c.revokeInvitation(i.display_name),
                    onclick: () => void api.revokeInvitation(ctx.meetingId, i.id).then(() => void load(), ctx.fail),
                  },
                  c.revoke,
                ),
              ),
            ),
      )
    } catch {
      // Servers without the invitation list: creating links still works.
      pendingSection.hidden = true
    }
  }

  return {
    el: h('section', { 'aria-labelledby': 'c-inv-h' }, h('h3', { id: 'c-inv-h' }, c.invitations), h('p', { class: 'hint' }, c.inviteIntroConsole), form, result, pendingSection),
    loaded() {
      clear(inv.agency, h('option', { value: '' }, c.noAgency), ctx.agencies().map((x) => h('option', { value: x.id }, x.name)))
    },
    loadPending: load,
  }
}
