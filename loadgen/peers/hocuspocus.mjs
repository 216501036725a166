// A plain Hocuspocus server as its README starts one: documents in memory,
// no extensions, no hooks. Listens on 127.0.0.1:$PORT.
import { Server } from '@hocuspocus/server'

const port = Number(process.env.PORT || 1235)
const server = new Server({ port, address: '127.0.0.1', quiet: true })
await server.listen()
console.log(`hocuspocus ${port}`)
