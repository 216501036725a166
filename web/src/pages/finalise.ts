// Finalising on the protocol page: the secretary's "Lås protokollet" with
// its confirmation (who is still writing, which § are frozen); once locked,
// the banner everyone sees (the full hash, the frozen items, the justering,
// downloads, the audit log) with the chair's and justerare's "Justera" and
// "Avvisa" and the secretary's "Öppna igen". Every decision is the
// server's: this module only asks and shows what it answered.

import { type AgendaItem, itemLabel } from '../agenda'
import { ApiError, type AuditEntry, type Me, type ProtocolStatus, type Role, api } from '../api'
import { clear, h, uid } from '../dom'
import { dateTime } from '../format'
import { t } from '../i18n'

export interface Editing {
  who: string
  where: string[]
}

export interface FinaliseContext {
  meetingId: string
  me: Me
  role: () => Role | null | undefined
  mayManage: () => boolean
  agenda: () => AgendaItem[]
  /** People whose caret is in a section now (server-stamped presence). */
  editing: () => Editing[]
  /** The server answered with a new status: the page applies it. */
  applied: (status: ProtocolStatus) => Promise<void>
}

/** The server's stale-hash refusal (finalise::STALE). */
const STALE = 'changed since you saw it'
/** The server's refusal of an account nobody vouched for (finalise::NOT_VOUCHED). */
const NOT_CONFIRMED = 'must confirm your account'

export class FinalisePanel {
  /** The banner above the protocol: locked, verified, or sent back. */
  readonly banner = h('section', { class: 'finalise', 'aria-labelledby': 'finalise-h', hidden: true })
  /** The secretary's lock box in the side panel (drafts only). */
  readonly lockBox = h('section', { class: 'lock-box', 'aria-labelledby': 'lock-h', hidden: true })
  private readonly dialog = h('dialog', { class: 'lock-dialog', 'aria-labelledby': 'lock-dialog-h', 'aria-describedby': 'lock-dialog-text' })
  private readonly editingList = h('ul', { class: 'editing' })
  private readonly frozenList = h('ol', { class: 'frozen' })
  private readonly dialogError = h('p', { class: 'error', role: 'alert' })
  private readonly status = h('p', { class: 'finalise-status', role: 'status' })
  private readonly actionError = h('p', { class: 'error', role: 'alert' })
  private current: ProtocolStatus | null = null
  private audit: AuditEntry[] = []
  private busy = false
  private rejecting = false
  /** The dialog closes because the lock succeeded: focus goes to the banner. */
  private locking = false

  constructor(private readonly ctx: FinaliseContext) {
    this.buildDialog()
  }

  /**
   * The language changed: the dialog, the lock box and the banner are
   * drawn again in it (a reason being written for "Avvisa" is kept).
   */
  relabel(): void {
    this.labelDialog()
    clear(this.lockBox)
    this.status.textContent = ''
    this.actionError.textContent = ''
    const reason = this.banner.querySelector('textarea')?.value
    this.render()
    const field = this.banner.querySelector('textarea')
    if (field && reason) field.value = reason
  }

  /** The dialog lives in the page's main region. */
  get dialogEl(): HTMLDialogElement {
    return this.dialog
  }

  get state(): ProtocolStatus | null {
    return this.current
  }

  update(status: ProtocolStatus, audit: AuditEntry[] | null): void {
    const before = this.current
    this.current = status
    if (audit) this.audit = audit
    if (before?.state !== status.state || before?.locked?.hash !== status.locked?.hash) this.rejecting = false
    this.render()
  }

  /**
   * The agenda arrived or changed (a fresh document syncing after a
   * reconnect, say): the banner's frozen § list follows it. Only the text
   * changes, so focus on the banner's buttons stays where it is.
   */
  agendaChanged(): void {
    const shown = this.banner.querySelector('.frozen-items')
    if (!shown) return
    const now = this.frozenItems()
    if (shown.textContent !== now) shown.textContent = now
  }

  private frozenItems(): string {
    return this.ctx
      .agenda()
      .map((i) => (i.number ? `§ ${i.number}` : i.title))
      .join(', ')
  }

  /** Presence or the agenda changed: keep an open confirmation current. */
  refreshDialog(): void {
    if (!this.dialog.open) return
    this.fillDialog()
  }

  destroy(): void {
    if (this.dialog.open) this.dialog.close()
  }

  // ---- the secretary's lock ----------------------------------------------

  private buildDialog(): void {
    this.labelDialog()
    this.listenDialog()
  }

