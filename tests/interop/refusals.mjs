// A y-websocket client refused over and over while it keeps typing: each
// round a fresh document syncs and then types into <rootName> as fast as
// an editor that spends 3 ms on a keystroke can, until the server closes
// the connection. The server refuses
// the first keystroke; everything typed after it is still on its way when
// the close comes, so the socket has unread data on the server's side when
// the server is done with it.
//
//   node refusals.mjs <wsBaseUrl> <meetingId> <rootName> <rounds>
//
// Prints one JSON line: {"codes": [the close code of each round]}.
// Exit codes: 0 ok, 1 error, 2 timeout.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as Y from 'yjs'
import {
  connect, finish, installCrashHandlers, startTimeout, usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, rootName, roundsArg] = process.argv.slice(2)
const rounds = Number(roundsArg)
if (!wsBaseUrl || !meetingId || !rootName || !Number.isInteger(rounds) || rounds < 1) {
  usage('node refusals.mjs <wsBaseUrl> <meetingId> <rootName> <rounds>')
}

const codes = []
startTimeout(() => `stuck after ${codes.length} rounds: ${JSON.stringify(codes)}`)

for (let round = 0; round < rounds; round++) {
  const { doc, provider } = connect(wsBaseUrl, meetingId)
  await waitForSync(provider)
  const code = await new Promise((resolve) => {
    provider.on('connection-close', (event) => {
      if (event != null) resolve(event.code)
    })
    const text = new Y.XmlText()
    doc.transact(() => {
      const paragraph = new Y.XmlElement('paragraph')
      paragraph.insert(0, [text])
      doc.getXmlFragment(rootName).push([paragraph])
    })
    const typing = setInterval(() => {
      if (!provider.wsconnected) return clearInterval(typing)
      // An editor's work for a keystroke (a browser's takes milliseconds):
      // the close may arrive meanwhile, before the keystroke goes out.
      const until = performance.now() + 3
      while (performance.now() < until);
      // Keys pressed meanwhile: one update each.
      for (let i = 0; i < 5; i++) text.insert(text.length, 'x')
    }, 1)
  })
  codes.push(code)
  provider.destroy()
  doc.destroy()
}
finish({ codes })
