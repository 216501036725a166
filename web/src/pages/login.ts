// Sign-in (#username, #password), then back to where the person was going.

import { ApiError, api } from '../api'
import { type App, type Page, safeNext } from '../app'
import { h } from '../dom'
import { t } from '../i18n'

export async function loginPage(app: App): Promise<Page> {
  const c = t()
  const next = safeNext(new URLSearchParams(location.search).get('next'))
  if (app.me) {
    queueMicrotask(() => void app.navigate(next, true))
  }
  document.title = `${c.signInTitle} – ${c.appName}`
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert' })
  const username = h('input', {
    id: 'username',
    name: 'username',
    autocomplete: 'username',
    required: true,
    'aria-describedby': 'login-error',
    'data-autofocus': true,
  })
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    'aria-describedby': 'login-error',
  })
  const submit = h('button', { type: 'submit', class: 'primary' }, c.signIn)
  const form = h(
    'form',
    { id: 'login', class: 'card' },
    h('div', { class: 'field' }, h('label', { for: 'username' }, c.username), username),
    h('div', { class: 'field' }, h('label', { for: 'password' }, c.password), password),
    error,
    submit,
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    void (async () => {
      submit.disabled = true
      error.textContent = ''
      try {
        app.me = await api.login(username.value, password.value)
        await app.navigate(next, true)
      } catch (e) {
        error.textContent =
          e instanceof ApiError && e.status === 429
            ? c.throttled
            : e instanceof ApiError && e.code === 'wrong_credentials'
              ? c.wrongCredentials
              : e instanceof ApiError && e.status === 0
                ? c.networkError
                : c.signInFailed
        password.select()
      } finally {
        submit.disabled = false
      }
    })()
  })
  const el = h(
    'main',
    { id: 'main', tabindex: '-1', class: 'narrow' },
    h('h1', null, c.signInTitle),
    h('p', null, c.signInIntro),
    form,
  )
  return { el }
}
