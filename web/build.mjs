// Bundles web/src into web/dist: hashed, minified ES modules (the protocol
// page is a separate chunk, loaded only when a meeting is opened), the CSS,
// index.html pointing at them, and gzip/brotli copies the server hands to
// browsers that accept them. The output is deterministic: CI rebuilds it and
// fails if it differs from the committed dist/.
//
//   node build.mjs          build
//   node build.mjs --size   build and print what the protocol page loads (gzip)

import { build } from 'esbuild'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

const here = new URL('.', import.meta.url).pathname
const dist = join(here, 'dist')
const assets = join(dist, 'assets')

await rm(dist, { recursive: true, force: true })
await mkdir(assets, { recursive: true })

const result = await build({
  absWorkingDir: here,
  entryPoints: ['src/main.ts'],
  bundle: true,
  format: 'esm',
  splitting: true,
  minify: true,
  target: ['chrome111', 'firefox115', 'safari16.4'],
  outdir: assets,
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  legalComments: 'eof',
  charset: 'utf8',
  metafile: true,
  logLevel: 'warning',
})

const outputs = result.metafile.outputs
const entry = Object.keys(outputs).find((p) => outputs[p].entryPoint === 'src/main.ts')
const css = outputs[entry].cssBundle
const url = (p) => '/' + relative(dist, join(here, p))

const template = await readFile(join(here, 'index.html'), 'utf8')
const html = template
  .replace('<!-- stylesheet -->', `<link rel="stylesheet" href="${url(css)}">`)
  .replace('<!-- script -->', `<script type="module" src="${url(entry)}"></script>`)
await writeFile(join(dist, 'index.html'), html)

// Precompressed copies (deterministic: zlib writes no timestamp).
async function* files(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* files(p)
    else yield p
  }
}
for await (const file of files(dist)) {
  if (!/\.(js|css|html)$/.test(file)) continue
  const raw = await readFile(file)
  await writeFile(`${file}.gz`, gzipSync(raw, { level: 9 }))
  await writeFile(
    `${file}.br`,
    brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }),
  )
}

if (process.argv.includes('--size')) {
  // Everything the protocol page loads: index.html, the stylesheet, the
  // entry and every chunk it imports, statically or dynamically.
  const load = new Set([entry, css])
  const queue = [entry]
  while (queue.length) {
    for (const imp of outputs[queue.pop()].imports) {
      if (imp.external || load.has(imp.path)) continue
      load.add(imp.path)
      queue.push(imp.path)
    }
  }
  let raw = 0
  let gz = 0
  const rows = []
  for (const p of ['dist/index.html', ...[...load].map((x) => relative(here, join(here, x)))]) {
    const bytes = await readFile(join(here, p))
    const g = gzipSync(bytes, { level: 9 }).length
    raw += bytes.length
    gz += g
    rows.push(`${(g / 1024).toFixed(1).padStart(8)} KiB gzip ${(bytes.length / 1024).toFixed(1).padStart(8)} KiB  ${p}`)
  }
  console.log(rows.join('\n'))
  console.log(`${(gz / 1024).toFixed(1).padStart(8)} KiB gzip ${(raw / 1024).toFixed(1).padStart(8)} KiB  total loaded by /meetings/{id} (budget 300 KB gzip)`)
}
