// The agenda as the meeting document holds it (root `agenda`, written by the
// server only; see docs/document-schema.md).

import * as Y from 'yjs'

export interface AgendaItem {
  id: string
  number: string
  title: string
  /** `agency:{id}`, `user:{id}` or `secretary`. */
  owner: string
  ownerName: string
}

const SECTION_ID = /^[a-z0-9-]{1,64}$/

export function readAgenda(doc: Y.Doc): AgendaItem[] {
  const out: AgendaItem[] = []
  for (const entry of doc.getArray<unknown>('agenda').toArray()) {
    if (!(entry instanceof Y.Map)) continue
    const text = (key: string) => {
      const v: unknown = entry.get(key)
      return typeof v === 'string' ? v : ''
    }
    const id = text('id')
    if (!SECTION_ID.test(id) || out.some((i) => i.id === id)) continue
    out.push({ id, number: text('number'), title: text('title'), owner: text('owner'), ownerName: text('ownerName') })
  }
  return out
}

export function itemLabel(item: Pick<AgendaItem, 'number' | 'title'>): string {
  return item.number ? `§ ${item.number} ${item.title}` : item.title
}
