// One meeting's live document: the Y.Doc, the y-websocket provider and what
// the page needs to know about the connection (state, unsynced edits, the
// server's refusals).

import * as encoding from 'lib0/encoding'
import { writeSyncStep1 } from 'y-protocols/sync'
import { WebsocketProvider, messageSync } from 'y-websocket'
import * as Y from 'yjs'
import { CLOSE } from './close'

export type ConnectionState = 'connecting' | 'connected' | 'offline'

/**
 * How long a check of the socket waits for the server's answer. The server
 * answers a sync step 1 at once; on a two-core machine under load that
 * took well under a second in the browser tests.
 */
const CHECK_TIMEOUT_MS = 4000

export interface SyncEvents {
  state(state: ConnectionState): void
  /** The first complete sync with the server. */
  ready(): void
  /** A close after which y-websocket does not reconnect (4400-4499). */
  terminal(code: number, reason: string): void
  /** The server asked us to reconnect because something about us changed. */
  restarted(): void
  /** Whether local edits are waiting to reach the server. */
  pending(unsynced: boolean): void
  /** Every completed sync, the first and after each reconnect. */
  synced?(): void
}

export class MeetingSync {
  readonly doc = new Y.Doc()
  /**
   * A copy of `doc` that only ever receives: read-only sections are bound
   * to it, so whatever an editor binding does to its fragment (y-prosemirror
   * normalises a fragment to the schema when it binds) stays on this page
   * and can never reach the server as an edit of a foreign section or of a
   * locked protocol.
   */
  readonly mirror = new Y.Doc()
  readonly provider: WebsocketProvider
  state: ConnectionState = 'connecting'
  /** Local edits made while not connected, not yet sent to the server. */
  unsynced = false
  private wasReady = false
  private destroyed = false
  /** A check of the socket waiting for the server's answer. */
  private check: { ws: WebSocket; timer: number; answered: (event: MessageEvent) => void } | null = null

  constructor(
    readonly meetingId: string,
    private readonly events: SyncEvents,
  ) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    this.provider = new WebsocketProvider(`${scheme}://${location.host}/sync`, meetingId, this.doc, {
      // Tabs must not hand each other edits behind the server's back: a
      // refused edit would travel to a tab the server never refused.
      disableBc: true,
      maxBackoffTime: 2500,
    })
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.setState(this.provider.synced ? 'connected' : this.state === 'offline' ? 'offline' : 'connecting')
      } else if (status === 'disconnected') {
        this.setState('offline')
      } else if (this.state !== 'offline') {
        this.setState('connecting')
      }
    })
    this.provider.on('sync', (synced: boolean) => {
      if (!synced) return
      this.setState('connected')
      this.setUnsynced(false)
      this.events.synced?.()
      if (!this.wasReady) {
        this.wasReady = true
        this.events.ready()
      } else {
        this.reannounce()
      }
    })
    this.provider.on('connection-close', (event: CloseEvent | null) => {
      if (this.destroyed) return
      if (event?.code === CLOSE.SERVICE_RESTART) this.events.restarted()
      if (!this.provider.synced) this.setState('offline')
    })
    this.provider.on('closed', ({ code, reason }: { code: number; reason: string }) => {
      if (!this.destroyed) this.events.terminal(code, reason)
    })
    this.doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin === this.provider) return
      // Not known to be connected: the edit is sent if the socket still
      // works, but counts as unsent until the server has answered since.
      if (this.state !== 'connected' || !(this.provider.wsconnected && this.provider.synced)) this.setUnsynced(true)
    })
    this.doc.on('update', this.toMirror)
    window.addEventListener('offline', this.onBrowserOffline)
    window.addEventListener('online', this.onBrowserOnline)
  }

  private readonly toMirror = (update: Uint8Array): void => {
    Y.applyUpdate(this.mirror, update, this)
  }

  /** Edits typed but possibly not yet with the server. */
  hasUnsentEdits(): boolean {
    const ws = this.provider.ws
    return this.unsynced || (ws !== null && ws.bufferedAmount > 0)
  }

  /** After a 4429 or similar: try once more on request. */
  reconnect(): void {
    this.provider.connect()
  }

  destroy(): void {
    if (this.destroyed) return
    this.destroyed = true
    this.endCheck()
    window.removeEventListener('offline', this.onBrowserOffline)
    window.removeEventListener('online', this.onBrowserOnline)
    this.provider.destroy()
    this.doc.off('update', this.toMirror)
    this.doc.destroy()
    this.mirror.destroy()
  }

  /**
   * After a reconnect: the server marked our presence as gone with a clock
   * one above ours, and ignores a state that is not newer (y-protocols'
   * rule). Two local changes make ours newer, so we reappear at once
   * instead of at the next 15 s renewal.
   */
  private reannounce(): void {
    const awareness = this.provider.awareness
    const state = awareness.getLocalState()
    if (state === null) return
    awareness.setLocalState({ ...state })
    awareness.setLocalState({ ...state })
  }

  /**
   * The browser's `offline` and `online` events say that the network
   * changed, not what became of the socket: a short blip leaves it open
   * (no status change from y-websocket ever follows), a longer one may
   * leave it dead without a close. So the page goes offline when the
   * browser does, and each event asks the server over the socket as it
   * is; its answer, or its silence, decides what the page shows.
   */
  private readonly onBrowserOffline = (): void => {
    this.setState('offline')
    this.checkSocket()
  }

  private readonly onBrowserOnline = (): void => {
    this.checkSocket()
  }

  /**
   * Sends a sync step 1, which the server always answers with a sync
   * step 2 after everything sent before it: the answer means the socket
   * works both ways and every edit sent so far has arrived. Without an
   * answer in time the page is offline, and with a network the socket is
   * given up, so that y-websocket connects afresh at once instead of after
   * its 30 s silence timeout; the new connection's sync sends what is
   * missing.
   */
  private checkSocket(): void {
    this.endCheck()
    const ws = this.provider.ws
    // Not open: y-websocket is connecting, and its events say how it went.
    if (!ws || !this.provider.wsconnected || ws.readyState !== WebSocket.OPEN) return
    const answered = (event: MessageEvent): void => {
      const data = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : null
      // messageSync, then y-protocols' messageYjsSyncStep2 (1).
      if (!data || data[0] !== messageSync || data[1] !== 1) return
      this.endCheck()
      if (this.provider.ws !== ws || !this.provider.synced) return
      this.setState('connected')
      this.setUnsynced(false)
    }
    const timer = window.setTimeout(() => {
      this.endCheck()
      if (this.provider.ws !== ws || this.destroyed) return
      this.setState('offline')
      // Without a network, the browser's `online` event checks again.
      if (!navigator.onLine) return
      this.provider.disconnect()
      this.provider.connect()
    }, CHECK_TIMEOUT_MS)
    ws.addEventListener('message', answered)
    this.check = { ws, timer, answered }
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, messageSync)
    writeSyncStep1(encoder, this.doc)
    ws.send(encoding.toUint8Array(encoder))
  }

  private endCheck(): void {
    if (!this.check) return
    window.clearTimeout(this.check.timer)
    this.check.ws.removeEventListener('message', this.check.answered)
    this.check = null
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return
    this.state = state
    this.events.state(state)
  }

  private setUnsynced(value: boolean): void {
    if (this.unsynced === value) return
    this.unsynced = value
    this.events.pending(value)
  }
}
