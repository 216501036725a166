// The end-to-end scenarios of issue 11, one per invocation:
//   node scenarios.mjs NAME
// with BASE_URL (the server), MEETING_ID (the demo meeting) and, for the
// screenshots, SCREENSHOT_DIR. Figures are printed as `figure: {...}` lines.
// Exits non-zero when a scenario fails.

import net from 'node:net'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import AxeBuilder from '@axe-core/playwright'
import {
  BASE,
  MEETING,
  PASSWORD,
  TIMEOUT,
  assert,
  caretAtEnd,
  connected,
  editor,
  launch,
  metrics,
  newPage,
  openMeeting,
  percentile,
  sectionOrder,
  signIn,
  signedInPage,
  textOf,
  until,
  waitForText,
  writableSections,
} from './lib.mjs'

const figure = (name, value) => console.log(`figure: ${JSON.stringify({ [name]: value })}`)

/** Where screenshots go (browser.rs: a temporary folder unless docs/ is refreshed); none without it. */
const SHOTS = process.env.SCREENSHOT_DIR
if (SHOTS) await mkdir(SHOTS, { recursive: true })

async function shot(page, name, options = {}) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, ...options })
}

/**
 * Nothing scrolls sideways: the document is no wider than the viewport the
 * page was given. (Not `innerWidth`: a mobile browser lays a page that is
 * too wide out in a wider viewport and zooms out, so there the two agree.)
 * On failure, names the elements that reach past the right edge.
 */
async function fitsWidth(page, what) {
  const width = page.viewportSize().width
  const report = await page.evaluate((width) => {
    const over = [...document.querySelectorAll('body *')]
      .filter((el) => {
        const r = el.getBoundingClientRect()
        return r.width > 0 && r.right > width + 0.5
      })
      .slice(0, 8)
      .map((el) => `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''} (right ${Math.round(el.getBoundingClientRect().right)} px)`)
    return { document: document.documentElement.scrollWidth, inner: window.innerWidth, over }
  }, width)
  assert(
    report.document <= width && report.inner <= width,
    `${what}: nothing scrolls sideways at ${width} px (document ${report.document} px wide, laid out ${report.inner} px wide; past the edge: ${report.over.join(', ')})`,
  )
}

// ---- 1. two agencies type at once; a member watches ---------------------------

async function liveTyping(browser) {
  const member = await signedInPage(browser, 'ledamot')
  const polis = await signedInPage(browser, 'polis')
  const skola = await signedInPage(browser, 'skola')

  assert(JSON.stringify(await writableSections(polis)) === '["polis"]', 'the police write only their section')
  assert(JSON.stringify(await writableSections(skola)) === '["skola"]', 'the school writes only its section')

  // The member's page records when each section's text grows; the typists'
  // pages record when each character is put in. Both clocks are the same
  // machine's (performance.timeOrigin + now).
  const base = {}
  for (const id of ['polis', 'skola']) base[id] = (await textOf(member, id)).length
  await member.evaluate((ids) => {
    window.__seen = {}
    for (const id of ids) {
      const el = document.querySelector(`[data-section="${id}"] .ProseMirror`)
      const log = (window.__seen[id] = [])
      new MutationObserver(() => log.push([performance.timeOrigin + performance.now(), el.editor.state.doc.textContent.length])).observe(el, {
        subtree: true,
        childList: true,
        characterData: true,
      })
    }
  }, ['polis', 'skola'])
  for (const page of [polis, skola]) {
    await page.evaluate(() => {
      window.__typed = []
      document.addEventListener('beforeinput', () => window.__typed.push(performance.timeOrigin + performance.now()), true)
    })
  }
  const texts = {
    polis: ' Polisen rapporterar att helgen var lugn i Fruangen och Vastertorp.',
    skola: ' Skolan inforer nya rutiner for rastvakter fran och med vecka 12.',
  }
  await caretAtEnd(polis, 'polis')
  await caretAtEnd(skola, 'skola')
  await Promise.all([polis.keyboard.type(texts.polis, { delay: 35 }), skola.keyboard.type(texts.skola, { delay: 35 })])
  await waitForText(member, 'polis', texts.polis.trim())
  await waitForText(member, 'skola', texts.skola.trim())

  const latencies = []
  for (const [id, page] of [['polis', polis], ['skola', skola]]) {
    const typed = await page.evaluate(() => window.__typed)
    const seen = await member.evaluate((id) => window.__seen[id], id)
    assert(typed.length === texts[id].length, `${id}: one input event per character (${typed.length})`)
    typed.forEach((at, i) => {
      const visible = seen.find(([, len]) => len >= base[id] + i + 1)
      assert(visible, `${id}: character ${i + 1} became visible`)
      latencies.push(visible[0] - at)
    })
  }
  figure('typing_to_visible_ms', {
    keystrokes: latencies.length,
    p50: Math.round(percentile(latencies, 50) * 10) / 10,
    p95: Math.round(percentile(latencies, 95) * 10) / 10,
    max: Math.round(Math.max(...latencies) * 10) / 10,
  })

  // Paste from Word: cleaned to the schema's nodes and marks, and accepted.
  await caretAtEnd(polis, 'polis')
  await polis.evaluate(() => {
    const html = `<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{margin:0}</style></head>
      <body><!--StartFragment--><h1>Rubrik fran Word</h1><p class=MsoNormal><b>Fet</b> och <i>kursiv</i>
      <span style='color:red;mso-bidi-font-weight:bold'>text</span><o:p></o:p></p>
      <table><tr><td>Cell i tabell</td></tr></table><img src="data:image/png;base64,AAAA">
      <ul><li>Punkt ett</li></ul><p><a href="javascript:alert(1)">farlig lank</a></p><!--EndFragment--></body></html>`
    const data = new DataTransfer()
    data.setData('text/html', html)
    data.setData('text/plain', 'Rubrik fran Word')
    document.activeElement.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }))
  })
  await waitForText(member, 'polis', 'Punkt ett')
  const used = await polis.evaluate(() => {
    const found = new Set()
    const walk = (node) => {
      found.add(node.type)
      for (const mark of node.marks ?? []) found.add(`mark:${mark.type}:${mark.attrs?.href ?? ''}`)
      for (const child of node.content ?? []) walk(child)
    }
    walk(document.querySelector('[data-section="polis"] .ProseMirror').editor.getJSON())
    return [...found]
  })
  const allowed = ['doc', 'paragraph', 'heading', 'bulletList', 'orderedList', 'listItem', 'text', 'hardBreak', 'mark:bold:', 'mark:italic:']
  assert(used.every((t) => allowed.includes(t) || /^mark:link:https?:/.test(t)), `pasted content stays in the schema: ${used}`)
  await waitForText(member, 'polis', 'Cell i tabell')

  // After a reload everything is there, for the member and the typists.
  for (const page of [member, polis]) {
    await page.reload()
    await connected(page)
    await waitForText(page, 'polis', texts.polis.trim())
    await waitForText(page, 'skola', texts.skola.trim())
  }

  // The member can edit nothing: no editable element, and typing changes nothing.
  const editable = await member.$$eval('[contenteditable="true"]', (els) => els.map((e) => e.outerHTML.slice(0, 120)))
  assert(editable.length === 0, `nothing is editable for the member: ${editable.join(' | ')}`)
  const sections = await member.locator('[data-section]').count()
  assert((await member.locator('[data-section] .ProseMirror[contenteditable="false"]').count()) === sections, 'every section is read-only')
  const before = await textOf(member, 'polis')
  await editor(member, 'polis').click()
  await member.keyboard.type('ledamoten skriver')
  assert((await textOf(member, 'polis')) === before, 'typing into a read-only section changes nothing')
}

// ---- a member who only reads sends no document update ---------------------------

