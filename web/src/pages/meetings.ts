// The meeting list: date, place, your role and state; and, for those who
// may, a new meeting (blank or from an earlier one).

import { ApiError, api, type Meeting } from '../api'
import type { App, Page } from '../app'
import { clear, h } from '../dom'
import { shortDate } from '../format'
import { t } from '../i18n'

export async function meetingsPage(app: App): Promise<Page> {
  const c = t()
  document.title = `${c.meetingsTitle} – ${c.appName}`
  const meetings = await api.meetings()
  meetings.sort((a, b) => (b.date ?? '').localeCompare(a.date ?? '') || b.created_at.localeCompare(a.created_at))

  const list =
    meetings.length === 0
      ? h('p', null, c.noMeetings)
      : h(
          'table',
          { class: 'meetings stacks' },
          h('caption', { class: 'visually-hidden' }, c.meetingsTitle),
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', { scope: 'col' }, c.colMeeting),
              h('th', { scope: 'col' }, c.colDate),
              h('th', { scope: 'col' }, c.colPlace),
              h('th', { scope: 'col' }, c.colRole),
              h('th', { scope: 'col' }, c.colState),
            ),
          ),
          h(
            'tbody',
            null,
            meetings.map((m) =>
              h(
                'tr',
                null,
                h('th', { scope: 'row' }, h('a', { href: `/meetings/${m.id}` }, m.title)),
                // data-label: the column's name beside the value where the
                // rows are stacked (a phone), see style.css.
                h('td', { 'data-label': c.colDate }, h('time', { datetime: m.date ?? '' }, shortDate(m.date))),
                h('td', { 'data-label': c.colPlace }, m.place),
                h('td', { 'data-label': c.colRole }, m.your_role ? (c.roles[m.your_role] ?? m.your_role) : app.me?.is_admin ? c.noRole : ''),
                h('td', { 'data-label': c.colState }, h('span', { class: `state state-${m.state ?? 'draft'}` }, c.states[m.state ?? 'draft'] ?? '')),
              ),
            ),
          ),
        )

  // The server decides (administrators, and those an administrator allowed);
  // an older server without the field shows the form to administrators.
  const mayCreate = !!app.me && (app.me.can_create_meetings ?? app.me.is_admin)
  return {
    el: h(
      'main',
      { id: 'main', tabindex: '-1', class: 'wide' },
      h('h1', null, c.meetingsTitle),
      list,
      mayCreate ? newMeetingForm(app, meetings) : null,
    ),
  }
}

function newMeetingForm(app: App, meetings: Meeting[]): HTMLElement {
  const c = t()
  const earlier = meetings.filter((m) => m.your_role === 'secretary' || app.me?.is_admin)
  const error = h('p', { id: 'new-meeting-error', class: 'error', role: 'alert' })
  const from = h(
    'select',
    { id: 'new-from', name: 'from' },
    h('option', { value: '' }, c.blankMeeting),
    earlier.map((m) => h('option', { value: m.id }, m.title)),
  )
  const title = h('input', { id: 'new-title', name: 'title', required: true, maxlength: 200 })
  const body = h('input', { id: 'new-body', name: 'body', 'aria-describedby': 'new-body-hint' })
  const date = h('input', { id: 'new-date', name: 'date', type: 'date' })
  const time = h('input', { id: 'new-time', name: 'time', type: 'time' })
  const place = h('input', { id: 'new-place', name: 'place' })
  from.addEventListener('change', () => {
    const source = meetings.find((m) => m.id === from.value)
    if (source) {
      if (!body.value) body.value = source.body
      if (!place.value) place.value = source.place
      if (!time.value && source.time) time.value = source.time
    }
  })
  const submit = h('button', { type: 'submit', class: 'primary' }, c.create)
  const form = h(
    'form',
    { class: 'card grid-form', 'aria-labelledby': 'new-meeting-h' },
    h('div', { class: 'field span-2' }, h('label', { for: 'new-from' }, c.fromEarlier), from),
    h('div', { class: 'field span-2' }, h('label', { for: 'new-title' }, c.title), title),
    h(
      'div',
      { class: 'field span-2' },
      h('label', { for: 'new-body' }, c.body),
      h('p', { id: 'new-body-hint', class: 'hint' }, c.bodyHint),
      body,
    ),
    h('div', { class: 'field' }, h('label', { for: 'new-date' }, c.date), date),
    h('div', { class: 'field' }, h('label', { for: 'new-time' }, c.time), time),
    h('div', { class: 'field span-2' }, h('label', { for: 'new-place' }, c.place), place),
    error,
    h('div', { class: 'span-2' }, submit),
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    void (async () => {
      submit.disabled = true
      error.textContent = ''
      try {
        const created = await api.createMeeting({
          title: title.value,
          body: body.value,
          date: date.value || null,
          time: time.value || null,
          place: place.value,
          ...(from.value ? { from: from.value } : {}),
        })
        await app.navigate(`/meetings/${created.id}`)
      } catch (e) {
        if (e instanceof ApiError && e.status === 403) {
          clear(section, h('p', { role: 'alert' }, c.createForbidden))
          return
        }
        error.textContent = e instanceof ApiError && e.status === 422 ? e.message : c.genericError
      } finally {
        submit.disabled = false
      }
    })()
  })
  const section = h(
    'section',
    { class: 'new-meeting', 'aria-labelledby': 'new-meeting-h' },
    h('h2', { id: 'new-meeting-h' }, c.newMeeting),
    h('p', null, c.newMeetingIntro),
    form,
  )
  return section
}
