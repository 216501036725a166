// Entry point: routes paths to pages. The protocol page (editor, Yjs) is
// loaded only when a meeting is opened, so sign-in stays light.

import './style.css'
import { ApiError } from './api'
import { App, notFoundPage, type Page } from './app'
import { loginPage } from './pages/login'
import { meetingsPage } from './pages/meetings'
import { invitePage } from './pages/invite'

const MEETING = /^\/meetings\/([0-9a-fA-F-]{36})\/?$/
const INVITE = /^\/invite\/([A-Za-z0-9_-]{1,200})\/?$/

async function route(app: App, path: string): Promise<Page> {
  if (path === '/login') return loginPage(app)
  const invite = INVITE.exec(path)
  if (invite?.[1]) return invitePage(app, invite[1])
  // Render() sends a 401 to sign-in with a link back here.
  if (!app.me) throw new ApiError(401, 'unauthenticated', 'sign in first')
  if (path === '/' || path === '/meetings' || path === '/meetings/') return meetingsPage(app)
  const meeting = MEETING.exec(path)
  if (meeting?.[1]) {
    const { protocolPage } = await import('./pages/protocol')
    return protocolPage(app, meeting[1].toLowerCase())
  }
  return notFoundPage()
}

const root = document.getElementById('app')
if (root) void new App(root, route).start()