async function readOnlyIsQuiet(browser) {
  const probe = await newPage(browser)
  await until('no open connections', async () => ((await metrics(probe.request))['protokoll_connections_open'] ?? 0) === 0 || 'open')
  const before = await metrics(probe.request)

  const member = await newPage(browser)
  await signIn(member, 'ledamot')
  const frames = []
  member.on('websocket', (ws) => ws.on('framesent', (f) => frames.push(f.payload)))
  await openMeeting(member)
  // Read the whole protocol: scroll, click into sections, select text, press keys.
  await member.mouse.wheel(0, 4000)
  await member.keyboard.press('End')
  await member.keyboard.press('Home')
  for (const id of ['polis', 'skola', 'oppnande', 'social-omsorg']) {
    await editor(member, id).click()
    await member.keyboard.press('Shift+End')
    await member.keyboard.type('x')
    await member.keyboard.press('Backspace')
    await member.keyboard.press('Enter')
  }
  await member.context().close()
  await until('the member disconnected', async () => ((await metrics(probe.request))['protokoll_connections_open'] ?? 0) === 0 || 'open')

  // Client side: the page never sent a Yjs update, and its sync step 2
  // replies carried nothing (an empty update is 0x00 0x00).
  const bytes = (p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))
  let emptyStep2 = 0
  for (const p of frames.map(bytes)) {
    if (p[0] !== 0) continue // awareness and other messages
    assert(p[1] !== 2, 'no sync update message was sent')
    if (p[1] === 1) {
      // 0 sync, 1 step 2, then the update as a byte array of length 2: 0 0.
      assert(p.length === 5 && p[2] === 2 && p[3] === 0 && p[4] === 0, `sync step 2 was empty (${p.toString('hex')})`)
      emptyStep2 += 1
    }
  }
  // Server side: only those empty replies were received; nothing applied or refused.
  await until('the server counted the empty replies', async () => {
    const now = await metrics(probe.request)
    return now['protokoll_updates_received_total'] - (before['protokoll_updates_received_total'] ?? 0) === emptyStep2 || now
  })
  const after = await metrics(probe.request)
  assert((after['protokoll_updates_applied_total'] ?? 0) === (before['protokoll_updates_applied_total'] ?? 0), 'no update applied')
  assert((after['protokoll_updates_rejected_total'] ?? 0) === (before['protokoll_updates_rejected_total'] ?? 0), 'no update refused')
  figure('read_only_member', { frames_sent: frames.length, empty_sync_step2: emptyStep2, updates_applied: 0, updates_refused: 0 })
}

// ---- 2. an edit forced into another agency's section --------------------------------

async function forbiddenEdit(browser) {
  const polis = await signedInPage(browser, 'polis')
  const skola = await signedInPage(browser, 'skola')

  // Through the interface: the school's section is not editable for the police.
  const schoolText = await textOf(polis, 'skola')
  assert((await editor(polis, 'skola').getAttribute('contenteditable')) === 'false', 'the school section is read-only for the police')
  await editor(polis, 'skola').click()
  await polis.keyboard.type('polisen skriver här')
  assert((await textOf(polis, 'skola')) === schoolText, 'typing does not reach another agency section')

  // A ProseMirror transaction on the read-only editor itself (what a
  // binding's normalising would be) stays on the page: the section is
  // bound to a receive-only mirror, so no update frame leaves.
  const quiet = await metrics(polis.request)
  await polis.evaluate(() => {
    const el = document.querySelector('[data-section="skola"] .ProseMirror')
    el.editor.view.dispatch(el.editor.state.tr.insertText('LOKAL TEXT', 1))
  })
  // The next legitimate edit is the marker that everything before it was sent.
  await caretAtEnd(polis, 'polis')
  await polis.keyboard.type(' Markor.')
  await waitForText(skola, 'polis', 'Markor.')
  assert(!(await textOf(skola, 'skola')).includes('LOKAL TEXT'), 'the read-only editor sent nothing')
  const afterQuiet = await metrics(polis.request)
  assert(
    (afterQuiet['protokoll_updates_rejected_total'] ?? 0) === (quiet['protokoll_updates_rejected_total'] ?? 0),
    'nothing was refused',
  )
  await polis.reload()
  await connected(polis)
  const before = await metrics(polis.request)

  // Forced through the shared document itself (a script on the page, as an
  // attacker would): the server refuses it and the page recovers.
  await polis.evaluate(() => {
    // The writable police section's binding holds the page's shared Y.Doc.
    const own = document.querySelector('[data-section="polis"] .ProseMirror').editor
    const sync = own.state.plugins.find((p) => p.key.startsWith('y-sync')).getState(own.state)
    const fragment = sync.doc.getXmlFragment('section:skola')
    const first = fragment.get(0)
    const Element = first.constructor
    const Text = first.get(0).constructor
    sync.doc.transact(() => {
      const p = new Element('paragraph')
      p.insert(0, [new Text('FORCERAD TEXT')])
      fragment.push([p])
    })
  })
  await polis.getByRole('alert').filter({ hasText: 'tog inte emot' }).waitFor()
  await until('the refusal is counted', async () => {
    const now = await metrics(polis.request)
    return now['protokoll_updates_rejected_total'] === (before['protokoll_updates_rejected_total'] ?? 0) + 1 || now
  })
  // The page recovered: a fresh document without the refused text, connected again.
  await connected(polis)
  await polis.waitForFunction(() => !document.querySelector('[data-section="skola"] .ProseMirror')?.textContent?.includes('FORCERAD'))
  assert(JSON.stringify(await writableSections(polis)) === '["polis"]', 'the police can still write their own section')

  // It reached nobody: the police's next legitimate edit arrives at the
  // school's page, and the forced text is not there (the server keeps order).
  await caretAtEnd(polis, 'polis')
  await polis.keyboard.type(' Efter vagran.')
  await waitForText(skola, 'polis', 'Efter vagran.')
  assert(!(await textOf(skola, 'skola')).includes('FORCERAD'), 'the forced text reached nobody')
  await skola.reload()
  await connected(skola)
  assert(!(await textOf(skola, 'skola')).includes('FORCERAD'), 'the forced text was never stored')
  await waitForText(skola, 'polis', 'Efter vagran.')
}

// ---- 3. the secretary reorders and reassigns; pages follow live ----------------------

async function openConsole(page) {
  const toggle = page.getByRole('button', { name: 'Sekreterarens verktyg' })
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click()
}

async function secretaryReassigns(browser) {
  const secretary = await signedInPage(browser, 'sekreterare', { viewport: { width: 1400, height: 1000 } })
  const polis = await signedInPage(browser, 'polis')
  const skola = await signedInPage(browser, 'skola')
  // Joins are announced once, politely, to screen readers on the other pages.
  await polis.locator('[aria-live="polite"]').filter({ hasText: 'Sara Lund (Skola) anslöt.' }).waitFor({ state: 'attached' })
  await openConsole(secretary)

  // Reorder: the police item moves down, below the fire service.
  const order = await sectionOrder(polis)
  assert(order.indexOf('polis') + 1 === order.indexOf('brand'), 'polis comes before brand')
  await secretary.getByRole('button', { name: 'Flytta ned § 2.1 Polis' }).click()
  await polis.waitForFunction(() => {
    const ids = [...document.querySelectorAll('[data-section]')].map((el) => el.dataset.section)
    return ids.indexOf('brand') + 1 === ids.indexOf('polis')
  })

  // Reassign: the police item now belongs to the school.
  await secretary.getByRole('button', { name: 'Ändra § 2.1 Polis' }).click()
  await secretary.getByLabel('Ansvarig').first().selectOption({ label: 'Skola' })
  await secretary.getByRole('button', { name: 'Spara' }).first().click()
  await polis.waitForSelector('[data-section="polis"] .ProseMirror[contenteditable="false"]')
  await skola.waitForSelector('[data-section="polis"] .ProseMirror[contenteditable="true"]')
  assert(JSON.stringify(await writableSections(polis)) === '[]', 'the police write nothing now')
  assert(JSON.stringify((await writableSections(skola)).sort()) === '["polis","skola"]', 'the school writes both')

  // The new owner writes there and everyone sees it; the old owner cannot.
  await caretAtEnd(skola, 'polis')
  await skola.keyboard.type(' Skolan tar over punkten.')
  await waitForText(polis, 'polis', 'Skolan tar over punkten.')
  await waitForText(secretary, 'polis', 'Skolan tar over punkten.')

  // Rename and renumber show at once too.
  await secretary.getByRole('button', { name: 'Ändra § 2.2 Brand' }).click()
  await secretary.locator('form.edit-item input[data-action="number"]').fill('2.0')
  await secretary.locator('form.edit-item').getByLabel('Rubrik').fill('Räddningstjänsten')
  await secretary.locator('form.edit-item').getByRole('button', { name: 'Spara' }).click()
  await polis.locator('[data-section="brand"] :is(h2, h3)').filter({ hasText: '§ 2.0 Räddningstjänsten' }).waitFor()
}

