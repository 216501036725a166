// Shared helpers for the end-to-end scenarios: Debian's chromium through
// playwright-core (never a downloaded browser), signed-in contexts, the
// test contract's hooks (data-section, .ProseMirror, data-connection-state)
// and the server's /metrics. Every wait is on a condition in the page or at
// the server, never a fixed sleep.

import { chromium } from 'playwright-core'

export const BASE = process.env.BASE_URL
export const MEETING = process.env.MEETING_ID
export const PASSWORD = process.env.DEMO_PASSWORD ?? 'demo-protokoll'
/** Generous: CI has two cores and is compiling while this runs. */
export const TIMEOUT = 45_000

if (!BASE || !MEETING) throw new Error('BASE_URL and MEETING_ID must be set')

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // The closed network here makes chromium misbehave without the
    // background-networking flags.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** A new browser context (its own cookies) with the page's errors surfaced. */
export async function newPage(browser, { base = BASE, viewport = { width: 1280, height: 900 }, mobile = false } = {}) {
  const context = await browser.newContext({ baseURL: base, viewport, locale: 'sv-SE', isMobile: mobile, hasTouch: mobile })
  context.setDefaultTimeout(TIMEOUT)
  const page = await context.newPage()
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`[console] ${m.text()}`)
  })
  return page
}

/** Signs in through the API (the cookie lands in the page's context). */
export async function signIn(page, username) {
  const response = await page.context().request.post('/api/login', { data: { username, password: PASSWORD } })
  if (!response.ok()) throw new Error(`sign-in as ${username} failed: ${response.status()}`)
}

/** A new page (see `newPage`) signed in as `username`, showing the meeting. */
export async function signedInPage(browser, username, options) {
  const page = await newPage(browser, options)
  await signIn(page, username)
  await openMeeting(page)
  return page
}

export async function openMeeting(page, meeting = MEETING) {
  await page.goto(`/meetings/${meeting}`)
  await connected(page)
}

export async function connected(page) {
  await page.waitForSelector('[data-connection-state="connected"]', { timeout: TIMEOUT })
  await page.waitForSelector('[data-section] .ProseMirror', { timeout: TIMEOUT })
}

export const editor = (page, id) => page.locator(`[data-section="${id}"] .ProseMirror`)

/** The text of a section as its editor holds it (carets and labels excluded). */
export async function textOf(page, id) {
  return editor(page, id).evaluate((el) => el.editor.state.doc.textContent)
}

/** Waits until section `id` in `page` contains `text`. */
export async function waitForText(page, id, text) {
  await page.waitForFunction(
    ([id, text]) => document.querySelector(`[data-section="${id}"] .ProseMirror`)?.editor?.state.doc.textContent.includes(text),
    [id, text],
    { timeout: TIMEOUT },
  )
}

/** Puts the caret at the end of section `id` (which must be writable). */
export async function caretAtEnd(page, id) {
  const el = editor(page, id)
  await el.click()
  await page.keyboard.press('Control+End')
}

export async function writableSections(page) {
  return page.$$eval('[data-section]', (els) =>
    els.filter((el) => el.querySelector('.ProseMirror')?.getAttribute('contenteditable') === 'true').map((el) => el.dataset.section),
  )
}

export async function sectionOrder(page) {
  return page.$$eval('[data-section]', (els) => els.map((el) => el.dataset.section))
}

/** The server's counters, summed over their labels. */
export async function metrics(request) {
  const text = await (await request.get(`${BASE}/metrics`)).text()
  const out = {}
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line)
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[3])
  }
  return out
}

/** Polls a condition at the server until it holds (Playwright's expect.poll, by hand). */
export async function until(what, check, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    last = await check()
    if (last === true) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}
