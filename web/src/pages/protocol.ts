// The protocol page at /meetings/{id}: the whole protocol in the shape of a
// municipal protocol (header, who is present, the numbered items with each
// section's text, the signature lines), live. Sections the person may write
// are editors; every other section is read-only and follows its owner's
// typing. Test contract: `data-section="{id}"` per item with its
// `.ProseMirror` inside, `contenteditable="true"` exactly where the person
// may write, and one `data-connection-state` element.

import type { Editor } from '@tiptap/core'
import { type AgendaItem, itemLabel, readAgenda } from '../agenda'
import { ApiError, type MeetingView, type ProtocolStatus, api, mayWrite, parseOwnerLabel } from '../api'
import { type App, type Page, notFoundPage } from '../app'
import { clear, h } from '../dom'
import { type EditorLabels, createSectionEditor } from '../editor'
import { type Catalogue, t } from '../i18n'
import { Announcer, colourOf, describe, present } from '../presence'
import { CLOSE } from '../close'
import { type ConnectionState, MeetingSync } from '../sync'
import { secretaryConsole, type Console } from './console'
import { type Editing, FinalisePanel } from './finalise'
import { attendance, protocolHead, signatures } from './paper'
import { relabelToolbar, toolbar } from './toolbar'

/** About two minutes of retries: longer than the server's ping timeout. */
const CLIENT_ID_RETRIES = 12

/**
 * How often the page asks for the protocol's state while it is visible. A
 * lock or reopening reaches the page in the document's `protocol` map,
 * however it was made (the server's state check brings one made with the
 * CLI there within a second); sign-offs and "Justerat" are not in the
 * document: they come with this poll.
 */
const STATUS_EVERY_MS = 3000

interface SectionView {
  id: string
  el: HTMLElement
  heading: HTMLHeadingElement
  host: HTMLElement
  ownerLine: HTMLElement
  hereLine: HTMLElement
  toolbarSlot: HTMLElement
  /** The item as last shown, to show it again in another language. */
  item: AgendaItem
  editor: Editor
  labels: EditorLabels
  writable: boolean
}

export async function protocolPage(app: App, meetingId: string): Promise<Page> {
  let view: MeetingView
  try {
    view = await api.meeting(meetingId)
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return notFoundPage()
    throw e
  }
  return new ProtocolPage(app, meetingId, view).page()
}

class ProtocolPage {
  private sync!: MeetingSync
  private readonly sections = new Map<string, SectionView>()
  private readonly announcer = new Announcer()
  private console: Console | null = null
  private presenceFrame = 0
  /** Reconnects tried while the server still held our old connection. */
  private clientIdRetries = 0
  /** People seen in presence who were not participants when last loaded. */
  private readonly askedAbout = new Set<string>()
  private readonly finalise: FinalisePanel
  private statusTimer = 0
  private statusInFlight = false
  /** The state and hash last shown, to tell changes from repeats. */
  private shownState: { state: string; hash: string | null; signed: number } | null = null
  /** 4423 closes since the page last saw a draft: one reload, never a loop. */
  private lockedCloses = 0
  /** Whether `sync` is the current connection (not one being replaced). */
  private live = false
  /** The connection as the card shows it. */
  private connection: ConnectionState = 'connecting'

  private readonly headerEl = h('header', { class: 'protocol-head' })
  private readonly attendanceEl = h('section', { class: 'attendance', 'aria-labelledby': 'present-h' })
  private readonly itemsEl = h('div', { class: 'items' })
  private readonly footerEl = h('footer', { class: 'signatures' })
  private readonly connectionEl = h('p', { class: 'connection', role: 'status', 'data-connection-state': 'connecting' })
  private readonly pendingEl = h('p', { class: 'pending', hidden: true })
  private readonly alertEl = h('div', { class: 'alert-slot', role: 'alert' })
  private readonly presenceList = h('ul', { class: 'people' })
  private readonly mineEl = h('div', { class: 'mine' })
  private readonly consoleSlot = h('div')
  /** Labels set once, in page(): set again by relabel(). */
  private readonly agendaHeading = h('h2', { class: 'visually-hidden', id: 'agenda-h' })
  private readonly presenceHeading = h('h2', { id: 'presence-h' })
  private readonly aside = h('aside', { class: 'side' })
  /** Shows the alert or notice on screen again (in the language now chosen). */
  private alertAgain: (() => void) | null = null