// ---- 4. offline typing reaches the others on reconnect ----------------------------------

/**
 * A TCP proxy to the server that can be cut like a network: the browser's
 * side is dropped, while the server's side is left open and silent, as
 * when a Wi-Fi connection goes away without a goodbye (the server notices
 * only by its pings). With `stallMs`, a WebSocket's first frames from the
 * server are held that long after its handshake, as on a link that
 * stalls right after reconnecting: the page has its socket open and sends
 * what it types while the server's sync step 1 is still on the way.
 */
async function proxy(target, { stallMs = 0 } = {}) {
  const pairs = new Set()
  let up = true
  const server = net.createServer((client) => {
    if (!up) return client.destroy()
    const upstream = net.connect(target.port, target.hostname)
    const pair = { client, upstream, cut: false, frozen: false }
    pairs.add(pair)
    for (const s of [client, upstream]) s.on('error', () => {})
    client.pipe(upstream)
    // With `stallMs`: chunks held after a 101 response's headers.
    let held = null
    let first = true
    const forward = (chunk) => {
      if (!pair.cut && !pair.frozen) client.write(chunk)
    }
    upstream.on('data', (chunk) => {
      if (first && stallMs > 0 && chunk.toString('latin1').startsWith('HTTP/1.1 101')) {
        first = false
        const end = chunk.indexOf('\r\n\r\n') + 4
        forward(chunk.subarray(0, end))
        held = [chunk.subarray(end)]
        setTimeout(() => {
          for (const c of held) forward(c)
          held = null
        }, stallMs)
        return
      }
      first = false
      if (held) held.push(chunk)
      else forward(chunk)
    })
    client.on('close', () => {
      if (!pair.cut && !pair.frozen) upstream.destroy()
    })
    upstream.on('close', () => {
      // A frozen connection hears nothing, not even its end.
      if (!pair.frozen) client.destroy()
      pairs.delete(pair)
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      up = false
      for (const pair of pairs) {
        pair.cut = true
        pair.client.unpipe(pair.upstream)
        pair.client.destroy()
      }
    },
    /**
     * The connections open now stay open at both ends and carry nothing
     * more, as when a network forgets them without a goodbye either way;
     * new connections pass.
     */
    freeze() {
      for (const pair of pairs) {
        pair.frozen = true
        pair.client.unpipe(pair.upstream)
      }
    },
    restore() {
      up = true
    },
    close() {
      for (const pair of pairs) {
        pair.upstream.destroy()
        pair.client.destroy()
      }
      server.close()
    },
  }
}

async function offline(browser) {
  const link = await proxy(new URL(BASE))
  try {
    const polis = await signedInPage(browser, 'polis', { base: link.url })
    const member = await signedInPage(browser, 'ledamot')

    link.cut()
    await polis.context().setOffline(true)
    await polis.waitForSelector('[data-connection-state="offline"]')
    await caretAtEnd(polis, 'polis')
    await polis.keyboard.type(' Skrivet utan anslutning.')
    await waitForText(polis, 'polis', 'Skrivet utan anslutning.')
    await polis.getByText('ändringar som inte har nått servern').waitFor()

    // Closing the tab now warns.
    const dialog = polis.waitForEvent('dialog')
    await polis.close({ runBeforeUnload: true })
    const d = await dialog
    assert(d.type() === 'beforeunload', `a beforeunload warning (${d.type()})`)
    await d.dismiss()
    assert(!polis.isClosed(), 'the tab stays open')

    await polis.context().setOffline(false)
    link.restore()
    await polis.waitForSelector('[data-connection-state="connected"]')
    await waitForText(member, 'polis', 'Skrivet utan anslutning.')
    await member.reload()
    await connected(member)
    await waitForText(member, 'polis', 'Skrivet utan anslutning.')
  } finally {
    link.close()
  }
}

/**
 * Issue 23: offline, then back online while typing. The page's socket
 * opens while the police keep typing, and the link stalls for a moment
 * after the handshake, so keystrokes go out before the page has answered
 * the server's sync step 1 (which carries the offline text): the server
 * must let them wait for it. Every character reaches the member's page,
 * and the scenario prints what it typed for the Rust side to find in the
 * stored document.
 */
async function offlineThenTypingThroughTheReconnect(browser) {
  const link = await proxy(new URL(BASE), { stallMs: 400 })
  try {
    const polis = await signedInPage(browser, 'polis', { base: link.url })
    const member = await signedInPage(browser, 'ledamot')
    const refusals = async () => (await metrics(member.request))['protokoll_updates_rejected_total'] ?? 0
    const refusedBefore = await refusals()

    link.cut()
    await polis.context().setOffline(true)
    await polis.waitForSelector('[data-connection-state="offline"]')
    await caretAtEnd(polis, 'polis')
    const offlineText = ' Skrivet utan anslutning,'
    await polis.keyboard.type(offlineText)
    await waitForText(polis, 'polis', offlineText)

    // Back online in the middle of typing: the reconnect (y-websocket's
    // backoff is at most 2.5 s here) comes while the keys keep coming.
    const onlineText = ' och vidare medan anslutningen kommer tillbaka, tecken for tecken utan paus, hela vagen till slutet av meningen.'
    const typing = polis.keyboard.type(onlineText, { delay: 40 })
    await waitForText(polis, 'polis', onlineText.slice(0, 4))
    await polis.context().setOffline(false)
    link.restore()
    await polis.waitForSelector('[data-connection-state="connected"]')
    await typing
    const typed = offlineText + onlineText
    await waitForText(member, 'polis', typed)
    // Nothing was refused on the way (a refused page throws its document
    // away and loads the meeting afresh).
    const refused = (await refusals()) - refusedBefore
    assert(refused === 0, `the server refused ${refused} updates`)
    await polis.getByText('ändringar som inte har nått servern').waitFor({ state: 'hidden' })
    assert((await textOf(polis, 'polis')).includes(typed), 'the page kept its text')
    console.log(`typed: ${JSON.stringify({ polis: typed })}`)
  } finally {
    link.close()
  }
}

// ---- a network blip: the indicator follows the real connection ----------------------------

/** Records the page's connection states as they change (`window.__states`). */
async function recordStates(page) {
  await page.evaluate(() => {
    const el = document.querySelector('[data-connection-state]')
    window.__states = [el.dataset.connectionState]
    new MutationObserver(() => window.__states.push(el.dataset.connectionState)).observe(el, {
      attributes: true,
      attributeFilter: ['data-connection-state'],
    })
  })
}

async function networkBlip(browser) {
  const link = await proxy(new URL(BASE))
  try {
    const polis = await signedInPage(browser, 'polis', { base: link.url })
    const member = await signedInPage(browser, 'ledamot')
    await recordStates(polis)
    const unsent = () => polis.evaluate(() => !document.querySelector('.pending').hidden)

    // 1. A blip the socket survives: the browser goes offline and online
    //    while the police type. Every character reaches the member, and
    //    the police page says it is connected, with nothing unsent, within
    //    seconds of the browser being back (it used to stay "Frånkopplad").
    const first = ' Skrivet medan natet blinkade till.'
    await caretAtEnd(polis, 'polis')
    await polis.keyboard.type(first.slice(0, 12), { delay: 30 })
    await polis.context().setOffline(true)
    await polis.waitForFunction(() => window.__states.includes('offline'))
    await polis.keyboard.type(first.slice(12, 24), { delay: 30 })
    await polis.context().setOffline(false)
    const online = Date.now()
    await polis.keyboard.type(first.slice(24), { delay: 30 })
    await waitForText(member, 'polis', first.trim())
    await polis.waitForSelector('[data-connection-state="connected"]', { timeout: 10_000 })
    await polis.waitForFunction(() => document.querySelector('.pending').hidden, null, { timeout: 10_000 })
    figure('blip_survived', { connected_after_online_ms: Date.now() - online, states: await polis.evaluate(() => window.__states) })
    await polis.keyboard.type(' Och sedan.', { delay: 30 })
    await waitForText(member, 'polis', 'Och sedan.')
    assert((await polis.getAttribute('[data-connection-state]', 'data-connection-state')) === 'connected', 'still connected')
    assert(!(await unsent()), 'nothing unsent')

    // 2. A blip the socket does not survive, unnoticed at either end (the
    //    network forgot the connection): what is typed meanwhile waits and
    //    says so; once the browser is back the page finds the socket dead
    //    (no answer), connects afresh at once (not after y-websocket's 30 s
    //    of silence) and the edits arrive.
    await polis.evaluate(() => {
      window.__states = []
    })
    link.freeze()
    await polis.context().setOffline(true)
    await polis.waitForSelector('[data-connection-state="offline"]')
    const second = ' Skrivet medan anslutningen var borta.'
    await caretAtEnd(polis, 'polis')
    await polis.keyboard.type(second, { delay: 20 })
    await polis.getByText('ändringar som inte har nått servern').waitFor()
    await polis.context().setOffline(false)
    const back = Date.now()
    await polis.waitForSelector('[data-connection-state="connected"]', { timeout: 20_000 })
    await waitForText(member, 'polis', second.trim())
    await polis.waitForFunction(() => document.querySelector('.pending').hidden)
    figure('blip_dead_socket', { connected_after_online_ms: Date.now() - back, states: await polis.evaluate(() => window.__states) })
    assert(!(await polis.evaluate(() => window.__states.slice(-1)[0] !== 'connected')), 'ends connected')
  } finally {
    link.close()
  }
}

// ---- phone width: every page at 390 px ---------------------------------------------------------

const PHONE = { width: 390, height: 844 }

async function phonePage(browser, options = {}) {
  return newPage(browser, { viewport: PHONE, mobile: true, ...options })
}

async function phone(browser) {
  // Sign-in.
  const anon = await phonePage(browser)
  await anon.goto('/login')
  await anon.getByLabel('Användarnamn').waitFor()
  await fitsWidth(anon, 'sign-in')
  // A page that does not exist.
  await anon.goto('/meetings/00000000-0000-4000-8000-000000000000')
  await anon.waitForURL('**/login**')
  await fitsWidth(anon, 'sign-in after a deep link')

  // The secretary: the meeting list with the form for a new meeting.
  const secretary = await phonePage(browser)
  await signIn(secretary, 'sekreterare')
  await secretary.goto('/')
  await secretary.getByRole('heading', { name: 'Dina sammanträden' }).waitFor()
  await secretary.getByRole('button', { name: 'Skapa' }).waitFor()
  await fitsWidth(secretary, 'meeting list')
  await shot(secretary, 'phone-meetings', { fullPage: true })
  await secretary.goto('/meetings/00000000-0000-4000-8000-000000000000')
  await secretary.getByRole('heading', { name: 'Sidan finns inte' }).waitFor()
  await fitsWidth(secretary, 'not found')

  // An agency writing its section, the formatting bar showing.
  const polis = await phonePage(browser)
  await signIn(polis, 'polis')
  await openMeeting(polis)
  await fitsWidth(polis, 'protocol draft (agency), top')
  await caretAtEnd(polis, 'polis')
  await polis.getByRole('toolbar', { name: 'Formatering för § 2.1 Polis' }).waitFor()
  await polis.keyboard.type(' Skrivet i telefonen.')
  await fitsWidth(polis, 'protocol draft (agency), writing')
  await polis.locator('[data-section="polis"]').evaluate((el) => el.scrollIntoView({ block: 'start' }))
  await shot(polis, 'phone-writing')

  // The secretary's page: tools open, an item being edited, an invitation.
  await openMeeting(secretary)
  await fitsWidth(secretary, 'protocol draft (secretary)')
  await secretary.waitForFunction(() => document.querySelectorAll('.people li:not(.muted)').length >= 2)
  await dotsBesideNames(secretary, 'presence on a phone (secretary)')
  await openConsole(secretary)
  await secretary.getByRole('button', { name: 'Ändra § 2.1 Polis' }).click()
  await fitsWidth(secretary, 'secretary console, editing an item')
  await secretary.getByLabel('Användarnamn').fill('telefon-inbjuden')
  await secretary.getByLabel('Namn', { exact: true }).fill('Inbjuden Telefonsson')
  await secretary.getByRole('button', { name: 'Skapa länk' }).click()
  const invitation = await secretary.getByLabel('Inbjudningslänk').inputValue()
  await fitsWidth(secretary, 'secretary console with an invitation link')
  await secretary.locator('.console').evaluate((el) => el.scrollIntoView({ block: 'start' }))
  await shot(secretary, 'phone-secretary')

  // The invitation page.
  const invitee = await phonePage(browser)
  await invitee.goto(invitation)
  await invitee.getByLabel('Välj lösenord').waitFor()
  await fitsWidth(invitee, 'invitation')

  // The lock dialog, then locked.
  await secretary.getByRole('button', { name: 'Lås protokollet' }).click()
  const dialog = secretary.getByRole('dialog', { name: 'Lås protokollet?' })
  await dialog.waitFor()
  await fitsWidth(secretary, 'lock dialog')
  await dialog.getByRole('button', { name: 'Lås nu' }).click()
  await showsLocked(secretary)
  await fitsWidth(secretary, 'locked (secretary)')

  // The chair of the locked protocol, on a phone, as in the issue: the
  // banner in one column, the hash across the width, each download link
  // on one line, nothing sideways; then "Justera".
  const chair = await phonePage(browser)
  await signIn(chair, 'ordforande')
  await openMeeting(chair)
  const hash = await showsLocked(chair)
  await fitsWidth(chair, 'locked (chair)')
  const layout = await chair.evaluate(() => {
    const facts = document.querySelector('.finalise-facts')
    const dt = facts.querySelector('dt').getBoundingClientRect()
    const dd = facts.querySelector('dd').getBoundingClientRect()
    const hash = document.querySelector('.finalise code.hash').getBoundingClientRect()
    // Lines of each link's text (a range has one rectangle per line).
    const lines = (el) => {
      const range = document.createRange()
      range.selectNodeContents(el)
      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size
    }
    const links = [...document.querySelectorAll('.downloads a')].map((a) => [a.textContent, lines(a)])
    return { stacked: dd.top >= dt.bottom - 1, hashWidth: hash.width, width: window.innerWidth, links }
  })
  assert(layout.stacked, `the banner's facts stack in one column (${JSON.stringify(layout)})`)
  assert(layout.hashWidth >= layout.width * 0.6, `the hash runs across the width (${JSON.stringify(layout)})`)
  assert(layout.links.every(([, lines]) => lines === 1), `each download link stays on one line (${JSON.stringify(layout.links)})`)
  await chair.evaluate(() => window.scrollTo(0, 0))
  await shot(chair, 'phone-locked')
  await chair.locator('.audit summary').click()
  await fitsWidth(chair, 'locked (chair), audit log open')
  await chair.getByRole('button', { name: 'Avvisa', exact: true }).click()
  await fitsWidth(chair, 'locked (chair), rejection form open')
  await chair.getByRole('button', { name: 'Avvisa', exact: true }).click()
  await chair.getByRole('button', { name: 'Justera', exact: true }).click()
  await chair.getByText('Du justerade protokollet').waitFor()
  await fitsWidth(chair, 'signed off (chair)')

  // The justerare's sign-off verifies it.
  const justerare = await phonePage(browser)
  await signIn(justerare, 'justerare')
  await openMeeting(justerare)
  await justerare.getByRole('button', { name: 'Justera', exact: true }).click()
  await justerare.getByRole('heading', { name: 'Protokollet är justerat' }).waitFor()
  await fitsWidth(justerare, 'verified')
  await justerare.evaluate(() => window.scrollTo(0, 0))
  await shot(justerare, 'phone-verified')
  await fitsWidth(polis, 'verified (agency), seen live')

  // The verification page: the form, and its answer.
  await anon.goto('/verify')
  await anon.getByLabel('Protokollfil').waitFor()
  await fitsWidth(anon, 'verification form')
  await anon.goto(`/verify?hash=${hash}`)
  await anon.getByRole('heading', { name: 'Stämmer', exact: true }).waitFor()
  await fitsWidth(anon, 'verification answer')
  await shot(anon, 'phone-verification', { fullPage: true })
}

// ---- 5. a meeting from an earlier one; a newcomer invited and writing -------------------

async function newcomer(browser) {
  const secretary = await newPage(browser, { viewport: { width: 1400, height: 1000 } })
  await signIn(secretary, 'sekreterare')
  await secretary.goto('/')
  await secretary.getByLabel('Utgå från').selectOption({ value: MEETING })
  await secretary.getByLabel('Rubrik').fill('Lokala Brå Hägersten-Liljeholmen 2018-05-18')
  await secretary.getByLabel('Datum').fill('2018-05-18')
  await secretary.getByRole('button', { name: 'Skapa' }).click()
  await secretary.waitForURL((url) => /\/meetings\/[0-9a-f-]{36}$/.test(url.pathname) && !url.pathname.endsWith(MEETING))
  const meeting = new URL(secretary.url()).pathname.split('/').pop()
  await connected(secretary)
  // Agenda, owners and participants came along.
  assert(JSON.stringify(await sectionOrder(secretary)).includes('"polis","brand"'), 'the agenda was copied')
  await secretary.locator('.attendance').getByText('Karin Sjöberg').waitFor()
  assert((await textOf(secretary, 'polis')).length <= 1, 'the new protocol starts empty')

  await openConsole(secretary)
  await secretary.getByLabel('Användarnamn').fill('nykomling')
  await secretary.getByLabel('Namn', { exact: true }).fill('Nina Nykomling')
  await secretary.getByRole('button', { name: 'Skapa länk' }).click()
  const link = await secretary.getByLabel('Inbjudningslänk').inputValue()
  assert(link.startsWith(`${BASE}/invite/`), `an invitation link (${link})`)

  const nina = await newPage(browser)
  await nina.goto(link)
  await nina.getByText('Du är inbjuden till').waitFor()
  await nina.getByLabel('Välj lösenord').fill('en lång fras som lösenord')
  await nina.getByLabel('Upprepa lösenordet').fill('en lång fras som lösenord')
  await nina.getByRole('button', { name: 'Gå med i sammanträdet' }).click()
  await nina.waitForURL(`**/meetings/${meeting}`)
  await connected(nina)
  assert(JSON.stringify(await writableSections(nina)) === '[]', 'a newcomer without an agency writes nothing yet')

  // The secretary's page learns of the newcomer when she connects, and gives
  // her a section of her own.
  await secretary.locator('.presence').getByText('Nina Nykomling').waitFor()
  await secretary.getByRole('button', { name: 'Ändra § 4 Övriga frågor' }).click()
  const owner = secretary.locator('form.edit-item').getByLabel('Ansvarig')
  await secretary.waitForFunction(() =>
    [...document.querySelectorAll('form.edit-item option')].some((o) => o.textContent === 'Nina Nykomling'),
  )
  await owner.selectOption({ label: 'Nina Nykomling' })
  await secretary.locator('form.edit-item').getByRole('button', { name: 'Spara' }).click()
  await nina.waitForSelector('[data-section="ovriga-fragor"] .ProseMirror[contenteditable="true"]')
  await caretAtEnd(nina, 'ovriga-fragor')
  await nina.keyboard.type('Nina tar upp trygghetsvandringen i Aspudden.')
  await waitForText(secretary, 'ovriga-fragor', 'Nina tar upp trygghetsvandringen i Aspudden.')
}

// ---- 6. keyboard only ---------------------------------------------------------------------

/** Presses Tab until `match` holds for the focused element. */
async function tabTo(page, what, match) {
  for (let i = 0; i < 250; i++) {
    await page.keyboard.press('Tab')
    if (await page.evaluate(match)) {
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)
      assert(outline !== 'none', `focus is visible on ${what}`)
      return
    }
  }
  throw new Error(`could not reach ${what} with Tab`)
}

async function keyboardOnly(browser) {
  const page = await newPage(browser, { viewport: { width: 1400, height: 1000 } })
  await page.goto('/')
  await page.waitForURL('**/login**')
  // The sign-in form has the focus; everything from here is keys.
  await page.waitForFunction(() => document.activeElement?.id === 'username')
  await page.keyboard.type('sekreterare')
  await page.keyboard.press('Tab')
  await page.keyboard.type(PASSWORD)
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { name: 'Dina sammanträden' }).waitFor()
  await tabTo(page, 'the meeting link', () => document.activeElement?.textContent === 'Lokala Brå Hägersten-Liljeholmen 2018-03-09')
  await page.keyboard.press('Enter')
  await connected(page)

  // Reach my section.
  await tabTo(page, 'the jump button', () => document.activeElement?.textContent === 'Gå till mitt avsnitt')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => document.activeElement?.closest('[data-section]')?.dataset.section === 'oppnande')
  await page.keyboard.type(' Skrivet med tangentbordet.')
  await waitForText(page, 'oppnande', 'Skrivet med tangentbordet.')

  // Move an agenda item with the keyboard.
  await tabTo(page, 'the secretary tools', () => document.activeElement?.textContent === 'Sekreterarens verktyg')
  await page.keyboard.press('Enter')
  await tabTo(page, 'Flytta ned § 2.5', () => document.activeElement?.getAttribute('aria-label') === 'Flytta ned § 2.5 Äldreomsorg')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => {
    const ids = [...document.querySelectorAll('[data-section]')].map((el) => el.dataset.section)
    return ids.indexOf('social-omsorg') + 1 === ids.indexOf('aldreomsorg')
  })
  // The focus stays with the moved item, so it can move again.
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Flytta ned § 2.5 Äldreomsorg')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => {
    const ids = [...document.querySelectorAll('[data-section]')].map((el) => el.dataset.section)
    return ids.indexOf('forskola') + 1 === ids.indexOf('aldreomsorg')
  })
  await page.getByRole('status').filter({ hasText: 'är nu punkt' }).first().waitFor()
}

