// A y-websocket client that keeps typing, a character at a time, whatever
// happens to its connection (it reconnects as y-websocket does), as a
// person typing through a database restart.
//
//   node typist.mjs <wsBaseUrl> <meetingId> <rootName>
//
// Syncs, writes an empty paragraph into <rootName>, prints `ready`, then
// types one character every TYPE_EVERY_MS (default 20) into it, and one
// more whenever the server asks for what it lacks. On a line
// on stdin it stops typing, waits until everything it typed has been sent
// on a synced connection, and prints one JSON line:
//   {"text": "...", "closes": [codes the server closed with], "errors": n}
// then waits for another line on stdin (the Rust side has checked the
// server) and exits.
// Exit codes: 0 ok, 1 error, 2 timeout.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default
// 20000, counted from the stop), TYPE_EVERY_MS.

import * as readline from 'node:readline'
import * as syncProtocol from 'y-protocols/sync'
import { messageSync } from 'y-websocket'
import * as Y from 'yjs'
import {
  connect, installCrashHandlers, startTimeout, usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, rootName] = process.argv.slice(2)
if (!wsBaseUrl || !meetingId || !rootName) {
  usage('node typist.mjs <wsBaseUrl> <meetingId> <rootName>')
}
const every = Number(process.env.TYPE_EVERY_MS || 20)

const { doc, provider } = connect(wsBaseUrl, meetingId)
const closes = []
let errors = 0
provider.on('connection-close', (event) => {
  if (event != null) closes.push(event.code)
})
provider.on('connection-error', () => { errors++ })

await waitForSync(provider)
const text = new Y.XmlText()
doc.transact(() => {
  const paragraph = new Y.XmlElement('paragraph')
  paragraph.insert(0, [text])
  doc.getXmlFragment(rootName).push([paragraph])
})
process.stdout.write('ready\n')

const alphabet = 'abcdefghijklmnopqrstuvwxyz'
let typed = 0
const type = () => {
  text.insert(text.length, alphabet[typed % alphabet.length])
  typed++
}
const typing = setInterval(type, every)
// Someone typing on keeps typing whatever the server is doing. One
// keystroke goes out the instant before the server's sync step 1 (asking
// for what it lacks) is handled: the server receives it before the sync
// step 2 that answers, which carries anything the server did not take
// (typed while disconnected, or refused while its database was away).
let stopped = false
const handleSync = provider.messageHandlers[messageSync]
provider.messageHandlers[messageSync] = (encoder, decoder, ...rest) => {
  // The sync message's type is the next byte (a one-byte varint).
  if (!stopped && decoder.arr[decoder.pos] === syncProtocol.messageYjsSyncStep1) type()
  return handleSync(encoder, decoder, ...rest)
}

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()
await lines.next()
clearInterval(typing)
stopped = true
startTimeout(() => `not synced after the stop; closes ${JSON.stringify(closes)}`)

// Everything typed is on its way once the provider is connected and synced
// (a reconnect's sync step 2 carries what the server lacks) and the socket
// has written it all. A refused client (44xx) never syncs again: report.
const refused = () => closes.some((code) => code >= 4400 && code < 4500)
while (!refused() && !(provider.wsconnected && provider.synced && provider.ws?.bufferedAmount === 0)) {
  await new Promise((resolve) => setTimeout(resolve, 20))
}
process.stdout.write(JSON.stringify({ text: text.toString(), closes, errors }) + '\n')
await lines.next()
provider.destroy()
process.exit(0)
