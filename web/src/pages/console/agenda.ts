// The console's agenda: the items in order (reordered by drag or by
// "Flytta upp/ned"), each renamed, renumbered or given to another owner in
// place, removed, and new items added. Changes go through the API; the
// server mirrors them into the document, so this list follows the same live
// agenda as everyone else's page.

import { type AgendaItem, itemLabel } from '../../agenda'
import { api, parseOwnerLabel } from '../../api'
import { clear, h, uid } from '../../dom'
import { t } from '../../i18n'
import { type ToolContext, field } from './shared'

export interface AgendaTool {
  el: HTMLElement
  /** Shows the agenda as it is now, keeping the focus where it was. */
  render(): void
  /** The owners to pick from changed (agencies loaded, participants changed). */
  refreshOwners(): void
}

export function agendaTool(ctx: ToolContext): AgendaTool {
  const c = t()
  let editing: string | null = null
  let pendingFocus: { id: string; action: string } | null = null
  let dragged: string | null = null

  // ---- owners ---------------------------------------------------------------

  function ownerOptions(select: HTMLSelectElement, current: string): void {
    const view = ctx.view()
    const agenda = ctx.agenda()
    const known = new Map<string, string>()
    for (const a of ctx.agencies()) known.set(a.id, a.name)
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

  // ---- the list ---------------------------------------------------------------

  const list = h('ol', { class: 'agenda-admin', 'aria-describedby': 'drag-hint' })

  async function move(id: string, delta: number): Promise<void> {
    const ids = ctx.agenda().map((i) => i.id)
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
      const item = ctx.agenda().find((i) => i.id === id)
      if (item) ctx.say(c.moved(itemLabel(item), ids.indexOf(id) + 1))
    } catch (e) {
      pendingFocus = null
      ctx.fail(e)
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
      const ids = ctx
        .agenda()
        .map((i) => i.id)
        .filter((x) => x !== dragged)
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
        button('down', c.moveDown, c.moveDownItem(label), () => void move(item.id, 1), index === ctx.agenda().length - 1),
        button('edit', c.edit, c.editItem(label), () => {
          editing = item.id
          pendingFocus = { id: item.id, action: 'number' }
          render()
        }),
        button('remove', c.remove, c.removeItem(label), () => {
          if (!window.confirm(c.confirmRemoveItem(label))) return
          void api.removeSection(ctx.meetingId, item.id).then(() => ctx.say(c.saved), ctx.fail)
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
              render()
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
        ctx.say(c.saved)
        render()
      }, ctx.fail)
    })
    return form
  }

  function render(): void {
    const agenda = ctx.agenda()
    const active = document.activeElement
    const li = active instanceof HTMLElement ? active.closest<HTMLElement>('.agenda-row') : null
    const keep = pendingFocus ?? (li && list.contains(li) && active instanceof HTMLElement ? { id: li.dataset.id ?? '', action: active.dataset.action ?? '' } : null)
    if (editing && !agenda.some((i) => i.id === editing)) editing = null
    clear(list, agenda.map(row))
    if (keep) {
      const target = list.querySelector<HTMLElement>(`[data-id="${keep.id}"]`)
      let el = target?.querySelector<HTMLElement>(`[data-action="${keep.action}"]`)
      if (el instanceof HTMLButtonElement && el.disabled) {
        el = target?.querySelector<HTMLElement>(`[data-action="${keep.action === 'up' ? 'down' : 'up'}"]`)
      }
      if (el && !(el instanceof HTMLButtonElement && el.disabled)) el.focus()
      pendingFocus = null
    }
  }

  // ---- adding an item -----------------------------------------------------------

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
        ctx.say(c.saved)
      }, ctx.fail)
  })

  return {
    el: h(
      'section',
      { 'aria-labelledby': 'c-agenda-h' },
      h('h3', { id: 'c-agenda-h' }, c.agendaItems),
      h('p', { id: 'drag-hint', class: 'hint' }, c.dragHint),
      list,
      h('h4', null, c.addItem),
      addForm,
    ),
    render,
    refreshOwners() {
      ownerOptions(addOwner, addOwner.value || 'secretary')
    },
  }
}
