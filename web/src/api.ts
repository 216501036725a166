// One typed client for the JSON API (see /api/openapi.json). The session
// lives in an HttpOnly cookie; nothing secret is kept in script-reachable
// storage.

export type Role = 'secretary' | 'chair' | 'justerare' | 'member'
export type MeetingState = 'draft' | 'locked' | 'verified'

export interface Agency {
  id: string
  name: string
}

export interface Me {
  id: string
  username: string
  display_name: string
  agency: Agency | null
  is_admin: boolean
  /** Present once the server decides who may create meetings. */
  can_create_meetings?: boolean
  /** Whether an administrator vouches for the account: only then may it sign off. */
  confirmed?: boolean
}

export interface Person {
  id: string
  display_name: string
  agency: Agency | null
}

export interface Meeting {
  id: string
  title: string
  created_at: string
  body: string
  date: string | null
  time: string | null
  place: string
  /** Absent on servers without the finalise step: a draft. */
  state?: MeetingState
  your_role?: Role | null
}

export type Owner =
  | { kind: 'agency'; agency_id: string }
  | { kind: 'user'; user_id: string }
  | { kind: 'secretary' }

export interface Section {
  id: string
  number: string
  title: string
  owner: Owner
}

export interface Participant {
  user: Person & { username?: string; is_admin?: boolean; confirmed?: boolean; can_create_meetings?: boolean }
  role: Role
}

export interface MeetingView extends Meeting {
  your_role: Role | null
  /** The document's encoded size as stored, in bytes. */
  document_bytes: number
  /** The most the document may hold (`--max-document-bytes`). */
  document_limit_bytes: number
  agenda: Section[]
  participants: Participant[]
}

export interface InvitationView {
  meeting_title: string
  meeting_id?: string
  username: string
  display_name: string
  role: Role
  expires_at: string
}

export interface IssuedInvitation {
  /** Identifies the invitation to list or revoke it. */
  id: string
  url: string
  secret: string
  expires_at: string
}

export interface PendingInvitation {
  id: string
  username: string
  display_name: string
  agency?: Agency | null
  role: Role
  created_by: { id: string; display_name: string }
  created_at: string
  expires_at: string
}

export interface MeetingInput {
  title: string
  body?: string
  date?: string | null
  time?: string | null
  place?: string
  from?: string
}

export interface RequiredSignoff {
  user_id: string
  name: string
  /** `chair` or `justerare`. */
  role: string
  signed_at: string | null
  /** Whether their account may sign off now (absent on /verify). */
  account_confirmed?: boolean
}

export interface LockedProtocol {
  /** SHA-256 (hex) of the canonical protocol: the protocol's hash. */
  hash: string
  version: number
  locked_at: string
  locked_by: string
  required: RequiredSignoff[]
  signature: { key_id: string; algorithm: string; record: string; signature: string; verified_at: string } | null
  exports: { html: string; markdown: string; pdf: string; json: string }
}

export interface ProtocolStatus {
  meeting_id: string
  state: MeetingState
  locked: LockedProtocol | null
}

export interface AuditEntry {
  id: number
  at: string
  actor_id: string | null
  actor_name: string
  /** `lock`, `reopen`, `signoff`, `reject` or `verify`. */
  action: string
  reason: string | null
  hash: string | null
  via: string
}

/** Why a protocol cannot become its archival PDF (`not_archivable`). */
export interface ArchiveProblem {
  /** The section at fault; null for the protocol as a whole. */
  item: { id: string; number: string; title: string } | null
  kind: 'link_too_long' | 'text_too_large' | 'too_many_nodes' | 'nested_too_deep' | 'typeset'
  limit?: number
  bytes?: number
  nodes?: number
  depth?: number
  message?: string
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problem: ArchiveProblem | null = null,
  ) {
    super(message)
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new ApiError(0, 'network', 'network error')
  }
  if (!response.ok) {
    let code = 'error'
    let message = response.statusText
    let problem: ArchiveProblem | null = null
    try {
      const json = (await response.json()) as { error?: { code?: string; message?: string; problem?: ArchiveProblem } }
      code = json.error?.code ?? code
      message = json.error?.message ?? message
      problem = json.error?.problem ?? null
    } catch {
      // Not JSON (a proxy's page, say): keep the status.
    }
    throw new ApiError(response.status, code, message, problem)
  }
  if (response.status === 204) return undefined as T
  return (await response.json()) as T
}

const meeting = (id: string) => `/api/meetings/${encodeURIComponent(id)}`

