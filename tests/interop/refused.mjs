// Probe for a server that refuses writes.
//
//   node refused.mjs <wsBaseUrl> <meetingId> <rootName>
//
// Syncs, writes a "forbidden" paragraph into the <rootName> fragment, then
// waits for the server to close the connection, noting any y-protocols auth
// "permission denied" message received before that. Prints one JSON line:
//   {"denied": bool, "reason": "...", "closeCode": n, "closeReason": "...", "synced": bool}
// Exit codes: 0 once the server closed an open connection, 1 error, 2 timeout.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as authProtocol from 'y-protocols/auth'
import { messageAuth } from 'y-websocket'
import {
  appendParagraph, connect, finish, installCrashHandlers, startTimeout, usage,
  waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, rootName] = process.argv.slice(2)
if (!wsBaseUrl || !meetingId || !rootName) {
  usage('node refused.mjs <wsBaseUrl> <meetingId> <rootName>')
}

const state = { denied: false, reason: '', closeCode: null, closeReason: '', synced: false }

const { doc, provider } = connect(wsBaseUrl, meetingId)

startTimeout(() => `no server close observed; state ${JSON.stringify(state)}`)

// y-websocket only console.warns on an auth message; replace its handler so
// the denial becomes observable. Decoding mirrors the original handler.
provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
  authProtocol.readAuthMessage(decoder, doc, (_ydoc, reason) => {
    state.denied = true
    state.reason = reason
    process.stderr.write(`permission denied: ${reason}\n`)
  })
}

provider.on('connection-close', (event) => {
  // Ignore our own closes (event null) and sockets that never opened, e.g. a
  // server not listening yet: the provider retries those until the timeout.
  if (event == null || !provider.wsconnected) return
  state.closeCode = event.code
  state.closeReason = event.reason ?? ''
  // Deferred because the provider is still inside its close routine; destroy
  // stops the reconnect it is about to schedule.
  setImmediate(() => {
    provider.destroy()
    finish(state)
  })
})

await waitForSync(provider)
state.synced = true
appendParagraph(doc, doc.getXmlFragment(rootName), 'forbidden')
