// A tiny element builder: markup first, no framework. Attributes are set
// with setAttribute (never `style`: the Content-Security-Policy forbids
// inline styles); `on*` functions become event listeners.

type Listener = (event: Event) => void
export type Attrs = Record<string, string | number | boolean | null | undefined | Listener>
export type Child = Node | string | null | undefined | false | Child[]

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue
      if (typeof value === 'function') {
        el.addEventListener(key.slice(2).toLowerCase(), value)
      } else if (value === true) {
        el.setAttribute(key, '')
      } else {
        el.setAttribute(key, String(value))
      }
    }
  }
  append(el, children)
  return el
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(parent, child)
    else parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child)
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, children)
}

let nextId = 0
/** A document-unique id for label/aria wiring. */
export function uid(prefix: string): string {
  nextId += 1
  return `${prefix}-${nextId}`
}