  constructor(
    private readonly app: App,
    private readonly meetingId: string,
    private view: MeetingView,
  ) {
    this.finalise = new FinalisePanel({
      meetingId,
      me: app.me!,
      role: () => this.view.your_role,
      mayManage: () => this.canManage(),
      agenda: () => (this.sync ? readAgenda(this.sync.doc) : []),
      editing: () => this.editing(),
      applied: (status) => this.applyStatus(status, true),
    })
  }

  page(): Page {
    this.labelPage()
    const article = h(
      'article',
      { class: 'protocol', 'aria-labelledby': 'protocol-title' },
      this.headerEl,
      this.attendanceEl,
      this.agendaHeading,
      this.itemsEl,
      this.footerEl,
    )
    const aside = this.aside
    aside.append(
      this.connectionEl,
      this.pendingEl,
      this.mineEl,
      this.finalise.lockBox,
      h('section', { class: 'presence', 'aria-labelledby': 'presence-h' }, this.presenceHeading, this.presenceList),
      this.consoleSlot,
      this.announcer.el,
    )
    const el = h(
      'main',
      { id: 'main', tabindex: '-1', class: 'protocol-page' },
      this.alertEl,
      this.finalise.banner,
      h('div', { class: 'layout' }, article, aside),
      this.finalise.dialogEl,
    )
    this.renderStatic()
    this.connect()
    window.addEventListener('beforeunload', this.beforeUnload)
    document.addEventListener('visibilitychange', this.onVisible)
    this.statusTimer = window.setInterval(() => void this.refreshStatus(), STATUS_EVERY_MS)
    void this.refreshStatus()
    return {
      el,
      destroy: () => this.destroy(),
      confirmLeave: () => !this.sync.hasUnsentEdits() || window.confirm(t().unsyncedEdits),
      relabel: () => this.relabel(),
    }
  }

  /** The title and the labels page() sets once. */
  private labelPage(): void {
    const c = t()
    document.title = `${this.view.title} – ${c.appName}`
    this.agendaHeading.textContent = c.agenda
    this.presenceHeading.textContent = c.presenceTitle
    this.aside.setAttribute('aria-label', c.connection)
  }

  /**
   * The language changed: every label on the page is set again in place.
   * The connection, the editors (and what is typed in them, and where the
   * caret is) stay as they are.
   */
  private relabel(): void {
    const c = t()
    this.labelPage()
    const loading = this.itemsEl.querySelector<HTMLElement>(':scope > p.loading')
    if (loading) loading.textContent = c.documentLoading
    if (!this.pendingEl.hidden) this.pendingEl.textContent = c.unsyncedEdits
    if (this.alertEl.firstChild) this.alertAgain?.()
    this.renderStatic()
    this.finalise.relabel()
    for (const s of this.sections.values()) {
      const bar = s.toolbarSlot.firstElementChild
      if (bar instanceof HTMLElement) relabelToolbar(bar, itemLabel(s.item))
    }
    if (this.live) this.renderItems()
    this.schedulePresence()
    if (this.console) void this.mountConsole()
  }

  private get locked(): boolean {
    return (this.view.state ?? 'draft') !== 'draft'
  }

