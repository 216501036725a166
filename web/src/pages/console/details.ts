// The console's meeting details: title, body, date, time and place, saved
// through the API.

import { api } from '../../api'
import { h } from '../../dom'
import { t } from '../../i18n'
import { type ToolContext, field } from './shared'

export interface DetailsTool {
  el: HTMLElement
  /** Shows the meeting's details, unless the secretary is editing them. */
  update(): void
}

export function detailsTool(ctx: ToolContext): DetailsTool {
  const c = t()
  const f = {
    title: h('input', { id: 'c-title', required: true, maxlength: 200 }),
    body: h('input', { id: 'c-body' }),
    date: h('input', { id: 'c-date', type: 'date' }),
    time: h('input', { id: 'c-time', type: 'time' }),
    place: h('input', { id: 'c-place' }),
  }
  const fill = () => {
    const view = ctx.view()
    f.title.value = view.title
    f.body.value = view.body
    f.date.value = view.date ?? ''
    f.time.value = view.time ?? ''
    f.place.value = view.place
  }
  const form = h(
    'form',
    { class: 'stack' },
    field('c-title', c.title, f.title),
    field('c-body', c.body, f.body),
    h('div', { class: 'row' }, field('c-date', c.date, f.date), field('c-time', c.time, f.time)),
    field('c-place', c.place, f.place),
    h('button', { type: 'submit' }, c.save),
  )
  form.addEventListener('submit', (e) => {
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
        ctx.say(c.saved)
        ctx.changed()
      }, ctx.fail)
  })
  fill()
  return {
    el: h('section', { 'aria-labelledby': 'c-details-h' }, h('h3', { id: 'c-details-h' }, c.details), form),
    update() {
      if (!form.contains(document.activeElement)) fill()
    },
  }
}