export const api = {
  login: (username: string, password: string) => request<Me>('POST', '/api/login', { username, password }),
  logout: () => request<void>('POST', '/api/logout'),
  me: () => request<Me>('GET', '/api/me'),
  meetings: () => request<Meeting[]>('GET', '/api/meetings'),
  createMeeting: (input: MeetingInput) => request<Meeting>('POST', '/api/meetings', input),
  meeting: (id: string) => request<MeetingView>('GET', meeting(id)),
  updateMeeting: (id: string, input: MeetingInput) => request<Meeting>('PUT', meeting(id), input),
  addSection: (id: string, input: { number?: string; title: string; owner: Owner }) =>
    request<Section>('POST', `${meeting(id)}/agenda`, input),
  changeSection: (id: string, section: string, input: { number?: string; title?: string; owner?: Owner }) =>
    request<Section>('PATCH', `${meeting(id)}/agenda/${encodeURIComponent(section)}`, input),
  removeSection: (id: string, section: string) =>
    request<void>('DELETE', `${meeting(id)}/agenda/${encodeURIComponent(section)}`),
  reorder: (id: string, sections: string[]) => request<Section[]>('PUT', `${meeting(id)}/agenda/order`, { sections }),
  setParticipant: (id: string, user: string, role: Role) =>
    request<void>('PUT', `${meeting(id)}/participants/${encodeURIComponent(user)}`, { role }),
  removeParticipant: (id: string, user: string) =>
    request<void>('DELETE', `${meeting(id)}/participants/${encodeURIComponent(user)}`),
  invite: (id: string, input: { username: string; display_name: string; agency_id?: string | null; role: Role }) =>
    request<IssuedInvitation>('POST', `${meeting(id)}/invitations`, input),
  invitations: (id: string) => request<PendingInvitation[]>('GET', `${meeting(id)}/invitations`),
  revokeInvitation: (id: string, invitation: string) =>
    request<void>('DELETE', `${meeting(id)}/invitations/${encodeURIComponent(invitation)}`),
  invitation: (secret: string) => request<InvitationView>('GET', `/api/invitations/${encodeURIComponent(secret)}`),
  acceptInvitation: (secret: string, password: string) =>
    request<Me>('POST', `/api/invitations/${encodeURIComponent(secret)}/accept`, { password }),
  people: () => request<Person[]>('GET', '/api/people'),
  protocol: (id: string) => request<ProtocolStatus>('GET', `${meeting(id)}/protocol`),
  lock: (id: string) => request<ProtocolStatus>('POST', `${meeting(id)}/protocol/lock`),
  reopen: (id: string) => request<ProtocolStatus>('POST', `${meeting(id)}/protocol/reopen`),
  signoff: (id: string, hash: string) => request<ProtocolStatus>('POST', `${meeting(id)}/signoffs`, { hash }),
  reject: (id: string, hash: string, reason: string) =>
    request<ProtocolStatus>('POST', `${meeting(id)}/protocol/reject`, { hash, reason }),
  audit: (id: string) => request<AuditEntry[]>('GET', `${meeting(id)}/audit`),
  agencies: () => request<Agency[]>('GET', '/api/agencies'),
}

/** The owner as the document's agenda writes it: `agency:{id}`, `user:{id}`, `secretary`. */
export function ownerLabel(owner: Owner): string {
  switch (owner.kind) {
    case 'agency':
      return `agency:${owner.agency_id}`
    case 'user':
      return `user:${owner.user_id}`
    default:
      return 'secretary'
  }
}

export function parseOwnerLabel(label: string): Owner | null {
  if (label === 'secretary') return { kind: 'secretary' }
  const [kind, id] = label.split(':', 2)
  if (!id) return null
  if (kind === 'agency') return { kind: 'agency', agency_id: id }
  if (kind === 'user') return { kind: 'user', user_id: id }
  return null
}

/**
 * Whether `me`, with `role` in the meeting, may write a section owned by
 * `owner`: the server's rule (`Ownership::may_write`), mirrored so the page
 * offers an editor exactly where the server will accept the edits.
 */
export function mayWrite(me: Me, role: Role | null | undefined, owner: Owner | null): boolean {
  if (!owner || !role || role === 'justerare') return false
  switch (owner.kind) {
    case 'agency':
      return me.agency?.id === owner.agency_id
    case 'user':
      return me.id === owner.user_id
    case 'secretary':
      return role === 'secretary'
  }
}
