// The WebSocket close codes the server uses, one name and number for each,
// exactly as server/src/sync/peer.rs (`close_code`) has them; the
// integration test `web_app::the_web_apps_close_codes_are_the_servers`
// fails when the two differ. Every other file takes its codes from here.

export const CLOSE = {
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  /** Reconnect: something about this connection changed (a new role, say). */
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  // Application codes (4000-4999): y-websocket does not reconnect after these.
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  /** Over a size limit: the meeting's document or a presence state. */
  TOO_LARGE: 4413,
  /** Too many connections, or presence client ids on one connection. */
  TOO_MANY: 4429,
  /** The protocol is locked: the update was not accepted. */
  PROTOCOL_LOCKED: 4423,
} as const
