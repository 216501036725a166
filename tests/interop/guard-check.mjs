// The Yjs side of the section guard's differential fuzzer.
//
//   node guard-check.mjs <cases.jsonl>
//
// Each line of the input is one update the server decided on:
//   {"id": n, "base": b64, "raw": b64, "accepted": bool,
//    "canonical": b64|null, "after": b64|null, "writable": ["section:polis"]}
// `base` is the server's whole document before, `raw` the client's update,
// `canonical` what the server stored and broadcast instead (null when
// nothing was new), `after` the server's whole document afterwards.
// For every accepted update, every root the sender may not write must come
// out unchanged: (1) in Yjs applying what the server broadcast, (2) in the
// server's own document (read back by Yjs), (3) in Yjs applying the
// client's raw bytes, unless Yjs cannot read them at all; and (4) Yjs
// applying the broadcast must end up with exactly the server's document.
// Prints one JSON line per problem, then a summary line
//   {"cases": n, "accepted": n, "rawUnreadable": n, "problems": n}
// Exit code 0 when there are no problems, 3 when there are, 1 on error.

import * as fs from 'node:fs'
import * as Y from 'yjs'
import { installCrashHandlers, usage } from './common.mjs'

installCrashHandlers()

const [path] = process.argv.slice(2)
if (!path) usage('node guard-check.mjs <cases.jsonl>')

const bytes = (b64) => new Uint8Array(Buffer.from(b64, 'base64'))

function load (...updates) {
  const doc = new Y.Doc()
  for (const u of updates) Y.applyUpdate(doc, u)
  return doc
}

// A structural dump of a type: its live sequence (adjacent text and values
// joined, so that how Yjs happens to split or merge items does not matter)
// and its live map entries, recursively.
function dump (type, formats, depth = 0) {
  if (depth > 200) return 'too deep'
  const seq = []
  for (let item = type._start; item !== null; item = item.right) {
    if (item.deleted) continue
    const c = item.content
    let entry
    if (c instanceof Y.ContentType) {
      entry = { type: c.type.constructor.name, name: c.type.nodeName ?? null, of: dump(c.type, formats, depth + 1) }
    } else if (c instanceof Y.ContentFormat) {
      if (!formats) continue
      entry = { format: c.key, value: c.value }
    } else if (c instanceof Y.ContentString) {
      entry = { text: c.str }
    } else {
      entry = { kind: c.constructor.name, values: c.getContent() }
    }
    const last = seq[seq.length - 1]
    if (last && entry.text !== undefined && last.text !== undefined) {
      last.text += entry.text
    } else if (last && entry.kind === 'ContentAny' && last.kind === 'ContentAny') {
      last.values = last.values.concat(entry.values)
    } else {
      seq.push(entry)
    }
  }
  const map = {}
  for (const [key, item] of [...type._map.entries()].sort()) {
    if (item.deleted) continue
    const c = item.content
    map[key] = c instanceof Y.ContentType ? dump(c.type, formats, depth + 1) : c.getContent()
  }
  return { seq, map }
}

// With `formats` false, formatting marks are left out: Yjs deletes
// redundant ones after applying a remote update (its own, local change),
// yrs does not, so the two documents differ in marks that format nothing.
function roots (doc, formats = true) {
  const out = {}
  for (const name of [...doc.share.keys()].sort()) {
    out[name] = JSON.stringify(dump(doc.share.get(name), formats))
  }
  return out
}

const EMPTY = JSON.stringify({ seq: [], map: {} })

// Roots the sender may not write that differ between two dumps.
function changedForbidden (before, after, writable) {
  const names = new Set([...Object.keys(before), ...Object.keys(after)])
  const changed = []
  for (const name of names) {
    if (writable.includes(name)) continue
    if ((before[name] ?? EMPTY) !== (after[name] ?? EMPTY)) changed.push(name)
  }
  return changed
}

let cases = 0
let accepted = 0
let rawUnreadable = 0
let problems = 0
const problem = (c, what, detail) => {
  problems++
  process.stdout.write(JSON.stringify({ id: c.id, what, detail }) + '\n')
}

for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
  if (line.trim() === '') continue
  const c = JSON.parse(line)
  cases++
  if (!c.accepted) continue
  accepted++
  const base = bytes(c.base)
  const before = roots(load(base))
  const server = roots(load(bytes(c.after)))
  const changedOnServer = changedForbidden(before, server, c.writable)
  if (changedOnServer.length > 0) problem(c, 'the server document changed a forbidden root', changedOnServer)
  const broadcast = roots(c.canonical ? load(base, bytes(c.canonical)) : load(base))
  const changedByBroadcast = changedForbidden(before, broadcast, c.writable)
  if (changedByBroadcast.length > 0) problem(c, 'the broadcast changed a forbidden root in Yjs', changedByBroadcast)
  const serverText = roots(load(bytes(c.after)), false)
  const broadcastText = roots(c.canonical ? load(base, bytes(c.canonical)) : load(base), false)
  const differ = Object.keys({ ...serverText, ...broadcastText })
    .filter((name) => (serverText[name] ?? EMPTY) !== (broadcastText[name] ?? EMPTY))
  if (differ.length > 0) problem(c, 'Yjs applying the broadcast differs from the server', differ)
  let raw = null
  try {
    raw = roots(load(base, bytes(c.raw)))
  } catch (e) {
    rawUnreadable++
  }
  if (raw !== null) {
    const changedByRaw = changedForbidden(before, raw, c.writable)
    if (changedByRaw.length > 0) problem(c, "Yjs reading the client's bytes changed a forbidden root", changedByRaw)
  }
}

process.stdout.write(JSON.stringify({ cases, accepted, rawUnreadable, problems }) + '\n', () => {
  process.exit(problems > 0 ? 3 : 0)
})