  private connect(): void {
    clear(this.itemsEl, h('p', { class: 'loading' }, t().documentLoading))
    this.live = true
    this.sync = new MeetingSync(this.meetingId, {
      state: (state) => this.showConnection(state),
      ready: () => this.renderItems(),
      terminal: (code, reason) => void this.onTerminal(code, reason),
      restarted: () => void this.reloadView(),
      synced: () => {
        this.clientIdRetries = 0
      },
      pending: (unsynced) => {
        this.pendingEl.hidden = !unsynced
        this.pendingEl.textContent = unsynced ? t().unsyncedEdits : ''
      },
    })
    const agenda = this.sync.doc.getArray('agenda')
    agenda.observeDeep(() => {
      this.renderItems()
      this.finalise.agendaChanged()
    })
    // The server announces a lock, reopening or rejection in this map: a
    // lock turns every editor read-only at once, before the details come.
    const announced = this.sync.doc.getMap('protocol')
    announced.observe(() => {
      if (this.live && announced.get('state') === 'locked' && (this.view.state ?? 'draft') === 'draft') {
        this.view = { ...this.view, state: 'locked' }
        this.renderItems()
      }
      void this.refreshStatus()
    })
    this.sync.provider.awareness.on('change', () => this.schedulePresence())
    this.showConnection('connecting')
    this.schedulePresence()
    if (this.canManage()) void this.mountConsole()
  }

  private destroySync(): void {
    this.live = false
    for (const s of this.sections.values()) s.editor.destroy()
    this.sections.clear()
    // The document may still hold edits the server refused: it goes, and
    // a fresh one is synced (see restart()).
    this.sync.destroy()
  }

  private destroy(): void {
    window.removeEventListener('beforeunload', this.beforeUnload)
    document.removeEventListener('visibilitychange', this.onVisible)
    window.clearInterval(this.statusTimer)
    this.finalise.destroy()
    cancelAnimationFrame(this.presenceFrame)
    this.announcer.destroy()
    this.console?.destroy()
    this.destroySync()
  }

  private readonly onVisible = (): void => {
    if (document.visibilityState === 'visible') void this.refreshStatus()
  }

  private readonly beforeUnload = (event: BeforeUnloadEvent): void => {
    if (this.sync.hasUnsentEdits()) {
      event.preventDefault()
      event.returnValue = ''
    }
  }

  private canManage(): boolean {
    return !!this.app.me && (this.app.me.is_admin || this.view.your_role === 'secretary')
  }

  // ---- connection and refusals ---------------------------------------------

  private showConnection(state: ConnectionState): void {
    this.connection = state
    this.renderConnection()
    if (state === 'offline') this.announcer.reset()
  }

  /** The connection card: the connection, and what becomes of edits (none are taken once locked). */
  private renderConnection(): void {
    const c = t()
    const state = this.connection
    const protocol = this.view.state ?? 'draft'
    this.connectionEl.dataset.connectionState = state
    const text =
      state === 'connecting'
        ? c.connConnecting
        : protocol === 'draft'
          ? state === 'connected'
            ? c.connConnected
            : c.connOffline
          : state === 'connected'
            ? c.connConnectedFinal(c.finalStates[protocol] ?? protocol)
            : c.connOfflineFinal(c.finalStates[protocol] ?? protocol)
    if (this.connectionEl.textContent !== text) this.connectionEl.textContent = text
  }

  private showAlert(message: (c: Catalogue) => string, action?: { label: (c: Catalogue) => string; run: () => void }): void {
    const c = t()
    this.alertAgain = () => this.showAlert(message, action)
    const close = h('button', { type: 'button', class: 'link-button', onclick: () => clear(this.alertEl) }, c.dismiss)
    const act = action
      ? h(
          'button',
          {
            type: 'button',
            onclick: () => {
              clear(this.alertEl)
              action.run()
            },
          },
          action.label(c),
        )
      : null
    clear(this.alertEl, h('div', { class: 'alert' }, h('p', null, message(c)), h('div', { class: 'alert-actions' }, act, close)))
  }

