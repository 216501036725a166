// A y-websocket client whose socket keeps dropping, as on a flaky network.
//
//   node reconnect.mjs <wsBaseUrl> <meetingId> <rounds>
//
// Syncs and announces presence, then for each round: writes the paragraph
// `round-<i>` into the `section:interop` fragment, prints
// `wrote <i> <clientId>` and waits for a line on stdin (the Rust side says
// when its viewer has seen the paragraph); then drops the socket (a clean
// close on even rounds, a TCP reset on odd ones), lets y-websocket reconnect
// with the same document and client id, and waits for the resync. Prints
// `done` after the last round.
// Exit codes: 0 ok, 1 error, 2 timeout or the server ended the session.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as readline from 'node:readline'
import {
  EXIT_TIMEOUT, appendParagraph, connect, installCrashHandlers, startTimeout,
  usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, roundsArg] = process.argv.slice(2)
const rounds = Number(roundsArg)
if (!wsBaseUrl || !meetingId || !Number.isInteger(rounds) || rounds < 1) {
  usage('node reconnect.mjs <wsBaseUrl> <meetingId> <rounds>')
}

let round = 0
startTimeout(() => `stuck in round ${round}`)

const { doc, provider } = connect(wsBaseUrl, meetingId)
const fragment = doc.getXmlFragment('section:interop')

provider.on('connection-close', (event) => {
  // 4400-4499: y-websocket gives up; so does this script.
  if (event != null && event.code >= 4400 && event.code < 4500) {
    process.stderr.write(`server ended the session: ${event.code} ${event.reason}\n`)
    process.exit(EXIT_TIMEOUT)
  }
})

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()

// Resolves once the provider has reconnected and finished a fresh sync.
function resynced () {
  return new Promise((resolve) => {
    const onStatus = ({ status }) => {
      if (status !== 'connected') return
      provider.off('status', onStatus)
      // `synced` turns false on disconnect and true after the new sync.
      if (provider.synced) resolve()
      else waitForSync(provider).then(resolve)
    }
    provider.on('status', onStatus)
  })
}

await waitForSync(provider)
provider.awareness.setLocalStateField('user', { color: '#1f6f8b' })

for (round = 0; round < rounds; round++) {
  appendParagraph(doc, fragment, `round-${round}`)
  process.stdout.write(`wrote ${round} ${doc.clientID}\n`)
  const { done } = await lines.next()
  if (done) throw new Error('stdin closed before the round was confirmed')
  if (round === rounds - 1) break
  const back = resynced()
  if (round % 2 === 0) {
    provider.ws.close()
  } else {
    provider.ws.terminate()
  }
  await back
}

process.stdout.write('done\n', () => {
  provider.destroy()
  process.exit(0)
})