// ---- 7. axe-core, and the screenshots ------------------------------------------------------

/**
 * WCAG 2.5.3 (label in name), checked by hand as well as by axe: every
 * visible control named by aria-label or aria-labelledby contains the text
 * it shows. axe leaves out text marked aria-hidden; a person who says what
 * they see to their speech input does not.
 */
async function labelInName(page, name) {
  const mismatched = await page.$$eval('button, a[href], [role="button"], [role="link"], summary', (els) =>
    els
      .filter((el) => el.checkVisibility())
      .map((el) => {
        const labelledBy = el.getAttribute('aria-labelledby')
        const label = labelledBy
          ? labelledBy
              .split(/\s+/)
              .map((id) => document.getElementById(id)?.textContent ?? '')
              .join(' ')
          : el.getAttribute('aria-label')
        const norm = (text) => text.replace(/\s+/g, ' ').trim().toLowerCase()
        return { shown: norm(el.innerText ?? ''), label: label === null ? null : norm(label), html: el.outerHTML.slice(0, 160) }
      })
      .filter(({ shown, label }) => label !== null && shown !== '' && !label.includes(shown)),
  )
  assert(mismatched.length === 0, `label in name on ${name}: ${JSON.stringify(mismatched, null, 1)}`)
}

async function axe(page, name) {
  await labelInName(page, name)
  const result = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    // Tagged experimental in axe-core, so off unless asked for (WCAG 2.5.3).
    .options({ rules: { 'label-content-name-mismatch': { enabled: true } } })
    .analyze()
  const violations = result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
  }))
  figure(`axe ${name}`, {
    passes: result.passes.length,
    violations: violations.length,
    // "Needs review" items axe cannot decide alone (e.g. contrast over a
    // selection tint), listed so a person can look.
    incomplete: result.incomplete.map((i) => `${i.id}: ${i.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`),
  })
  assert(violations.length === 0, `axe violations on ${name}: ${JSON.stringify(violations, null, 1)}`)
}

