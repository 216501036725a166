// A y-websocket client that only reads a section it may not write, while
// Yjs tidies up that section's formatting marks on its own.
//
//   node tidy.mjs <wsBaseUrl> <meetingId> <readRoot> <ownRoot>
//
// Syncs and prints `{"synced": true}`; then, as redundant formatting marks
// arrive in <readRoot> (left by concurrent edits), waits until its own
// document has deleted some on its own accord (Yjs' clean-up of redundant
// marks after a remote change), writes the paragraph `after-tidy` into
// <ownRoot> and prints `{"tidied": n}`. Then it waits for a line on stdin and prints
// `{"connected": bool}` (whether its socket is still open) and exits.
// Exit codes: 0 ok, 1 error, 2 timeout or the server ended the session.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as readline from 'node:readline'
import * as Y from 'yjs'
import {
  EXIT_TIMEOUT, appendParagraph, connect, installCrashHandlers, startTimeout,
  usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, readRoot, ownRoot] = process.argv.slice(2)
if (!wsBaseUrl || !meetingId || !readRoot || !ownRoot) {
  usage('node tidy.mjs <wsBaseUrl> <meetingId> <readRoot> <ownRoot>')
}
startTimeout(() => 'no answer from the test')

const { doc, provider } = connect(wsBaseUrl, meetingId)
let closed = false
provider.on('connection-close', (event) => {
  if (event != null && event.code >= 4400 && event.code < 4500) {
    process.stderr.write(`server ended the session: ${event.code} ${event.reason}\n`)
    closed = true
    process.exit(EXIT_TIMEOUT)
  }
})

// Deletions this document made itself (not received from the server).
let tidied = 0
let onTidy = () => {}
doc.on('update', (update, origin) => {
  if (origin === provider) return
  const decoded = Y.decodeUpdate(update)
  for (const ranges of decoded.ds.clients.values()) tidied += ranges.length
  if (tidied > 0) onTidy()
})

doc.getXmlFragment(readRoot)
await waitForSync(provider)
process.stdout.write(JSON.stringify({ synced: true }) + '\n')
// Yjs tidies only types that existed before the remote change: the test
// makes the redundant marks after this client has the text.
await new Promise((resolve) => {
  onTidy = resolve
  if (tidied > 0) resolve()
})
appendParagraph(doc, doc.getXmlFragment(ownRoot), 'after-tidy')
process.stdout.write(JSON.stringify({ tidied }) + '\n')

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
await lines.next()
process.stdout.write(JSON.stringify({ connected: provider.wsconnected && !closed }) + '\n', () => {
  provider.destroy()
  process.exit(0)
})
