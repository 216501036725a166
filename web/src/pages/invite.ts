// The invitation link: see what you are invited to, choose a password,
// land in the meeting signed in.

import { ApiError, api } from '../api'
import type { App, Page } from '../app'
import { h } from '../dom'
import { dateTime } from '../format'
import { t } from '../i18n'

const MIN_PASSWORD = 10

export async function invitePage(app: App, secret: string): Promise<Page> {
  const c = t()
  document.title = `${c.inviteTitle} – ${c.appName}`
  let invitation
  try {
    invitation = await api.invitation(secret)
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      return {
        el: h(
          'main',
          { id: 'main', tabindex: '-1', class: 'narrow' },
          h('h1', null, c.inviteTitle),
          h('p', { role: 'alert' }, c.inviteGone),
        ),
      }
    }
    throw e
  }
  const role = c.roles[invitation.role] ?? invitation.role
  const error = h('p', { id: 'invite-error', class: 'error', role: 'alert' })
  const password = h('input', {
    id: 'new-password',
    type: 'password',
    autocomplete: 'new-password',
    required: true,
    minlength: MIN_PASSWORD,
    'aria-describedby': 'password-hint invite-error',
  })
  const repeat = h('input', {
    id: 'repeat-password',
    type: 'password',
    autocomplete: 'new-password',
    required: true,
    'aria-describedby': 'invite-error',
  })
  const submit = h('button', { type: 'submit', class: 'primary' }, c.acceptInvite)
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: invitation.username, hidden: true, readonly: true }),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-password' }, c.choosePassword),
      h('p', { id: 'password-hint', class: 'hint' }, c.passwordHint),
      password,
    ),
    h('div', { class: 'field' }, h('label', { for: 'repeat-password' }, c.repeatPassword), repeat),
    error,
    submit,
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    if ([...password.value].length < MIN_PASSWORD) {
      error.textContent = c.passwordTooShort
      password.focus()
      return
    }
    if (password.value !== repeat.value) {
      error.textContent = c.passwordsDiffer
      repeat.focus()
      return
    }
    void (async () => {
      submit.disabled = true
      error.textContent = ''
      try {
        app.me = await api.acceptInvitation(secret, password.value)
        await app.navigate(invitation.meeting_id ? `/meetings/${invitation.meeting_id}` : '/', true)
      } catch (e) {
        error.textContent =
          e instanceof ApiError && e.status === 404 ? c.inviteGone : e instanceof ApiError && e.status === 422 ? e.message : c.genericError
      } finally {
        submit.disabled = false
      }
    })()
  })
  return {
    el: h(
      'main',
      { id: 'main', tabindex: '-1', class: 'narrow' },
      h('h1', null, c.inviteTitle),
      h('p', { class: 'lead' }, c.inviteIntro(invitation.meeting_title, role)),
      h('p', null, c.inviteUsername(invitation.username), ' ', c.inviteExpires(dateTime(invitation.expires_at))),
      form,
    ),
  }
}