/**
 * In "Anslutna nu" each person's dot stands beside the first line of their
 * name, however the name wraps; never on a line of its own above it.
 */
async function dotsBesideNames(page, what) {
  const misplaced = await page.$$eval('.people li:not(.muted)', (items) =>
    items
      .map((li) => {
        const dot = li.querySelector('.swatch').getBoundingClientRect()
        const range = document.createRange()
        range.selectNodeContents(li.querySelector('.swatch ~ span'))
        const first = range.getClientRects()[0]
        return { who: li.textContent, beside: dot.top < first.bottom && dot.bottom > first.top && dot.right <= first.left }
      })
      .filter((p) => !p.beside)
      .map((p) => p.who),
  )
  assert(misplaced.length === 0, `${what}: the dot stands beside the name (${misplaced.join(' | ')})`)
}

async function accessibility(browser) {
  const anon = await newPage(browser)
  await anon.goto('/login')
  await anon.getByLabel('Användarnamn').waitFor()
  await axe(anon, 'sign-in')

  const polis = await newPage(browser, { viewport: { width: 1440, height: 1000 } })
  await signIn(polis, 'polis')
  await polis.goto('/')
  await polis.getByRole('heading', { name: 'Dina sammanträden' }).waitFor()
  await axe(polis, 'meeting list')

  const skola = await signedInPage(browser, 'skola')
  await openMeeting(polis)
  // Someone else is writing, so the page shows a caret and presence.
  await caretAtEnd(skola, 'skola')
  await polis.locator('[data-section="skola"] .caret').waitFor()
  await caretAtEnd(polis, 'polis')
  // The formatting bar shows while the caret is in the section: checked with it.
  await polis.getByRole('toolbar', { name: 'Formatering för § 2.1 Polis' }).waitFor()
  await axe(polis, 'protocol page (agency user)')
  assert(await polis.getByRole('toolbar', { name: 'Formatering för § 2.1 Polis' }).isVisible(), 'the formatting bar was there throughout')

  // Writing: the police in their section (formatting bar showing), the
  // school's caret with its name in the next section.
  await skola.keyboard.type(' Skolan skriver')
  await polis.locator('[data-section="skola"] .caret-label').waitFor()
  await polis.evaluate(() => {
    const el = document.querySelector('[data-section="information"]')
    window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY + 160)
  })
  await shot(polis, 'protocol-writing')
  await polis.locator('[data-section="polis"] .ProseMirror').evaluate((el) => el.blur())
  await polis.evaluate(() => window.scrollTo(0, 0))
  await shot(polis, 'protocol-desktop')
  await polis.setViewportSize({ width: 768, height: 1024 })
  await polis.evaluate(() => window.scrollTo(0, 0))
  await shot(polis, 'protocol-tablet')
  await fitsWidth(polis, 'protocol page at tablet width')
  await polis.setViewportSize({ width: 1440, height: 1000 })

  const secretary = await signedInPage(browser, 'sekreterare', { viewport: { width: 1440, height: 1000 } })
  // "Eva Lindqvist (Stadsdelsförvaltningen) (du)" is longer than the panel is wide.
  await secretary.waitForFunction(() => document.querySelectorAll('.people li:not(.muted)').length >= 3)
  await dotsBesideNames(secretary, 'presence (secretary)')
  await openConsole(secretary)
  await secretary.getByRole('button', { name: 'Ändra § 2.1 Polis' }).click()
  await axe(secretary, 'protocol page (secretary, tools open)')
  await shot(secretary, 'protocol-secretary')

  const issued = await secretary.request.post(`/api/meetings/${MEETING}/invitations`, {
    data: { username: 'axe-inbjuden', display_name: 'Inbjuden Person', role: 'member' },
  })
  assert(issued.ok(), `invitation created (${issued.status()})`)
  const invite = await newPage(browser)
  await invite.goto((await issued.json()).url)
  await invite.getByLabel('Välj lösenord').waitFor()
  await axe(invite, 'invitation')
}

