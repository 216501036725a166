// Reference y-websocket client for the interop tests.
//
//   node client.mjs <wsBaseUrl> <meetingId> <marker> <expectedMarker>...
//
// Writes <marker> as a paragraph into the `section:interop` fragment, waits
// until every expected marker is present, then prints one JSON line:
//   {"markers": [...], "stateVector": "<base64>", "xml": "..."}
// Exit codes: 0 ok, 1 error, 2 timeout / server ended the session for good.
// Env: PROTOKOLL_TOKEN (sent as ?token=), INTEROP_TIMEOUT_MS (default 20000).

import * as Y from 'yjs'
import {
  EXIT_TIMEOUT, appendParagraph, connect, finish, installCrashHandlers,
  paragraphTexts, startTimeout, usage, waitForSync
} from './common.mjs'

installCrashHandlers()

const [wsBaseUrl, meetingId, marker, ...expected] = process.argv.slice(2)
if (!wsBaseUrl || !meetingId || !marker || expected.length === 0) {
  usage('node client.mjs <wsBaseUrl> <meetingId> <marker> <expectedMarker>...')
}

const ROOT = 'section:interop'

const { doc, provider } = connect(wsBaseUrl, meetingId)
const fragment = doc.getXmlFragment(ROOT)
let synced = false

const missing = () => expected.filter((m) => !paragraphTexts(fragment).includes(m))

startTimeout(() =>
  `${synced ? 'synced' : 'never synced'}; missing markers ${JSON.stringify(missing())}; ` +
  `have ${JSON.stringify(paragraphTexts(fragment))}`)

// y-websocket 3.x stops reconnecting on 4400-4499 closes; waiting out the
// timeout after that would only slow the test down.
provider.on('closed', ({ code, reason }) => {
  process.stderr.write(`server ended the session (${code} ${reason}); missing ${JSON.stringify(missing())}\n`)
  process.exit(EXIT_TIMEOUT)
})

await waitForSync(provider)
synced = true
provider.awareness.setLocalState({ user: { name: marker } })
appendParagraph(doc, fragment, marker)

await new Promise((resolve) => {
  const check = () => {
    if (missing().length === 0) {
      fragment.unobserveDeep(check)
      resolve()
    }
  }
  fragment.observeDeep(check)
  // Peers may have written before we synced, so the goal may already be met.
  check()
})

const result = {
  markers: paragraphTexts(fragment).sort(),
  stateVector: Buffer.from(Y.encodeStateVector(doc)).toString('base64'),
  xml: fragment.toString()
}
provider.destroy()
finish(result)
