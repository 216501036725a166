// Dates and times the Swedish way: "fredag 9 mars 2018", "kl. 09.00",
// ISO dates (2018-03-09) in lists.

import { t } from './i18n'

function parseDay(iso: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso)
  if (!m) return null
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
}

export function longDate(iso: string | null | undefined): string {
  if (!iso) return ''
  const day = parseDay(iso)
  if (!day) return iso
  return new Intl.DateTimeFormat(t().locale, {
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    year: 'numeric',
  }).format(day)
}

export function shortDate(iso: string | null | undefined): string {
  return iso ?? ''
}

export function clock(hhmm: string | null | undefined): string {
  return hhmm ? t().atTime(hhmm) : ''
}

export function dateTime(isoInstant: string): string {
  const d = new Date(isoInstant)
  if (Number.isNaN(d.getTime())) return isoInstant
  return new Intl.DateTimeFormat(t().locale, { dateStyle: 'long', timeStyle: 'short' }).format(d)
}