// ---- 8. lock while two agencies type; justering; verification ---------------------------------

/** The text of a section in the canonical protocol (as ProseMirror's textContent). */
function canonicalText(protocol, id) {
  const item = protocol.agenda.find((i) => i.id === id)
  let out = ''
  const walk = (node) => {
    if (node.type === 'text') out += node.text
    for (const child of node.content ?? []) walk(child)
  }
  for (const block of item?.content ?? []) walk(block)
  return out
}

/**
 * The side panel of a locked (`låst`) or verified (`justerat`) protocol:
 * the connection card and the panel say that nothing more is saved.
 */
async function saysLocked(page, state) {
  const card = `Ansluten – protokollet är ${state}, inga ändringar sparas`
  await page.locator('[data-connection-state="connected"]').filter({ hasText: card }).waitFor()
  const side = await page.locator('aside.side').innerText()
  const panel = state === 'låst' ? 'Protokollet är låst för justering. Ingen kan skriva i det längre' : 'Protokollet är justerat. Texten är slutlig'
  assert(side.includes(panel), `the side panel says the protocol is ${state} (${side})`)
  for (const wrong of ['inget eget avsnitt', 'sparas direkt', 'Du skriver i', 'Gå till mitt avsnitt']) {
    assert(!side.includes(wrong), `the side panel of a ${state} protocol does not say "${wrong}" (${side})`)
  }
}

/** Waits until the page shows the protocol read-only with the locked banner and its hash. */
async function showsLocked(page) {
  await page.waitForSelector('.finalise code.hash[data-hash]')
  await page.waitForFunction(() => document.querySelectorAll('[data-section] .ProseMirror[contenteditable="true"]').length === 0)
  return page.locator('.finalise code.hash[data-hash]').textContent()
}

