// The secretary console on the protocol page (secretary and administrators):
// the meeting's details, the agenda (add, rename, renumber, reassign,
// remove, reorder by drag or by "Flytta upp/ned"), participants and roles,
// and invitation links. Agenda changes go through the API; the server
// mirrors them into the document, so this list follows the same live
// agenda as everyone else's page.

import { type AgendaItem, itemLabel } from '../agenda'
import {
  ApiError,
  type Agency,
  type Me,
  type MeetingView,
  type Person,
  type Role,
  api,
  parseOwnerLabel,
} from '../api'
import { clear, h, uid } from '../dom'
import { dateTime } from '../format'
import { t } from '../i18n'

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

const ROLES: Role[] = ['member', 'chair', 'justerare', 'secretary']

export function secretaryConsole(ctx: ConsoleContext): Console {
  const c = t()
  let view = ctx.view
  let agenda = ctx.agenda()
  let agencies: Agency[] = []
  let people: Person[] = []
  let editing: string | null = null
  let pendingFocus: { id: string; action: string } | null = null
  let dragged: string | null = null

  const status = h('p', { class: 'console-status', role: 'status' })
  const say = (text: string) => {
    status.textContent = text
  }
  const fail = (e: unknown) => {
    say(e instanceof ApiError && e.status !== 0 && e.status !== 500 ? e.message : c.genericError)
  }

  // ---- owners ---------------------------------------------------------------

  function ownerOptions(select: HTMLSelectElement, current: string): void {
    const known = new Map<string, string>()
    for (const a of agencies) known.set(a.id, a.name)
    for (const p of view.participants) if (p.user.agency) known.set(p.user.agency.id, p.user.agency.name)
    for (const i of agenda) {
      const o = parseOwnerLabel(i.owner)
      if (o?.kind === 'agency' && !known.has(o.agency_id)) known.set(o.agency_id, i.ownerName || o.agency_id)
    }
    const agencyList = [...known].sort((a, b) => a[1].localeCompare(b[1], c.locale))
    const persons = view.participants.map((p) => p.user).sort((a, b) => a.display_name.localeCompare(b.display_name, c.locale))
    clear(
      select,
      h('option', { value: 'secretary' }, c.secretaryOwner),
      h('optgroup', { label: c.ownerAgencies }, agencyList.map(([id, name]) => h('option', { value: `agency:${id}` }, name))),
      h('optgroup', { label: c.ownerPeople }, persons.map((p) => h('option', { value: `user:${p.id}` }, p.display_name))),
    )
    select.value = current
    if (select.value !== current && current.startsWith('user:')) {
      const item = agenda.find((i) => i.owner === current)
      select.append(h('option', { value: current }, item?.ownerName ?? current))
      select.value = current
    }
  }

  // ---- meeting details ------------------------------------------------------

  const f = {
    title: h('input', { id: 'c-title', required: true, maxlength: 200 }),
    body: h('input', { id: 'c-body' }),
    date: h('input', { id: 'c-date', type: 'date' }),
    time: h('input', { id: 'c-time', type: 'time' }),
    place: h('input', { id: 'c-place' }),
  }
  const fillDetails = () => {
    f.title.value = view.title
    f.body.value = view.body
    f.date.value = view.date ?? ''
    f.time.value = view.time ?? ''
    f.place.value = view.place
  }
  const detailsForm = h(
    'form',
    { class: 'stack' },
    field('c-title', c.title, f.title),
    field('c-body', c.body, f.body),
    h('div', { class: 'row' }, field('c-date', c.date, f.date), field('c-time', c.time, f.time)),
    field('c-place', c.place, f.place),
    h('button', { type: 'submit' }, c.save),
  )
  detailsForm.addEventListener('submit', (e) => {
    e.preventDefault()
    void api
      .updateMeeting(ctx.meetingId, {
        title: f.title.value,
        body: f.body.value,
        date: f.date.value || null,
        time: f.time.value || null,
        place: f.place.value,
      })
      .then(() => {
        say(c.saved)
        ctx.changed()
      }, fail)
  })

  // ---- agenda ---------------------------------------------------------------

  const agendaList = h('ol', { class: 'agenda-admin', 'aria-describedby': 'drag-hint' })

  async function move(id: string, delta: number): Promise<void> {
    const ids = agenda.map((i) => i.id)
    const from = ids.indexOf(id)
    const to = from + delta
    if (from < 0 || to < 0 || to >= ids.length) return
    ids.splice(from, 1)
    ids.splice(to, 0, id)
    await reorder(ids, id, delta < 0 ? 'up' : 'down')
  }

  async function reorder(ids: string[], id: string, action: string): Promise<void> {
    pendingFocus = { id, action }
    try {
      await api.reorder(ctx.meetingId, ids)
      const item = agenda.find((i) => i.id === id)
      if (item) say(c.moved(itemLabel(item), ids.indexOf(id) + 1))
    } catch (e) {
      pendingFocus = null
      fail(e)
    }
  }

  function row(item: AgendaItem, index: number): HTMLElement {
    const label = itemLabel(item)
    const li = h('li', { 'data-id': item.id, draggable: 'true', class: 'agenda-row' })
    li.addEventListener('dragstart', (e) => {
      dragged = item.id
      e.dataTransfer?.setData('text/plain', item.id)
      li.classList.add('dragging')
    })
    li.addEventListener('dragend', () => {
      dragged = null
      li.classList.remove('dragging')
    })
    li.addEventListener('dragover', (e) => {
      if (dragged && dragged !== item.id) e.preventDefault()
    })
    li.addEventListener('drop', (e) => {
      e.preventDefault()
      if (!dragged || dragged === item.id) return
      // Dropped on an item: take its place (after it when moving down,
      // before it when moving up).
      const ids = agenda.map((i) => i.id).filter((x) => x !== dragged)
      ids.splice(index, 0, dragged)
      void reorder(ids, dragged, 'edit')
    })
    if (editing === item.id) {
      li.draggable = false
      li.append(editForm(item))
      return li
    }
    const button = (action: string, text: string, aria: string, run: () => void, disabled = false) =>
      h('button', { type: 'button', 'data-action': action, 'aria-label': aria, disabled, onclick: run }, text)
    li.append(
      h('span', { class: 'drag', 'aria-hidden': 'true' }, '⠿'),
      h('span', { class: 'agenda-label' }, h('strong', null, label), h('span', { class: 'muted' }, ` – ${item.owner === 'secretary' ? c.secretaryOwner : item.ownerName}`)),
      h(
        'span',
        { class: 'agenda-actions' },
        button('up', c.moveUp, c.moveUpItem(label), () => void move(item.id, -1), index === 0),
        button('down', c.moveDown, c.moveDownItem(label), () => void move(item.id, 1), index === agenda.length - 1),
        button('edit', c.edit, c.editItem(label), () => {
          editing = item.id
          pendingFocus = { id: item.id, action: 'number' }
          renderAgenda()
        }),
        button('remove', c.remove, c.removeItem(label), () => {
          if (!window.confirm(c.confirmRemoveItem(label))) return
          void api.removeSection(ctx.meetingId, item.id).then(() => say(c.saved), fail)
        }),
      ),
    )
    return li
  }

  function editForm(item: AgendaItem): HTMLElement {
    const id = uid('edit')
    const number = h('input', { id: `${id}-n`, value: item.number, 'data-action': 'number', size: 5 })
    const title = h('input', { id: `${id}-t`, value: item.title, required: true })
    const owner = h('select', { id: `${id}-o` })
    ownerOptions(owner, item.owner)
    const form = h(
      'form',
      { class: 'stack edit-item' },
      h('div', { class: 'row' }, field(`${id}-n`, c.number, number), field(`${id}-t`, c.itemTitle, title)),
      field(`${id}-o`, c.owner, owner),
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'submit' }, c.save),
        h(
          'button',
          {
            type: 'button',
            onclick: () => {
              editing = null
              pendingFocus = { id: item.id, action: 'edit' }
              renderAgenda()
            },
          },
          c.cancel,
        ),
      ),
    )
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      const patch: { number?: string; title?: string; owner?: ReturnType<typeof parseOwnerLabel> & object } = {}
      if (number.value.trim() !== item.number) patch.number = number.value
      if (title.value.trim() !== item.title) patch.title = title.value
      const newOwner = parseOwnerLabel(owner.value)
      if (owner.value !== item.owner && newOwner) patch.owner = newOwner
      void api.changeSection(ctx.meetingId, item.id, patch).then(() => {
        editing = null
        pendingFocus = { id: item.id, action: 'edit' }
        say(c.saved)
        renderAgenda()
      }, fail)
    })
    return form
  }

  function renderAgenda(): void {
    const active = document.activeElement
    const li = active instanceof HTMLElement ? active.closest<HTMLElement>('.agenda-row') : null
    const keep = pendingFocus ?? (li && agendaList.contains(li) && active instanceof HTMLElement ? { id: li.dataset.id ?? '', action: active.dataset.action ?? '' } : null)
    if (editing && !agenda.some((i) => i.id === editing)) editing = null
    clear(agendaList, agenda.map(row))
    if (keep) {
      const target = agendaList.querySelector<HTMLElement>(`[data-id="${keep.id}"]`)
      let el = target?.querySelector<HTMLElement>(`[data-action="${keep.action}"]`)
      if (el instanceof HTMLButtonElement && el.disabled) {
        el = target?.querySelector<HTMLElement>(`[data-action="${keep.action === 'up' ? 'down' : 'up'}"]`)
      }
      if (el && !(el instanceof HTMLButtonElement && el.disabled)) el.focus()
      pendingFocus = null
    }
  }

  const addNumber = h('input', { id: 'c-add-number', size: 5 })
  const addTitle = h('input', { id: 'c-add-title', required: true })
  const addOwner = h('select', { id: 'c-add-owner' })
  const addForm = h(
    'form',
    { class: 'stack' },
    h('div', { class: 'row' }, field('c-add-number', c.number, addNumber), field('c-add-title', c.itemTitle, addTitle)),
    field('c-add-owner', c.owner, addOwner),
    h('button', { type: 'submit' }, c.addItem),
  )
  addForm.addEventListener('submit', (e) => {
    e.preventDefault()
    const owner = parseOwnerLabel(addOwner.value) ?? { kind: 'secretary' as const }
    void api
      .addSection(ctx.meetingId, { title: addTitle.value, owner, ...(addNumber.value.trim() ? { number: addNumber.value } : {}) })
      .then(() => {
        addTitle.value = ''
        addNumber.value = ''
        say(c.saved)
      }, fail)
  })

  // ---- participants -----------------------------------------------------------

  const participantList = h('ul', { class: 'participants-admin' })
  const addPerson = h('select', { id: 'c-person' })
  const addRole = roleSelect('c-person-role', 'member')
  const addParticipantForm = h(
    'form',
    { class: 'stack' },
    field('c-person', c.person, addPerson),
    field('c-person-role', c.role, addRole),
    h('button', { type: 'submit' }, c.addParticipant),
  )
  addParticipantForm.addEventListener('submit', (e) => {
    e.preventDefault()
    if (!addPerson.value) return
    void api.setParticipant(ctx.meetingId, addPerson.value, addRole.value as Role).then(() => {
      say(c.saved)
      ctx.changed()
    }, fail)
  })

  function renderParticipants(): void {
    clear(
      participantList,
      view.participants.map((p) => {
        const id = uid('role')
        const select = roleSelect(id, p.role)
        select.addEventListener('change', () => {
          void api.setParticipant(ctx.meetingId, p.user.id, select.value as Role).then(() => {
            say(c.saved)
            ctx.changed()
          }, fail)
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
                  say(c.saved)
                  ctx.changed()
                }, fail)
              },
            },
            c.remove,
          ),
        )
      }),
    )
    const inMeeting = new Set(view.participants.map((p) => p.user.id))
    const candidates = people.filter((p) => !inMeeting.has(p.id))
    clear(
      addPerson,
      h('option', { value: '' }, c.choosePerson),
      candidates.map((p) => h('option', { value: p.id }, p.agency ? `${p.display_name} (${p.agency.name})` : p.display_name)),
    )
  }

  // ---- invitations --------------------------------------------------------------

  const inv = {
    username: h('input', { id: 'c-inv-username', autocomplete: 'off', required: true }),
    name: h('input', { id: 'c-inv-name', autocomplete: 'off', required: true }),
    role: roleSelect('c-inv-role', 'member'),
    agency: h('select', { id: 'c-inv-agency' }),
  }
  const invResult = h('div', { class: 'invitation-result' })
  const pendingList = h('ul', { class: 'pending-invitations' })
  const pendingSection = h('div', { hidden: true }, h('h4', null, c.pendingInvitations), pendingList)
  const inviteForm = h(
    'form',
    { class: 'stack' },
    field('c-inv-username', c.username, inv.username),
    field('c-inv-name', c.displayName, inv.name),
    field('c-inv-role', c.role, inv.role),
    ctx.me.is_admin ? field('c-inv-agency', c.agency, inv.agency) : null,
    h('button', { type: 'submit' }, c.createInvitation),
  )
  inviteForm.addEventListener('submit', (e) => {
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
          invResult,
          field('c-inv-link', c.invitationLink, out),
          h(
            'button',
            {
              type: 'button',
              onclick: () => {
                out.select()
                void navigator.clipboard?.writeText(link).then(
                  () => say(c.copied),
                  () => say(c.copied),
                )
              },
            },
            c.copy,
          ),
        )
        inv.username.value = ''
        inv.name.value = ''
        void loadInvitations()
      }, fail)
  })

  async function loadInvitations(): Promise<void> {
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
                    onclick: () => void api.revokeInvitation(ctx.meetingId, i.id).then(() => void loadInvitations(), fail),
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

  // ---- assembly -------------------------------------------------------------------

  // A disclosure (WAI-ARIA accordion pattern): the tools are long, and at
  // tablet width they sit above the protocol.
  const toggle = h('button', { type: 'button', class: 'disclosure', 'aria-expanded': 'false', 'aria-controls': 'console-body' }, c.console)
  // While the protocol is locked the server refuses every change to the
  // agenda, the participants and the details (409): the tools step aside.
  const frozenNote = h('p', { class: 'frozen-note' }, c.frozenConsole)
  const editable = h(
    'div',
    null,
    h('section', { 'aria-labelledby': 'c-agenda-h' }, h('h3', { id: 'c-agenda-h' }, c.agendaItems), h('p', { id: 'drag-hint', class: 'hint' }, c.dragHint), agendaList, h('h4', null, c.addItem), addForm),
    h('section', { 'aria-labelledby': 'c-part-h' }, h('h3', { id: 'c-part-h' }, c.participants), participantList, h('h4', null, c.addParticipant), addParticipantForm),
    h('section', { 'aria-labelledby': 'c-inv-h' }, h('h3', { id: 'c-inv-h' }, c.invitations), h('p', { class: 'hint' }, c.inviteIntroConsole), inviteForm, invResult, pendingSection),
    h('section', { 'aria-labelledby': 'c-details-h' }, h('h3', { id: 'c-details-h' }, c.details), detailsForm),
  )
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

  const refreshOwners = () => {
    const current = addOwner.value || 'secretary'
    ownerOptions(addOwner, current)
  }

  void (async () => {
    const [a, p] = await Promise.allSettled([api.agencies(), api.people()])
    if (a.status === 'fulfilled') agencies = a.value
    if (p.status === 'fulfilled') people = p.value
    clear(inv.agency, h('option', { value: '' }, c.noAgency), agencies.map((x) => h('option', { value: x.id }, x.name)))
    refreshOwners()
    renderParticipants()
  })()
  void loadInvitations()
  fillDetails()

  return {
    el,
    update(next, nextAgenda) {
      const participantsChanged = next.participants !== view.participants
      view = next
      agenda = nextAgenda
      showFrozen()
      renderAgenda()
      refreshOwners()
      if (participantsChanged) renderParticipants()
      if (!detailsForm.contains(document.activeElement)) fillDetails()
    },
    destroy() {
      el.remove()
    },
  }
}

function field(id: string, label: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control)
}

function roleSelect(id: string, current: Role): HTMLSelectElement {
  const c = t()
  const select = h('select', { id }, ROLES.map((r) => h('option', { value: r }, c.roles[r] ?? r)))
  select.value = current
  return select
}