  private async onTerminal(code: number, reason: string): Promise<void> {
    const notForbidden = reason.includes('writes as another client') || reason.includes('never received')
    if (code === CLOSE.FORBIDDEN && notForbidden && this.clientIdRetries < CLIENT_ID_RETRIES) {
      // Not a forbidden edit: the server still holds our previous
      // connection (a network that dropped without closing it) and with
      // it our Yjs client id, until its ping timeout; or our edits waited
      // longer than the server allows for the ones before them (a very
      // slow link). Keep the edits and try again shortly instead of
      // throwing them away: a fresh connection sends them all at once.
      this.clientIdRetries += 1
      this.showConnection('offline')
      window.setTimeout(() => this.sync.reconnect(), Math.min(2000 * this.clientIdRetries, 15_000))
      return
    }
    switch (code) {
      case CLOSE.UNAUTHORIZED:
        this.destroySync()
        this.app.signIn()
        return
      case CLOSE.FORBIDDEN:
        // The document holds a change the server refused: throw it away
        // and load the meeting afresh.
        this.showAlert((c) => c.refused)
        await this.restart()
        return
      case CLOSE.PROTOCOL_LOCKED:
        // The server refused what was typed after the lock. Load the
        // locked protocol once, without it; a second refusal (a page that
        // still holds something the server will not take) ends there.
        this.lockedCloses += 1
        if (this.view.state === 'draft' || !this.view.state) this.view = { ...this.view, state: 'locked' }
        if (this.lockedCloses > 1) {
          this.showAlert((c) => c.lockedStill)
          this.showConnection('offline')
          return
        }
        this.showAlert((c) => c.lockedClose)
        await this.restart()
        return
      case CLOSE.TOO_LARGE:
        // Over a size limit: the document holds a change that would have
        // taken the protocol past its size cap. Like a refused edit, it
        // goes, and the meeting is loaded afresh.
        this.showAlert((c) => c.tooLarge)
        await this.restart()
        return
      case CLOSE.TOO_MANY:
        this.showAlert((c) => (reason.includes('meeting already has') ? c.meetingFull : c.tooManyConnections), {
          label: (c) => c.retry,
          run: () => this.sync.reconnect(),
        })
        return
      default:
        this.showAlert((c) => c.genericError, { label: (c) => c.retry, run: () => this.sync.reconnect() })
    }
  }

