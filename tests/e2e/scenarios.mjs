// The end-to-end scenarios of issue 11, one per invocation:
//   node scenarios.mjs NAME
// with BASE_URL (the server), MEETING_ID (the demo meeting) and, for the
// screenshots, SCREENSHOT_DIR. Figures are printed as `figure: {...}` lines.
// Exits non-zero when a scenario fails.

import net from 'node:net'
import { mkdir } from 'node:fs/promises'
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
  textOf,
  until,
  waitForText,
  writableSections,
} from './lib.mjs'

const figure = (name, value) => console.log(`figure: ${JSON.stringify({ [name]: value })}`)

// ---- 1. two agencies type at once; a member watches ---------------------------

async function liveTyping(browser) {
  const member = await newPage(browser)
  await signIn(member, 'ledamot')
  await openMeeting(member)
  const polis = await newPage(browser)
  await signIn(polis, 'polis')
  await openMeeting(polis)
  const skola = await newPage(browser)
  await signIn(skola, 'skola')
  await openMeeting(skola)

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
  const polis = await newPage(browser)
  await signIn(polis, 'polis')
  await openMeeting(polis)
  const skola = await newPage(browser)
  await signIn(skola, 'skola')
  await openMeeting(skola)
  const before = await metrics(polis.request)

  // Through the interface: the school's section is not editable for the police.
  const schoolText = await textOf(polis, 'skola')
  assert((await editor(polis, 'skola').getAttribute('contenteditable')) === 'false', 'the school section is read-only for the police')
  await editor(polis, 'skola').click()
  await polis.keyboard.type('polisen skriver här')
  assert((await textOf(polis, 'skola')) === schoolText, 'typing does not reach another agency section')

  // Forced: a ProseMirror transaction on the read-only editor goes to the
  // page's Y.Doc and out to the server.
  await polis.evaluate(() => {
    const el = document.querySelector('[data-section="skola"] .ProseMirror')
    el.editor.commands.insertContentAt(el.editor.state.doc.content.size, '<p>FORCERAD TEXT</p>')
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
  const secretary = await newPage(browser, { viewport: { width: 1400, height: 1000 } })
  await signIn(secretary, 'sekreterare')
  await openMeeting(secretary)
  const polis = await newPage(browser)
  await signIn(polis, 'polis')
  await openMeeting(polis)
  const skola = await newPage(browser)
  await signIn(skola, 'skola')
  await openMeeting(skola)
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
 * only by its pings).
 */
async function proxy(target) {
  const pairs = new Set()
  let up = true
  const server = net.createServer((client) => {
    if (!up) return client.destroy()
    const upstream = net.connect(target.port, target.hostname)
    const pair = { client, upstream, cut: false }
    pairs.add(pair)
    for (const s of [client, upstream]) s.on('error', () => {})
    client.pipe(upstream)
    upstream.on('data', (chunk) => {
      if (!pair.cut) client.write(chunk)
    })
    client.on('close', () => {
      if (!pair.cut) upstream.destroy()
    })
    upstream.on('close', () => {
      client.destroy()
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
    restore() {
      up = true
    },
    close() {
      for (const pair of pairs) pair.upstream.destroy()
      server.close()
    },
  }
}

async function offline(browser) {
  const link = await proxy(new URL(BASE))
  try {
    const polis = await newPage(browser, { base: link.url })
    await signIn(polis, 'polis')
    await openMeeting(polis)
    const member = await newPage(browser)
    await signIn(member, 'ledamot')
    await openMeeting(member)

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

async function axe(page, name) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze()
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

  const skola = await newPage(browser)
  await signIn(skola, 'skola')
  await openMeeting(skola)
  await openMeeting(polis)
  // Someone else is writing, so the page shows a caret and presence.
  await caretAtEnd(skola, 'skola')
  await polis.locator('[data-section="skola"] .caret').waitFor()
  await caretAtEnd(polis, 'polis')
  await axe(polis, 'protocol page (agency user)')

  const dir = process.env.SCREENSHOT_DIR
  if (dir) {
    await mkdir(dir, { recursive: true })
    // Writing: the police in their section (formatting bar showing), the
    // school's caret with its name in the next section.
    await skola.keyboard.type(' Skolan skriver')
    await polis.locator('[data-section="skola"] .caret-label').waitFor()
    await polis.evaluate(() => {
      const el = document.querySelector('[data-section="information"]')
      window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY + 160)
    })
    await polis.screenshot({ path: `${dir}/protocol-writing.png` })
    await polis.locator('[data-section="polis"] .ProseMirror').evaluate((el) => el.blur())
    await polis.evaluate(() => window.scrollTo(0, 0))
    await polis.screenshot({ path: `${dir}/protocol-desktop.png` })
    await polis.setViewportSize({ width: 768, height: 1024 })
    await polis.evaluate(() => window.scrollTo(0, 0))
    await polis.screenshot({ path: `${dir}/protocol-tablet.png` })
    const overflow = await polis.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert(overflow <= 0, `no horizontal scrolling at 768 px (${overflow} px too wide)`)
    await polis.setViewportSize({ width: 1440, height: 1000 })
  }

  const secretary = await newPage(browser, { viewport: { width: 1440, height: 1000 } })
  await signIn(secretary, 'sekreterare')
  await openMeeting(secretary)
  await openConsole(secretary)
  await secretary.getByRole('button', { name: 'Ändra § 2.1 Polis' }).click()
  await axe(secretary, 'protocol page (secretary, tools open)')
  if (dir) await secretary.screenshot({ path: `${dir}/protocol-secretary.png`, fullPage: false })

  const issued = await secretary.request.post(`/api/meetings/${MEETING}/invitations`, {
    data: { username: 'axe-inbjuden', display_name: 'Inbjuden Person', role: 'member' },
  })
  assert(issued.ok(), `invitation created (${issued.status()})`)
  const invite = await newPage(browser)
  await invite.goto((await issued.json()).url)
  await invite.getByLabel('Välj lösenord').waitFor()
  await axe(invite, 'invitation')
}

// ---- runner ------------------------------------------------------------------------------------

const scenarios = {
  'live-typing': liveTyping,
  'read-only-is-quiet': readOnlyIsQuiet,
  'forbidden-edit': forbiddenEdit,
  'secretary-reassigns': secretaryReassigns,
  offline,
  newcomer,
  'keyboard-only': keyboardOnly,
  accessibility,
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
