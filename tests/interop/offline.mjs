// A y-websocket client that types offline, then types again the moment its
// socket opens, before the server's sync step 1 has been answered: that
// keystroke reaches the server ahead of the offline ones, which travel in
// the sync step 2.
//
//   node offline.mjs <wsBaseUrl> <meetingId> <rounds>
//
// Syncs, writes an empty paragraph into `section:interop`, then for each
// round: disconnects, types five characters, reconnects and types a sixth
// in the provider's `status: connected` handler (y-websocket has just
// opened the socket and marked itself connected), waits for the resync and
// prints `round <i> <text so far>`. Then waits for a line on stdin (the
// Rust side's viewer has seen the text) and prints one JSON line:
//   {"text": "...", "closes": [codes the server closed with]}
// at once if the server refuses the client (a 44xx close, after which
// y-websocket does not reconnect), with "refused": the reason.
// Exit codes: 0 ok, 1 error, 2 timeout.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as readline from 'node:readline'
import * as Y from 'yjs'
import {
  connect, finish, installCrashHandlers, startTimeout, usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, roundsArg] = process.argv.slice(2)
const rounds = Number(roundsArg)
if (!wsBaseUrl || !meetingId || !Number.isInteger(rounds) || rounds < 1) {
  usage('node offline.mjs <wsBaseUrl> <meetingId> <rounds>')
}

let round = 0
startTimeout(() => `stuck in round ${round}`)

const { doc, provider } = connect(wsBaseUrl, meetingId)
const closes = []
let text = null
provider.on('connection-close', (event) => {
  if (event == null) return
  closes.push(event.code)
  // 4400-4499: y-websocket gives up; report what the server did.
  if (event.code >= 4400 && event.code < 4500) {
    finish({ text: text?.toString() ?? '', closes, refused: event.reason ?? '' })
  }
})

const fragment = doc.getXmlFragment('section:interop')
await waitForSync(provider)
text = new Y.XmlText()
doc.transact(() => {
  const paragraph = new Y.XmlElement('paragraph')
  paragraph.insert(0, [text])
  fragment.push([paragraph])
})
const type = (c) => text.insert(text.length, c)

for (round = 0; round < rounds; round++) {
  provider.disconnect()
  for (const c of 'abcde') type(c)
  const opened = new Promise((resolve) => {
    const onStatus = ({ status }) => {
      if (status !== 'connected') return
      provider.off('status', onStatus)
      // The socket is open and y-websocket sends updates from now on; the
      // server's sync step 1 has not even been read yet.
      type(String(round))
      resolve()
    }
    provider.on('status', onStatus)
  })
  const resynced = new Promise((resolve) => {
    const onSync = (synced) => {
      if (!synced) return
      provider.off('sync', onSync)
      resolve()
    }
    provider.on('sync', onSync)
  })
  provider.connect()
  await opened
  await resynced
  process.stdout.write(`round ${round} ${text.toString()}\n`)
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const { done } = await lines.next()
if (done) throw new Error('stdin closed before the text was confirmed')
finish({ text: text.toString(), closes })
provider.destroy()