  private async restart(): Promise<void> {
    this.destroySync()
    this.console?.destroy()
    this.console = null
    clear(this.consoleSlot)
    try {
      this.view = { ...(await api.meeting(this.meetingId)), state: this.view.state }
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        clear(this.itemsEl)
        this.showAlert((c) => c.accessLost)
        this.showConnection('offline')
        return
      }
      if (e instanceof ApiError && e.status === 401) {
        this.app.signIn()
        return
      }
    }
    this.renderStatic()
    this.connect()
  }

  /** The meeting's details, participants or our role changed. */
  private async reloadView(): Promise<void> {
    try {
      const fresh = await api.meeting(this.meetingId)
      this.view = fresh
    } catch {
      return
    }
    this.renderStatic()
    this.renderItems()
    this.console?.update(this.view, readAgenda(this.sync.doc))
  }

  // ---- the protocol's state (draft, locked, verified) ---------------------------

  /** Asks the server for the protocol's state and shows it if it changed. */
  private async refreshStatus(): Promise<void> {
    if (this.statusInFlight || document.visibilityState === 'hidden') return
    this.statusInFlight = true
    try {
      await this.applyStatus(await api.protocol(this.meetingId), false)
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.app.signIn()
    } finally {
      this.statusInFlight = false
    }
  }

  /** Shows a protocol status; `own` when it answers this person's action. */
  private async applyStatus(status: ProtocolStatus, own: boolean): Promise<void> {
    const signed = status.locked?.required.filter((r) => r.signed_at).length ?? 0
    const next = { state: status.state, hash: status.locked?.hash ?? null, signed }
    const prev = this.shownState
    const changed = !prev || prev.state !== next.state || prev.hash !== next.hash || prev.signed !== next.signed
    if (!changed) return
    this.shownState = next
    let audit = null
    try {
      audit = await api.audit(this.meetingId)
    } catch {
      // Shown without the log; the next change brings it.
    }
    const stateChanged = !prev || prev.state !== next.state || (this.view.state ?? 'draft') !== status.state
    this.view = { ...this.view, state: status.state }
    if (status.state === 'draft') this.lockedCloses = 0
    this.finalise.update(status, audit)
    if (stateChanged) {
      this.renderStatic()
      if (this.live) this.renderItems()
      // The console's agenda and participant tools are frozen while locked.
      this.console?.update(this.view, this.sync ? readAgenda(this.sync.doc) : [])
    } else {
      this.renderSignatures()
    }
    if (prev && prev.state !== next.state && !own) {
      const lock = audit?.filter((e) => e.action === 'lock').pop()
      // After a refused keystroke (4423) the page has said more already.
      if (status.state === 'locked' && prev.state === 'draft' && this.lockedCloses === 0) {
        const by = lock?.actor_name ?? status.locked?.locked_by ?? ''
        this.showNotice((c) => c.lockedLive(by))
      } else if (status.state === 'verified') this.showNotice((c) => c.verifiedLive)
      else if (status.state === 'draft') this.showNotice((c) => c.backToDraftLive)
    }
  }

  /** A live change of state, said once to everyone (and to screen readers). */
  private showNotice(message: (c: Catalogue) => string): void {
    const c = t()
    this.alertAgain = () => this.showNotice(message)
    clear(
      this.alertEl,
      h(
        'div',
        { class: 'alert notice' },
        h('p', null, message(c)),
        h('div', { class: 'alert-actions' }, h('button', { type: 'button', class: 'link-button', onclick: () => clear(this.alertEl) }, c.dismiss)),
      ),
    )
  }

  /** People whose caret is in a section now, for the lock confirmation. */
  private editing(): Editing[] {
    if (!this.sync) return []
    const me = this.app.me
    const self = { id: me?.id ?? '', name: me?.display_name ?? '', agency: me?.agency?.name ?? null }
    const agenda = readAgenda(this.sync.doc)
    const label = (id: string) => {
      const item = agenda.find((i) => i.id === id)
      return item ? itemLabel(item) : id
    }
    return present(this.sync.provider.awareness, this.sync.doc, self)
      .filter((p) => p.sections.length > 0)
      .map((p) => ({ who: p.self ? `${describe(p.user)} (${t().you})` : describe(p.user), where: p.sections.map(label) }))
  }

  // ---- the protocol ---------------------------------------------------------

  private renderStatic(): void {
    clear(this.headerEl, protocolHead(this.view))
    clear(this.attendanceEl, attendance(this.view.participants))
    this.renderSignatures()
    this.renderConnection()
  }

  /** The footer: the secretary, and the chair and justerare with their sign-offs once locked. */
  private renderSignatures(): void {
    const state = this.view.state ?? 'draft'
    clear(this.footerEl, signatures(this.view.participants, state === 'draft' ? null : (this.finalise.state?.locked ?? null)))
  }

  private mayWrite(item: AgendaItem): boolean {
    const me = this.app.me
    if (!me || this.locked) return false
    return mayWrite(me, this.view.your_role, parseOwnerLabel(item.owner))
  }

  private renderItems(): void {
    const agenda = readAgenda(this.sync.doc)
    if (agenda.length === 0) {
      for (const s of this.sections.values()) s.editor.destroy()
      this.sections.clear()
      if (this.sync.provider.synced) clear(this.itemsEl, h('p', { class: 'muted' }, t().emptyAgenda))
      this.renderMine(agenda)
      this.console?.update(this.view, agenda)
      return
    }
    this.itemsEl.querySelector(':scope > p')?.remove()
    const seen = new Set<string>()
    agenda.forEach((item, index) => {
      seen.add(item.id)
      const sub = item.number.includes('.') && agenda.slice(0, index).some((i) => !i.number.includes('.'))
      let s = this.sections.get(item.id)
      if (!s) {
        s = this.createSection(item)
        this.sections.set(item.id, s)
      }
      this.updateSection(s, item, sub)
      const at = this.itemsEl.children[index]
      if (at !== s.el) this.itemsEl.insertBefore(s.el, at ?? null)
    })
    for (const [id, s] of this.sections) {
      if (!seen.has(id)) {
        s.editor.destroy()
        s.el.remove()
        this.sections.delete(id)
      }
    }
    this.renderMine(agenda)
    this.schedulePresence()
    this.console?.update(this.view, agenda)
  }

  private createSection(item: AgendaItem): SectionView {
    const headingId = `h-${item.id}`
    const ownerId = `owner-${item.id}`
    const labels = { labelledBy: headingId, describedBy: ownerId }
    const heading = h('h2', { id: headingId })
    const ownerLine = h('p', { class: 'owner', id: ownerId })
    const hereLine = h('p', { class: 'here' })
    const toolbarSlot = h('div', { class: 'toolbar-slot' })
    const host = h('div', { class: 'editor-host' })
    const el = h('section', { class: 'item', 'data-section': item.id, id: `section-${item.id}`, 'aria-labelledby': headingId }, heading, ownerLine, toolbarSlot, host, hereLine)
    const writable = this.mayWrite(item)
    const editor = this.bindEditor(host, item.id, writable, labels)
    const s: SectionView = { id: item.id, el, heading, host, ownerLine, hereLine, toolbarSlot, item, editor, labels, writable }
    if (writable) clear(toolbarSlot, toolbar(editor, itemLabel(item)))
    return s
  }

  /**
   * A section the person may write is bound to the shared document; every
   * other one to the page's receive-only mirror of it, so a read-only
   * editor cannot send anything, whatever its binding does.
   */
  private bindEditor(host: HTMLElement, id: string, writable: boolean, labels: EditorLabels): Editor {
    const doc = writable ? this.sync.doc : this.sync.mirror
    return createSectionEditor(host, doc.getXmlFragment(`section:${id}`), this.sync.provider.awareness, writable, labels)
  }

  private updateSection(s: SectionView, item: AgendaItem, sub: boolean): void {
    const c = t()
    s.item = item
    const level = sub ? 'H3' : 'H2'
    if (s.heading.tagName !== level) {
      const replacement = h(sub ? 'h3' : 'h2', { id: s.heading.id })
      s.heading.replaceWith(replacement)
      s.heading = replacement
    }
    s.el.classList.toggle('sub', sub)
    clear(s.heading, item.number ? h('span', { class: 'num' }, `§ ${item.number}`) : null, ' ', item.title)
    const writable = this.mayWrite(item)
    const ownerName = item.owner === 'secretary' ? c.secretaryOwner : item.ownerName || '–'
    clear(
      s.ownerLine,
      c.writtenBy(ownerName),
      writable ? h('strong', { class: 'badge mine-badge' }, c.youMayWrite) : h('span', { class: 'badge' }, c.readOnly),
    )
    if (writable !== s.writable) {
      // Bound afresh to the other document (shared or mirror).
      s.writable = writable
      s.editor.destroy()
      clear(s.host)
      s.editor = this.bindEditor(s.host, s.id, writable, s.labels)
      clear(s.toolbarSlot, writable ? toolbar(s.editor, itemLabel(item)) : null)
    }
    s.el.classList.toggle('writable', writable)
  }

  private renderMine(agenda: AgendaItem[]): void {
    const c = t()
    this.renderConnection()
    if (this.locked) {
      // Nobody writes in a locked protocol: that, not "no section of
      // yours", is what the panel says, to the owners of sections too.
      clear(this.mineEl, h('p', { class: 'locked-note' }, this.view.state === 'verified' ? c.mineVerified : c.mineLocked))
      return
    }
    const mine = agenda.filter((i) => this.sections.get(i.id)?.writable)
    if (mine.length === 0) {
      clear(this.mineEl, h('p', { class: 'muted' }, c.noSectionOfYours))
      return
    }
    clear(
      this.mineEl,
      h('p', null, c.yourSections(mine.map(itemLabel).join(', '))),
      h(
        'button',
        {
          type: 'button',
          class: 'primary jump',
          onclick: () => {
            const first = mine[0] && this.sections.get(mine[0].id)
            if (!first) return
            first.el.scrollIntoView({ block: 'start' })
            first.editor.commands.focus('end', { scrollIntoView: false })
          },
        },
        c.jumpToMySection,
      ),
    )
  }

  // ---- presence -------------------------------------------------------------

  private schedulePresence(): void {
    cancelAnimationFrame(this.presenceFrame)
    this.presenceFrame = requestAnimationFrame(() => this.renderPresence())
  }

  private renderPresence(): void {
    const c = t()
    const me = this.app.me
    const self = { id: me?.id ?? '', name: me?.display_name ?? '', agency: me?.agency?.name ?? null }
    const people = present(this.sync.provider.awareness, this.sync.doc, self)
    if (this.sync.state === 'connected') this.announcer.update(people)
    const agenda = readAgenda(this.sync.doc)
    const label = (id: string) => {
      const item = agenda.find((i) => i.id === id)
      return item ? itemLabel(item) : id
    }
    const others = people.filter((p) => !p.self)
    if (this.canManage()) {
      // Someone new is here (a newcomer who just accepted an invitation):
      // reload the participants so the console can give them a section.
      const known = new Set(this.view.participants.map((p) => p.user.id))
      const fresh = people.filter((p) => !known.has(p.user.id) && !this.askedAbout.has(p.user.id))
      if (fresh.length) {
        for (const p of fresh) this.askedAbout.add(p.user.id)
        void this.reloadView()
      }
    }
    clear(
      this.presenceList,
      people.map((p) =>
        h(
          'li',
          null,
          swatch(colourOf(p.user).solid),
          // One box beside the dot, so that a long name wraps under itself
          // and the dot stays on its first line.
          h(
            'span',
            { class: 'person' },
            h('span', { class: 'name' }, describe(p.user), p.self ? ` (${c.you})` : ''),
            h('span', { class: 'where' }, ' – ', p.sections.length ? c.inSection(p.sections.map(label).join(', ')) : c.reading),
          ),
        ),
      ),
      others.length === 0 ? h('li', { class: 'muted' }, c.nobodyElse) : null,
    )
    this.finalise.refreshDialog()
    for (const s of this.sections.values()) {
      const here = others.filter((p) => p.sections.includes(s.id))
      s.hereLine.textContent = here.length ? c.hereNow(here.map((p) => describe(p.user)).join(', ')) : ''
      s.hereLine.hidden = here.length === 0
    }
  }

  // ---- secretary console ----------------------------------------------------

  private async mountConsole(): Promise<void> {
    this.console?.destroy()
    this.console = secretaryConsole({
      meetingId: this.meetingId,
      me: this.app.me!,
      view: this.view,
      agenda: () => readAgenda(this.sync.doc),
      changed: () => void this.reloadView(),
    })
    clear(this.consoleSlot, this.console.el)
    this.console.update(this.view, readAgenda(this.sync.doc))
  }
}

function swatch(colour: string): HTMLElement {
  const el = h('span', { class: 'swatch', 'aria-hidden': 'true' })
  el.style.backgroundColor = colour
  return el
}
