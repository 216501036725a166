// The active language: Swedish unless the person chose English (remembered
// in localStorage; a preference, never a credential).

import { en } from './en'
import { sv, type Catalogue } from './sv'

const KEY = 'protokoll.lang'
const catalogues: Record<string, Catalogue> = { sv, en }

function initial(): Catalogue {
  try {
    const stored = localStorage.getItem(KEY)
    if (stored && catalogues[stored]) return catalogues[stored]
  } catch {
    // Storage may be disabled; Swedish it is.
  }
  return sv
}

let current: Catalogue = initial()

export function t(): Catalogue {
  return current
}

export function setLanguage(code: string): void {
  const next = catalogues[code]
  if (!next) return
  current = next
  try {
    localStorage.setItem(KEY, code)
  } catch {
    // Not remembered; still switched for this page.
  }
  document.documentElement.lang = next.lang
}

export type { Catalogue }