async function lockAndVerify(browser) {
  const secretary = await signedInPage(browser, 'sekreterare', { viewport: { width: 1400, height: 1000 } })
  const polis = await signedInPage(browser, 'polis')
  const skola = await signedInPage(browser, 'skola')
  for (const page of [secretary, polis, skola]) {
    assert((await page.locator('.protocol-head .state').textContent()) === 'Utkast', 'the protocol starts as a draft')
    // Set on the page: a reload would lose it.
    await page.evaluate(() => {
      window.__sameDocument = true
    })
  }

  // Both agencies type while the secretary locks.
  const texts = {
    polis: ' Polisen noterar fler anmalningar om inbrott i kallarforrad under februari och planerar riktade insatser i Fruangen.',
    skola: ' Skolan har startat en lasgrupp for mellanstadiet och samarbetar med fritidsgarden om eftermiddagarna i Vastertorp.',
  }
  await caretAtEnd(polis, 'polis')
  await caretAtEnd(skola, 'skola')
  const typing = Promise.all([polis.keyboard.type(texts.polis, { delay: 45 }), skola.keyboard.type(texts.skola, { delay: 45 })])
  await waitForText(secretary, 'polis', 'Polisen noterar fler')
  await waitForText(secretary, 'skola', 'Skolan har startat')

  // The confirmation names who is still writing and the § numbers that freeze.
  await secretary.getByRole('button', { name: 'Lås protokollet' }).click()
  const dialog = secretary.getByRole('dialog', { name: 'Lås protokollet?' })
  await dialog.waitFor()
  await dialog.getByText('Karin Sjöberg (Polis), i § 2.1 Polis').waitFor()
  await dialog.getByText('Sara Lund (Skola), i § 2.4 Skola').waitFor()
  await dialog.getByText('§ 6 Tid för möten 2018').waitFor()
  // Focus starts on "Avbryt" and stays in the dialog; Escape closes it.
  assert((await secretary.evaluate(() => document.activeElement?.textContent)) === 'Avbryt', 'the safe choice has the focus')
  for (let i = 0; i < 4; i++) {
    await secretary.keyboard.press('Tab')
    assert(await secretary.evaluate(() => !!document.activeElement?.closest('dialog')), 'focus stays in the dialog')
  }
  await axe(secretary, 'lock dialog open')
  await shot(secretary, 'lock-dialog')
  await secretary.keyboard.press('Escape')
  await dialog.waitFor({ state: 'hidden' })
  assert((await secretary.evaluate(() => document.activeElement?.textContent)) === 'Lås protokollet', 'focus returns to the button')
  assert((await secretary.locator('.protocol-head .state').textContent()) === 'Utkast', 'Escape locked nothing')

  await secretary.getByRole('button', { name: 'Lås protokollet' }).click()
  await dialog.getByRole('button', { name: 'Lås nu' }).click()
  const hash = await showsLocked(secretary)
  assert(/^[0-9a-f]{64}$/.test(hash), `the full hash is shown (${hash})`)

  // Both agency pages turn read-only live, without a reload, and show the hash.
  for (const page of [polis, skola]) {
    assert((await showsLocked(page)) === hash, 'the same hash everywhere')
    await page.locator('.protocol-head .state-locked').waitFor()
  }
  await typing
  for (const page of [polis, skola, secretary]) {
    assert(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded')
    await connected(page)
  }

  // Typed after the lock: nowhere. The editor is read-only now; the click
  // only gives it the focus, so Playwright's wait for a stable, editable
  // target is skipped (under a fully loaded test run it timed out once).
  await editor(polis, 'polis').click({ force: true })
  await polis.keyboard.type('EFTER LASET')
  assert(!(await textOf(polis, 'polis')).includes('EFTER LASET'), 'typing after the lock changes nothing')
  await polis.getByRole('heading', { name: 'Protokollet är låst för justering' }).waitFor()

  // The locked rendering is exactly what the pages show: every keystroke
  // either made it in before the lock or was refused, none after.
  const locked = JSON.parse((await (await polis.request.get(`/api/meetings/${MEETING}/protocol.json`)).text()))
  for (const [id, page] of [['polis', polis], ['skola', skola]]) {
    const inProtocol = canonicalText(locked, id)
    await page.waitForFunction(
      ([id, text]) => document.querySelector(`[data-section="${id}"] .ProseMirror`)?.editor?.state.doc.textContent === text,
      [id, inProtocol],
    )
    assert(!inProtocol.includes('EFTER LASET'), `${id}: nothing typed after the lock`)
    const kept = inProtocol.length - inProtocol.indexOf(texts[id].slice(0, 12))
    figure(`kept_before_lock_${id}`, { typed: texts[id].length, in_locked_protocol: kept })
  }
  // The § list on the banner is the frozen agenda.
  const frozen = await polis.locator('.frozen-items').textContent()
  assert(frozen.startsWith('§ 1, § 2, § 2.1') && frozen.endsWith('§ 6'), `frozen § numbers (${frozen})`)
  // The side panel says what the lock means for the police too: not
  // "no section of your own", not "changes are saved at once".
  await saysLocked(polis, 'låst')
  await axe(polis, 'locked protocol (agency user)')
  await polis.evaluate(() => window.scrollTo(0, 0))
  await shot(polis, 'protocol-locked')

  // The chair and the justerare, each in their own browser.
  const chair = await signedInPage(browser, 'ordforande', { viewport: { width: 1280, height: 1000 } })
  const justerare = await signedInPage(browser, 'justerare')
  assert((await showsLocked(chair)) === hash, 'the chair is shown the hash')

  // A rejection needs a reason: the form refuses an empty one.
  await justerare.getByRole('button', { name: 'Avvisa', exact: true }).click()
  await justerare.getByRole('button', { name: 'Avvisa protokollet' }).click()
  await justerare.getByText('Skriv varför protokollet avvisas.').waitFor()
  assert((await justerare.getByLabel('Varför avvisas protokollet?').getAttribute('aria-invalid')) === 'true', 'the empty reason is marked')
  const audit = async () => (await (await chair.request.get(`/api/meetings/${MEETING}/audit`)).json()).length
  assert((await audit()) === 1, 'nothing was sent: the log holds only the lock')

  // A sign-off against a hash the server no longer has is explained.
  await chair.route(`**/api/meetings/${MEETING}/signoffs`, (route) =>
    route.continue({ postData: JSON.stringify({ hash: 'a'.repeat(64) }) }),
  )
  await chair.getByRole('button', { name: 'Justera', exact: true }).click()
  await chair.getByText('Protokollet har ändrats sedan du läste det').waitFor()
  await chair.unroute(`**/api/meetings/${MEETING}/signoffs`)

  await chair.getByRole('button', { name: 'Justera', exact: true }).click()
  await chair.getByText('Du justerade protokollet').waitFor()
  // The others see the chair's sign-off come in.
  await polis.locator('.signoffs li.signed').filter({ hasText: 'Anders Holm' }).waitFor()
  await justerare.getByRole('button', { name: 'Justera', exact: true }).click()

  // Verified, live, everywhere.
  for (const page of [secretary, polis, skola, chair, justerare]) {
    await page.locator('.protocol-head .state-verified').filter({ hasText: 'Justerat' }).waitFor()
    await page.getByRole('heading', { name: 'Protokollet är justerat' }).waitFor()
    await page.locator('.signatures .signature.signed').nth(1).waitFor()
    assert(await page.evaluate(() => window.__sameDocument !== false), 'no reload')
  }
  const names = await polis.locator('.signatures .signature.signed .signature-name').allTextContents()
  assert(JSON.stringify(names) === '["Anders Holm","Maria Sundberg"]', `sign-off block (${names})`)
  await saysLocked(polis, 'justerat')
  await axe(polis, 'verified protocol')
  await polis.evaluate(() => window.scrollTo(0, 0))
  await shot(polis, 'protocol-verified')

  // The PDF, downloaded through the page, verifies; one changed byte does not.
  const [download] = await Promise.all([polis.waitForEvent('download'), polis.getByRole('link', { name: 'PDF (arkiv, PDF/A)' }).click()])
  const work = await mkdtemp(join(tmpdir(), 'protokoll-e2e-'))
  const pdf = join(work, 'protokoll.pdf')
  await download.saveAs(pdf)
  const bytes = await readFile(pdf)
  assert(bytes.subarray(0, 5).toString() === '%PDF-', 'a PDF was downloaded')
  const anon = await newPage(browser)
  await anon.goto('/verify')
  await anon.getByLabel('Protokollfil').setInputFiles(pdf)
  await anon.getByRole('button', { name: 'Kontrollera' }).click()
  await anon.getByRole('heading', { name: 'Stämmer', exact: true }).waitFor()
  const report = await anon.locator('main').textContent()
  assert(report.includes('Justerat') && report.includes('giltig') && report.includes(hash), `the report (${report})`)
  assert(report.includes('Anders Holm') && report.includes('Maria Sundberg'), 'the sign-offs are listed')
  await axe(anon, 'verification page (match)')
  await shot(anon, 'verification', { fullPage: true })

  const tampered = Buffer.from(bytes)
  const at = tampered.length >> 1
  tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41
  const copy = join(work, 'andrad.pdf')
  await writeFile(copy, tampered)
  await anon.goto('/verify')
  await anon.getByLabel('Protokollfil').setInputFiles(copy)
  await anon.getByRole('button', { name: 'Kontrollera' }).click()
  await anon.getByRole('heading', { name: 'Stämmer inte' }).waitFor()
  await axe(anon, 'verification page (no match)')
}

// ---- 9. reopening before anyone signed: the pages are drafts again, live -------------------------

async function reopenBeforeSignoff(browser) {
  const secretary = await signedInPage(browser, 'sekreterare', { viewport: { width: 1400, height: 1000 } })
  const polis = await signedInPage(browser, 'polis')
  await polis.evaluate(() => {
    window.__sameDocument = true
  })
  await secretary.getByRole('button', { name: 'Lås protokollet' }).click()
  await secretary.getByRole('dialog').getByRole('button', { name: 'Lås nu' }).click()
  await showsLocked(polis)
  await saysLocked(polis, 'låst')
  await secretary.getByRole('button', { name: 'Öppna igen' }).click()
  await polis.waitForSelector('[data-section="polis"] .ProseMirror[contenteditable="true"]')
  await polis.locator('.protocol-head .state-draft').waitFor()
  await polis.getByText('öppnade protokollet igen').first().waitFor()
  await polis.locator('[data-connection-state="connected"]').filter({ hasText: 'Ansluten – ändringar sparas direkt' }).waitFor()
  await polis.locator('aside.side').getByText('Du skriver i: § 2.1 Polis').waitFor()
  await caretAtEnd(polis, 'polis')
  await polis.keyboard.type(' Skrivet efter att protokollet oppnades igen.')
  await waitForText(secretary, 'polis', 'Skrivet efter att protokollet oppnades igen.')
  assert(await polis.evaluate(() => window.__sameDocument === true), 'the page was not reloaded')
}

// ---- a link written with target, rel and class: reverse tabnabbing (issue 24) --------------------

async function linkAttributes(browser) {
  // Another origin than the app's: the same server under another name.
  const outside = `${BASE.replace('127.0.0.1', 'localhost')}/verify`
  const polis = await signedInPage(browser, 'polis')
  // Written into the police's own section through the shared document, as
  // a script on an agency's page (or any Yjs client) could: a link mark
  // with attributes of its own.
  await polis.evaluate((href) => {
    const own = document.querySelector('[data-section="polis"] .ProseMirror').editor
    const sync = own.state.plugins.find((p) => p.key.startsWith('y-sync')).getState(own.state)
    const fragment = sync.doc.getXmlFragment('section:polis')
    const first = fragment.get(0)
    const Element = first.constructor
    const Text = first.get(0).constructor
    sync.doc.transact(() => {
      const p = new Element('paragraph')
      const text = new Text()
      p.insert(0, [text])
      fragment.push([p])
      text.insert(0, 'Kartan över området', {
        link: { href, target: '_blank', rel: 'opener', class: 'stor-knapp' },
      })
    })
  }, outside)

  const member = await newPage(browser)
  await signIn(member, 'ledamot')
  const app = await member.goto(`/meetings/${MEETING}`)
  await connected(member)
  await waitForText(member, 'polis', 'Kartan över området')
  const link = member.locator('[data-section="polis"] a', { hasText: 'Kartan över området' })
  const attrs = await link.evaluate((a) => Object.fromEntries([...a.attributes].map((x) => [x.name, x.value])))
  assert(
    JSON.stringify(attrs) === JSON.stringify({ href: outside, target: '_blank', rel: 'noopener noreferrer nofollow' }),
    `the link keeps only its target: ${JSON.stringify(attrs)}`,
  )
  // The member clicks it: the outside page gets no handle on the protocol.
  const [opened] = await Promise.all([member.context().waitForEvent('page'), link.click()])
  await opened.waitForLoadState()
  assert(new URL(opened.url()).host === new URL(outside).host, `the link opened ${opened.url()}`)
  assert((await opened.evaluate(() => window.opener)) === null, 'the opened page has no window.opener')
  assert(member.url().endsWith(`/meetings/${MEETING}`), 'the protocol page stays where it was')
  // And every page of the app is its own browsing context group.
  assert(app.headers()['cross-origin-opener-policy'] === 'same-origin', 'the app sends Cross-Origin-Opener-Policy')
}

// ---- switching language relabels the page and keeps its connection ----------------

async function languageSwitch(browser) {
  const secretary = await newPage(browser, { viewport: { width: 1400, height: 1000 } })
  await signIn(secretary, 'sekreterare')
  const sockets = []
  let closed = 0
  secretary.on('websocket', (ws) => {
    sockets.push(ws.url())
    ws.on('close', () => (closed += 1))
  })
  await openMeeting(secretary)
  const member = await signedInPage(browser, 'ledamot')
  const [mine] = await writableSections(secretary)
  assert(mine, 'the secretary writes a section')
  await caretAtEnd(secretary, mine)
  await secretary.keyboard.type(' före bytet')
  await waitForText(member, mine, ' före bytet')
  assert(sockets.length === 1, `one socket before the switch (${sockets.length})`)
  // The editor element is marked: the same one must be there afterwards.
  await editor(secretary, mine).evaluate((el) => (el.dataset.before = 'switch'))

  await secretary.getByRole('button', { name: 'English' }).click()
  await secretary.waitForFunction(() => document.documentElement.lang === 'en')
  await secretary.getByRole('heading', { name: 'Connected now' }).waitFor()
  await secretary.locator('[data-connection-state="connected"]', { hasText: 'Connected – changes are saved at once' }).waitFor()
  await secretary.locator(`[data-section="${mine}"] .badge`, { hasText: 'You can write here' }).waitFor()
  // The toolbar shows while its section has the focus; named in English all the same.
  await secretary.locator(`[data-section="${mine}"] [role="toolbar"][aria-label^="Formatting"] button[title="Bold"][aria-label="Bold"]`).waitFor({ state: 'attached' })
  await secretary.getByRole('button', { name: 'Secretary tools' }).click()
  await secretary.getByRole('heading', { name: 'Agenda items' }).waitFor()
  await secretary.getByRole('button', { name: 'Svenska' }).waitFor()
  assert((await secretary.title()).includes('Protokoll'), 'the title names the app')

  // Same socket, same editor, nothing closed; typing goes on reaching the others.
  assert(sockets.length === 1 && closed === 0, `no reconnect on the switch (${sockets.length} sockets, ${closed} closed)`)
  assert((await editor(secretary, mine).getAttribute('data-before')) === 'switch', 'the editor is the one from before the switch')
  assert((await textOf(secretary, mine)).includes(' före bytet'), 'what was typed is still there')
  await caretAtEnd(secretary, mine)
  await secretary.keyboard.type(' efter bytet')
  await waitForText(member, mine, ' efter bytet')

  await secretary.getByRole('button', { name: 'Svenska' }).click()
  await secretary.waitForFunction(() => document.documentElement.lang === 'sv')
  await secretary.getByRole('heading', { name: 'Anslutna nu' }).waitFor()
  await secretary.locator(`[data-section="${mine}"] .badge`, { hasText: 'Du kan skriva här' }).waitFor()
  await secretary.getByRole('button', { name: 'Sekreterarens verktyg' }).waitFor()
  assert(sockets.length === 1 && closed === 0, `no reconnect on the switch back (${sockets.length} sockets, ${closed} closed)`)
  figure('language_switch', { sockets: sockets.length, closed })
}

// ---- runner ------------------------------------------------------------------------------------

const scenarios = {
  'live-typing': liveTyping,
  'read-only-is-quiet': readOnlyIsQuiet,
  'forbidden-edit': forbiddenEdit,
  'secretary-reassigns': secretaryReassigns,
  offline,
  'offline-then-typing-through-the-reconnect': offlineThenTypingThroughTheReconnect,
  'network-blip': networkBlip,
  phone,
  newcomer,
  'keyboard-only': keyboardOnly,
  accessibility,
  'lock-and-verify': lockAndVerify,
  'reopen-before-signoff': reopenBeforeSignoff,
  'link-attributes': linkAttributes,
  'language-switch': languageSwitch,
}

const name = process.argv[2]
const scenario = scenarios[name]
if (!scenario) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
const browser = await launch()
try {
  await scenario(browser)
  console.log(`scenario ${name}: passed`)
} catch (e) {
  console.error(`scenario ${name}: FAILED\n${e.stack ?? e}`)
  process.exitCode = 1
} finally {
  await browser.close()
}
void TIMEOUT
