// The formatting bar's icons, drawn as SVG strokes rather than letters or
// characters: a button whose visible face is text ("B", "1.") must carry
// that text in its accessible name (WCAG 2.5.3, label in name), and "1."
// is not a name anyone would say. An icon is not a text label, so the
// button's name is its aria-label alone, the same word its tooltip shows.

const SVG = 'http://www.w3.org/2000/svg'

/** Path data on a 24 × 24 grid, stroked in the text colour. */
const PATHS = {
  bold: ['M7 5h6a3.5 3.5 0 0 1 0 7H7z', 'M7 12h7a3.5 3.5 0 0 1 0 7H7z'],
  italic: ['M10 5h8', 'M6 19h8', 'M15 5l-6 14'],
  heading: ['M6 5v14', 'M17 5v14', 'M6 12h11'],
  bulletList: ['M10 7h10', 'M10 12h10', 'M10 17h10', 'M5 7h.01', 'M5 12h.01', 'M5 17h.01'],
  orderedList: ['M11 7h9', 'M11 12h9', 'M11 17h9', 'M4 5l2-1v5', 'M4 12.5a1.5 1.5 0 0 1 3 0c0 1-3 2-3 3h3', 'M4 16.5h3l-1.6 1.8a1.6 1.6 0 1 1-1.4 2.4'],
  undo: ['M9 14L4 9l5-5', 'M4 9h10.5a5.5 5.5 0 0 1 0 11H11'],
  redo: ['M15 14l5-5-5-5', 'M20 9H9.5a5.5 5.5 0 0 0 0 11H13'],
} as const

export type IconName = keyof typeof PATHS

/** An icon for a button; hidden from assistive technology (the button is named). */
export function icon(name: IconName): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('aria-hidden', 'true')
  svg.setAttribute('focusable', 'false')
  svg.setAttribute('class', `icon icon-${name}`)
  for (const d of PATHS[name]) {
    const path = document.createElementNS(SVG, 'path')
    path.setAttribute('d', d)
    svg.append(path)
  }
  return svg
}
