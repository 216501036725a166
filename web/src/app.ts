// The shell every page shares: skip link, the top bar (account, language),
// client-side navigation and the signed-in person.

import { ApiError, api, type Me } from './api'
import { clear, h } from './dom'
import { setLanguage, t } from './i18n'

export interface Page {
  /** The page's content; it brings its own <main id="main">. */
  el: HTMLElement
  /** Called before the next page replaces this one. */
  destroy?: () => void
  /** Asks before leaving (unsynced edits). */
  confirmLeave?: () => boolean
  /**
   * Shows the page in the language just chosen, in place. A page without
   * it is rendered afresh; the protocol page has it, so that a language
   * switch keeps its connection, its editors and what is typed.
   */
  relabel?: () => void
}

export type Route = (app: App, path: string) => Promise<Page>

export class App {
  me: Me | null = null
  private page: Page | null = null
  private readonly bar = h('header', { class: 'app-bar' })
  private readonly skipLink = h('a', { class: 'skip-link', href: '#main' })
  private readonly slot = h('div', { class: 'page' })

  constructor(
    private readonly root: HTMLElement,
    private readonly route: Route,
  ) {
    document.documentElement.lang = t().lang
    window.addEventListener('popstate', () => void this.render())
    document.addEventListener('click', (event) => this.interceptLink(event))
  }

  async start(): Promise<void> {
    try {
      this.me = await api.me()
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) throw e
      this.me = null
    }
    await this.render()
  }

  /** Client-side navigation to a same-origin path. */
  async navigate(path: string, replace = false): Promise<void> {
    if (this.page?.confirmLeave && !this.page.confirmLeave()) return
    if (replace) history.replaceState(null, '', path)
    else history.pushState(null, '', path)
    await this.render()
  }

  /** Sends the person to sign-in, coming back to `next` afterwards. */
  signIn(next = location.pathname + location.search): void {
    this.me = null
    const target = next.startsWith('/login') ? '/login' : `/login?next=${encodeURIComponent(next)}`
    void this.navigate(target, true)
  }

  async render(): Promise<void> {
    this.page?.destroy?.()
    this.page = null
    this.renderBar()
    clear(this.slot, h('main', { id: 'main', tabindex: '-1' }, h('p', { role: 'status' }, t().loading)))
    this.skipLink.textContent = t().skipToContent
    this.root.replaceChildren(this.skipLink, this.bar, this.slot)
    let page: Page
    try {
      page = await this.route(this, location.pathname)
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.signIn()
        return
      }
      page = errorPage(e)
    }
    this.page = page
    clear(this.slot, page.el)
    // Focus where the person starts (a form's first field), else the new
    // page's main region, so keyboard and screen reader users begin there.
    const start = page.el.querySelector<HTMLElement>('[data-autofocus]')
    if (start) start.focus()
    else if (this.rendered) page.el.focus({ preventScroll: true })
    this.rendered = true
  }

  private rendered = false

  /**
   * After a language switch: the shell and the current page in the new
   * language, the page in place when it can be (see `Page.relabel`), else
   * rendered afresh. Focus goes to the page's main region either way.
   */
  refresh(): Promise<void> {
    const page = this.page
    if (!page?.relabel) return this.render()
    this.renderBar()
    this.skipLink.textContent = t().skipToContent
    page.relabel()
    page.el.focus({ preventScroll: true })
    return Promise.resolve()
  }

  private renderBar(): void {
    const c = t()
    const account = this.me
      ? [
          h('span', { class: 'who' }, c.signedInAs(this.me.display_name)),
          h('button', { type: 'button', class: 'link-button', onclick: () => void this.signOut() }, c.signOut),
        ]
      : []
    clear(
      this.bar,
      h('a', { class: 'brand', href: '/' }, c.appName),
      h(
        'nav',
        { 'aria-label': c.accountNav },
        account,
        // The verification page is the server's own (it works without
        // JavaScript, for anyone who holds a protocol file).
        h('a', { href: '/verify', 'data-full-load': '' }, c.verifyLink),
        h(
          'button',
          {
            type: 'button',
            class: 'link-button',
            lang: c.otherLanguageCode,
            onclick: () => {
              setLanguage(c.otherLanguageCode)
              void this.refresh()
            },
          },
          c.otherLanguage,
        ),
      ),
    )
  }

  private async signOut(): Promise<void> {
    if (this.page?.confirmLeave && !this.page.confirmLeave()) return
    try {
      await api.logout()
    } catch {
      // Signed out already, or the server is gone: show sign-in anyway.
    }
    this.page?.destroy?.()
    this.page = null
    this.me = null
    await this.navigate('/login', true)
  }

  private interceptLink(event: MouseEvent): void {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return
    }
    const target = event.target
    if (!(target instanceof Element)) return
    const a = target.closest('a')
    if (!a || a.target || a.hasAttribute('download') || a.hasAttribute('data-full-load')) return
    const url = new URL(a.href, location.href)
    if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return
    if (url.pathname === location.pathname && url.hash) return
    event.preventDefault()
    void this.navigate(url.pathname + url.search + url.hash)
  }
}

export function errorPage(e: unknown): Page {
  const c = t()
  const message = e instanceof ApiError && e.status === 0 ? c.networkError : c.genericError
  return {
    el: h(
      'main',
      { id: 'main', tabindex: '-1', class: 'narrow' },
      h('h1', null, c.genericError),
      h('p', { role: 'alert' }, message),
      h('p', null, h('a', { href: '/' }, c.backToMeetings)),
    ),
  }
}

export function notFoundPage(): Page {
  const c = t()
  document.title = `${c.notFoundTitle} – ${c.appName}`
  return {
    el: h(
      'main',
      { id: 'main', tabindex: '-1', class: 'narrow' },
      h('h1', null, c.notFoundTitle),
      h('p', null, c.notFoundText),
      h('p', null, h('a', { href: '/' }, c.backToMeetings)),
    ),
  }
}

/** A same-origin path that is safe to return to after sign-in. */
export function safeNext(raw: string | null): string {
  if (!raw || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/'
  return raw
}
