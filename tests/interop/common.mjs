// Shared plumbing for the interop scripts: they are spawned by the Rust
// integration tests, so they must report through stdout (one JSON line),
// stderr (diagnostics) and the exit code, and must never hang.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

export const EXIT_OK = 0
export const EXIT_ERROR = 1
export const EXIT_TIMEOUT = 2

// Turn anything unexpected into exit 1 instead of Node's default crash
// output, so the Rust side can tell "broken" apart from "timed out".
export function installCrashHandlers () {
  const crash = (err) => {
    process.stderr.write(`error: ${err?.stack ?? err}\n`)
    process.exit(EXIT_ERROR)
  }
  process.on('uncaughtException', crash)
  process.on('unhandledRejection', crash)
}

export function usage (text) {
  process.stderr.write(`usage: ${text}\n`)
  process.exit(EXIT_ERROR)
}

// Prints the single result line and exits only after stdout has flushed, so
// the parent never sees a truncated line.
export function finish (result, code = EXIT_OK) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
}

// Arms the hard deadline; `describe` is called on expiry to say what is missing.
export function startTimeout (describe) {
  const raw = process.env.INTEROP_TIMEOUT_MS
  const ms = raw === undefined || raw === '' ? 20000 : Number(raw)
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new Error(`INTEROP_TIMEOUT_MS must be a positive number, got ${JSON.stringify(raw)}`)
  }
  return setTimeout(() => {
    process.stderr.write(`timeout after ${ms} ms: ${describe()}\n`)
    process.exit(EXIT_TIMEOUT)
  }, ms)
}

// Connects exactly like a browser client of the product would, with Node's
// `ws` standing in for the browser WebSocket. The room name is appended to the
// base URL by the provider, giving `${wsBaseUrl}/${meetingId}`.
export function connect (wsBaseUrl, room) {
  const doc = new Y.Doc()
  const token = process.env.PROTOKOLL_TOKEN
  const provider = new WebsocketProvider(wsBaseUrl, room, doc, {
    WebSocketPolyfill: WebSocket,
    // Each script is its own process; BroadcastChannel would only add noise.
    disableBc: true,
    params: token ? { token } : {}
  })

  provider.on('connection-error', (event) => {
    process.stderr.write(`connection-error ${event?.message ?? event?.error ?? ''}\n`)
  })
  provider.on('connection-close', (event) => {
    // `event` is null when the provider closed the socket itself.
    if (event == null) {
      process.stderr.write('connection-close (local)\n')
    } else {
      process.stderr.write(`close ${event.code} ${event.reason ?? ''}\n`)
    }
  })
  return { doc, provider }
}

// Resolves on the first successful sync; later re-syncs after reconnects are
// irrelevant because the scripts only write once.
export function waitForSync (provider) {
  return new Promise((resolve) => {
    const onSync = (synced) => {
      if (synced) {
        provider.off('sync', onSync)
        resolve()
      }
    }
    provider.on('sync', onSync)
  })
}

// Appends <paragraph>text</paragraph> in a single transaction, so a peer sees
// the element and its text atomically (one update, one state-vector step).
export function appendParagraph (doc, fragment, text) {
  doc.transact(() => {
    const paragraph = new Y.XmlElement('paragraph')
    paragraph.insert(0, [new Y.XmlText(text)])
    fragment.push([paragraph])
  })
}

// Plain text of every top-level paragraph, ignoring formatting attributes.
export function paragraphTexts (fragment) {
  return fragment.toArray()
    .filter((node) => node instanceof Y.XmlElement && node.nodeName === 'paragraph')
    .map((paragraph) => paragraph.toArray()
      .filter((child) => child instanceof Y.XmlText)
      .map((text) => text.toDelta()
        .map((op) => (typeof op.insert === 'string' ? op.insert : ''))
        .join(''))
      .join(''))
}