  /** The dialog's content, in the language now chosen. */
  private labelDialog(): void {
    const c = t()
    const cancel = h('button', { type: 'button', onclick: () => this.dialog.close() }, c.cancel)
    const confirm = h('button', { type: 'button', class: 'primary danger', onclick: () => void this.lock(confirm) }, c.lockNow)
    clear(
      this.dialog,
      h('h2', { id: 'lock-dialog-h' }, c.lockConfirmTitle),
      h('p', { id: 'lock-dialog-text' }, c.lockConfirmText),
      h('h3', null, c.stillEditing),
      this.editingList,
      h('h3', null, c.frozenItems),
      this.frozenList,
      this.dialogError,
      h('div', { class: 'dialog-actions' }, confirm, cancel),
    )
  }

  private listenDialog(): void {
    // Escape closes a modal <dialog> by itself (the "cancel" event) and the
    // rest of the page is inert while it is open; Tab and Shift+Tab wrap
    // around inside it rather than leaving for the browser's own controls.
    this.dialog.addEventListener('keydown', (event) => {
      if (event.key !== 'Tab') return
      const focusable = [...this.dialog.querySelectorAll<HTMLElement>('button:not(:disabled), [href], input, textarea, select, [tabindex]:not([tabindex="-1"])')]
      const first = focusable[0]
      const last = focusable[focusable.length - 1]
      if (!first || !last) return
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault()
        last.focus()
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault()
        first.focus()
      }
    })
    this.dialog.addEventListener('close', () => {
      clear(this.dialogError)
      const opener = this.lockBox.querySelector<HTMLButtonElement>('button')
      if (opener && !this.lockBox.hidden && !this.locking) opener.focus()
    })
  }

  private fillDialog(): void {
    const c = t()
    const editing = this.ctx.editing()
    clear(
      this.editingList,
      editing.length === 0
        ? h('li', { class: 'muted' }, c.nobodyEditing)
        : editing.map((e) => h('li', null, c.editingIn(e.who, e.where.join(', ')))),
    )
    clear(
      this.frozenList,
      this.ctx.agenda().map((i) => h('li', null, itemLabel(i))),
    )
  }

  private openDialog(): void {
    this.fillDialog()
    clear(this.dialogError)
    this.dialog.showModal()
    // The safe choice has the focus: locking cannot be undone by a stray Enter.
    this.dialog.querySelector<HTMLButtonElement>('.dialog-actions button:last-child')?.focus()
  }

  private async lock(button: HTMLButtonElement): Promise<void> {
    if (this.busy) return
    this.busy = true
    button.disabled = true
    try {
      const status = await api.lock(this.ctx.meetingId)
      this.locking = true
      this.dialog.close()
      await this.ctx.applied(status)
      // The lock box is gone: the banner is where the person continues.
      const heading = this.banner.querySelector<HTMLElement>('#finalise-h')
      heading?.setAttribute('tabindex', '-1')
      heading?.focus()
    } catch (e) {
      this.dialogError.textContent =
        e instanceof ApiError && e.code === 'not_archivable' && e.problem
          ? `${t().lockFailed} ${t().notArchivable(e.problem)}`
          : `${t().lockFailed} ${message(e)}`
    } finally {
      this.busy = false
      this.locking = false
      button.disabled = false
    }
  }

  // ---- rendering -------------------------------------------------------------

  private render(): void {
    const c = t()
    const s = this.current
    if (!s) return
    const draft = s.state === 'draft'
    this.lockBox.hidden = !(draft && this.ctx.mayManage())
    if (!this.lockBox.hidden && !this.lockBox.firstChild) {
      clear(
        this.lockBox,
        h('h2', { id: 'lock-h' }, c.finaliseTitle),
        h('p', null, c.lockIntro),
        h('button', { type: 'button', class: 'primary', 'aria-haspopup': 'dialog', onclick: () => this.openDialog() }, c.lockProtocol),
      )
    }
    if (!draft && this.dialog.open) this.dialog.close()

    const locked = s.locked
    if (draft || !locked) {
      // Back to draft: say why, if someone sent it back.
      const last = this.audit[this.audit.length - 1]
      const notice =
        last?.action === 'reject'
          ? c.rejectedNotice(last.actor_name, last.reason ?? '')
          : last?.action === 'reopen'
            ? c.reopenedNotice(last.actor_name)
            : null
      this.banner.hidden = !notice
      if (notice) {
        clear(
          this.banner,
          h('h2', { id: 'finalise-h', class: 'visually-hidden' }, c.finaliseTitle),
          h('p', { class: 'sent-back' }, notice),
          this.auditLog(),
        )
      }
      this.banner.classList.remove('is-locked', 'is-verified')
      return
    }

    const verified = s.state === 'verified'
    this.banner.hidden = false
    this.banner.classList.toggle('is-locked', !verified)
    this.banner.classList.toggle('is-verified', verified)
    const hashId = uid('hash')
    clear(
      this.banner,
      h('h2', { id: 'finalise-h' }, verified ? c.verifiedTitle : c.lockedTitle),
      h(
        'p',
        null,
        c.lockedBy(locked.locked_by, dateTime(locked.locked_at)),
        ' ',
        verified && locked.signature ? c.verifiedAt(dateTime(locked.signature.verified_at)) : c.lockedNotice,
      ),
      h(
        'dl',
        { class: 'finalise-facts' },
        h(
          'div',
          null,
          h('dt', { id: `${hashId}-l` }, c.hashLabel),
          h(
            'dd',
            null,
            h('code', { class: 'hash', id: hashId, 'data-hash': locked.hash }, locked.hash),
            h('button', { type: 'button', class: 'copy', 'aria-describedby': `${hashId}-l`, onclick: () => void this.copy(locked.hash, hashId) }, c.copyHash),
          ),
        ),
        h('div', null, h('dt', null, c.frozenLabel), h('dd', { class: 'frozen-items' }, this.frozenItems())),
        h(
          'div',
          null,
          h('dt', null, c.justering),
          h(
            'dd',
            null,
            h(
              'ul',
              { class: 'signoffs' },
              locked.required.map((r) =>
                h(
                  'li',
                  { class: r.signed_at ? 'signed' : 'waiting' },
                  h('strong', null, r.name),
                  ` (${(c.roles[r.role] ?? r.role).toLowerCase()}): `,
                  r.signed_at ? c.signedAt(dateTime(r.signed_at)) : c.waitingFor,
                  !r.signed_at && r.account_confirmed === false
                    ? h('span', { class: 'unconfirmed' }, ` (${c.unconfirmedSigner})`)
                    : null,
                ),
              ),
            ),
          ),
        ),
        h(
          'div',
          null,
          h('dt', null, c.downloads),
          h(
            'dd',
            { class: 'downloads' },
            h('a', { href: locked.exports.pdf, download: '' }, c.downloadPdf),
            h('a', { href: locked.exports.html, download: '' }, c.downloadHtml),
            h('a', { href: locked.exports.markdown, download: '' }, c.downloadMd),
            h('a', { href: locked.exports.json, download: '' }, c.downloadJson),
          ),
        ),
      ),
      this.actions(s),
      this.status,
      h('p', { class: 'verify-link' }, h('a', { href: `/verify?hash=${locked.hash}`, 'data-full-load': '' }, c.verifyThis)),
      this.auditLog(),
    )
  }

  private actions(s: ProtocolStatus): HTMLElement | null {
    const c = t()
    const locked = s.locked
    if (!locked || s.state !== 'locked') return null
    const role = this.ctx.role()
    const out = h('div', { class: 'finalise-actions' })
    if (role === 'chair' || role === 'justerare') {
      const mine = locked.required.find((r) => r.user_id === this.ctx.me.id)
      if (mine?.signed_at) {
        out.append(h('p', null, c.youSigned(dateTime(mine.signed_at))))
      } else if (mine && mine.account_confirmed === false) {
        out.append(h('p', { class: 'unconfirmed-you', role: 'note' }, c.notConfirmedYou))
      } else if (mine) {
        const rejectToggle = h(
          'button',
          { type: 'button', 'aria-expanded': String(this.rejecting), 'aria-controls': 'reject-form', onclick: () => this.toggleReject() },
          c.reject,
        )
        out.append(
          h('p', null, c.signOffIntro(locked.hash.slice(0, 12))),
          h(
            'div',
            { class: 'row' },
            h('button', { type: 'button', class: 'primary', onclick: (e: Event) => void this.signoff(locked.hash, e.currentTarget as HTMLButtonElement) }, c.signOff),
            rejectToggle,
          ),
          this.rejectForm(locked.hash),
        )
      }
    }
    if (this.ctx.mayManage() && locked.required.every((r) => !r.signed_at)) {
      out.append(
        h(
          'div',
          { class: 'row' },
          h('button', { type: 'button', 'aria-describedby': 'reopen-hint', onclick: (e: Event) => void this.reopen(e.currentTarget as HTMLButtonElement) }, c.reopen),
          h('p', { id: 'reopen-hint', class: 'hint' }, c.reopenHint),
        ),
      )
    }
    out.append(this.actionError)
    return out.childElementCount > 1 ? out : null
  }

  private rejectForm(hash: string): HTMLElement {
    const c = t()
    const reason = h('textarea', { id: 'reject-reason', rows: 3, maxlength: 2000, 'aria-describedby': 'reject-hint reject-error' })
    const error = h('p', { id: 'reject-error', class: 'error' })
    const form = h(
      'form',
      { id: 'reject-form', class: 'reject-form', novalidate: true, hidden: !this.rejecting },
      h('label', { for: 'reject-reason' }, c.rejectReason),
      h('p', { id: 'reject-hint', class: 'hint' }, c.rejectHint),
      reason,
      error,
      h('button', { type: 'submit', class: 'danger-outline' }, c.rejectSubmit),
    )
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      if (reason.value.trim() === '') {
        error.textContent = c.rejectEmpty
        reason.setAttribute('aria-invalid', 'true')
        reason.focus()
        return
      }
      reason.removeAttribute('aria-invalid')
      error.textContent = ''
      void this.reject(hash, reason.value, form.querySelector('button')!)
    })
    return form
  }

  private toggleReject(): void {
    this.rejecting = !this.rejecting
    const form = this.banner.querySelector<HTMLFormElement>('#reject-form')
    const toggle = this.banner.querySelector<HTMLButtonElement>('[aria-controls="reject-form"]')
    if (!form || !toggle) return
    form.hidden = !this.rejecting
    toggle.setAttribute('aria-expanded', String(this.rejecting))
    if (this.rejecting) form.querySelector('textarea')?.focus()
  }

  private auditLog(): HTMLElement | null {
    const c = t()
    if (this.audit.length === 0) return null
    return h(
      'details',
      { class: 'audit' },
      h('summary', null, `${c.auditTitle} (${this.audit.length})`),
      h(
        'table',
        { class: 'stacks' },
        h(
          'thead',
          null,
          h('tr', null, [c.auditWhen, c.auditWho, c.auditWhat, c.auditWhy, c.auditHash].map((x) => h('th', { scope: 'col' }, x))),
        ),
        h(
          'tbody',
          null,
          this.audit.map((e) =>
            h(
              'tr',
              null,
              h('td', { 'data-label': c.auditWhen }, h('time', { datetime: e.at }, dateTime(e.at))),
              h('td', { 'data-label': c.auditWho }, e.actor_name, e.via === 'cli' ? h('span', { class: 'muted' }, ` (${c.viaCli})`) : null),
              h('td', { 'data-label': c.auditWhat }, c.auditActions[e.action] ?? e.action),
              h('td', { 'data-label': c.auditWhy }, e.reason ?? ''),
              h('td', { 'data-label': c.auditHash }, e.hash ? h('code', { class: 'hash' }, e.hash) : ''),
            ),
          ),
        ),
      ),
    )
  }

  // ---- actions -------------------------------------------------------------------

  private async run(button: HTMLButtonElement, action: () => Promise<ProtocolStatus>): Promise<void> {
    if (this.busy) return
    this.busy = true
    button.disabled = true
    this.actionError.textContent = ''
    try {
      await this.ctx.applied(await action())
    } catch (e) {
      this.actionError.textContent =
        e instanceof ApiError && e.status === 409 && e.message.includes(STALE)
          ? t().staleHash
          : e instanceof ApiError && e.status === 403 && e.message.includes(NOT_CONFIRMED)
            ? t().notConfirmedYou
            : `${t().actionFailed} ${message(e)}`
      // Whatever happened, show the protocol as it is now.
      try {
        await this.ctx.applied(await api.protocol(this.ctx.meetingId))
      } catch {
        // The next poll will.
      }
    } finally {
      this.busy = false
      button.disabled = false
    }
  }

  private signoff(hash: string, button: HTMLButtonElement): Promise<void> {
    return this.run(button, () => api.signoff(this.ctx.meetingId, hash))
  }

  private reject(hash: string, reason: string, button: HTMLButtonElement): Promise<void> {
    return this.run(button, () => api.reject(this.ctx.meetingId, hash, reason))
  }

  private reopen(button: HTMLButtonElement): Promise<void> {
    return this.run(button, () => api.reopen(this.ctx.meetingId))
  }

  private async copy(hash: string, id: string): Promise<void> {
    try {
      await navigator.clipboard.writeText(hash)
      this.status.textContent = t().hashCopied
    } catch {
      // No clipboard (an insecure origin): select it for Ctrl+C instead.
      const el = document.getElementById(id)
      if (el) window.getSelection()?.selectAllChildren(el)
    }
  }
}

function message(e: unknown): string {
  if (e instanceof ApiError && e.status !== 0 && e.status !== 500) return e.message
  return t().genericError
}
