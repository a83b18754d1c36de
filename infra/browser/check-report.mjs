// Checks one `chaoslingr report --format html` file in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core): the report must be self-contained and
// readable without JavaScript, and every expected chart must have drawn something.
//
// Usage: node infra/browser/check-report.mjs FILE.html [--charts a,b,c]
//            [--screenshot OUT.png] [--width N] [--max-height N]
//
// The file is loaded twice, once with JavaScript disabled and once with it enabled. Each
// load fails the check when:
//   - any request other than the page's own file:// URL is made (fonts, images, CSS,
//     scripts, other local files; data: URLs are inline and allowed);
//   - a console error or an uncaught page error occurs (warnings are only reported);
//   - the document has a <script> element, an on* event-handler attribute or a
//     javascript: URL;
//   - an expected chart is not exactly one <svg data-chart=NAME role="img"> that is
//     visible, at least 200x100 CSS px, has a non-empty <title> child and contains at least
//     one .mark with a non-empty box inside the chart;
//   - there is not exactly one <table data-table="gaps"> (it may have no body rows).
// Without --charts, every <svg data-chart> in the page is checked and there must be one.
// --screenshot writes a full-page PNG of the JavaScript-disabled load, at a viewport
// --width CSS px wide (default 1100), cut at --max-height CSS px when given.
//
// Prints one line of JSON on stdout:
//   {"ok":bool,"charts":{NAME:{"marks":n,"width":w,"height":h}|null},"requests":[...],
//    "errors":[...],"warnings":[...],"loads":2,...}
// and exits 0 when ok, 1 when the report fails the check (reasons on stderr), 2 on bad
// usage, 3 when the check cannot run (playwright-core not installed, Chromium missing or
// not starting). A hard timeout (CHAOSLINGR_BROWSER_TIMEOUT seconds, default 60) ends a
// hung run with status 1.
//
// Environment: CHAOSLINGR_CHROMIUM (default /usr/bin/chromium), CHAOSLINGR_BROWSER_NODE_DIR
// (where playwright-core is installed; default infra/.browser, see infra/browser.sh).

import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeDir = process.env.CHAOSLINGR_BROWSER_NODE_DIR || path.join(here, '..', '.browser')
const chromiumPath = process.env.CHAOSLINGR_CHROMIUM || '/usr/bin/chromium'
const timeoutSeconds = Number(process.env.CHAOSLINGR_BROWSER_TIMEOUT || 60)
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // CI containers often have a 64 MB /dev/shm, too small for Chromium's renderers.
  '--disable-dev-shm-usage'
]
const MIN_WIDTH = 200
const MIN_HEIGHT = 100
const VIEWPORT_HEIGHT = 800

const USAGE = `Usage: check-report.mjs FILE.html [--charts a,b,c] [--screenshot OUT.png] [--width N]
  --charts a,b,c        charts that must be present and drawn (<svg data-chart=NAME>);
                        default: every chart in the page, at least one
  --screenshot OUT.png  write a full-page screenshot of the JavaScript-disabled load
  --width N             viewport width in CSS px (default 1100)
  --max-height N        cut the screenshot at N CSS px from the top (default: the whole page)`

function usageError(message) {
  process.stderr.write(`check-report: ${message}\n${USAGE}\n`)
  process.exit(2)
}

function parseArgs(argv) {
  const options = { file: null, charts: null, screenshot: null, width: 1100, maxHeight: null }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const eq = arg.indexOf('=')
      if (eq >= 0) return arg.slice(eq + 1)
      if (i + 1 >= argv.length) usageError(`${arg} needs a value`)
      return argv[++i]
    }
    const name = arg.startsWith('--') ? arg.split('=')[0] : arg
    if (name === '-h' || name === '--help') {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    } else if (name === '--charts') {
      options.charts = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    } else if (name === '--screenshot') {
      options.screenshot = value()
      if (!options.screenshot) usageError('--screenshot needs a file name')
    } else if (name === '--max-height') {
      const raw = value()
      options.maxHeight = Number(raw)
      if (!/^\d+$/.test(raw) || options.maxHeight < 100) {
        usageError(`--max-height must be a whole number of CSS px, at least 100, not ${JSON.stringify(raw)}`)
      }
    } else if (name === '--width') {
      const raw = value()
      options.width = Number(raw)
      if (!/^\d+$/.test(raw) || options.width < 320 || options.width > 10000) {
        usageError(`--width must be a whole number of CSS px from 320 to 10000, not ${JSON.stringify(raw)}`)
      }
    } else if (arg.startsWith('-') && arg !== '-') {
      usageError(`unknown option ${arg}`)
    } else if (options.file === null) {
      options.file = arg
    } else {
      usageError(`unexpected argument ${arg}`)
    }
  }
  if (options.file === null) usageError('no report file given')
  return options
}

const options = parseArgs(process.argv.slice(2))
const file = path.resolve(options.file)
if (!fs.existsSync(file) || !fs.statSync(file).isFile()) usageError(`${options.file} is not a file`)
const pageUrl = pathToFileURL(file).href

// Playwright and Chromium put their temporary files (the fresh user-data-dir among them)
// under os.tmpdir(): a folder of this run's own, removed at the end whatever happens.
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chaoslingr-browser-'))
process.env.TMPDIR = workDir
const removeWorkDir = () => {
  try {
    fs.rmSync(workDir, { recursive: true, force: true, maxRetries: 5 })
  } catch {}
}

// Every reason the report fails, with the loads it was seen in ("js off", "js on").
const failures = new Map()
const warnings = new Map()
const requests = new Set()
const chartSummary = {}
let unlisted = []
let browser = null
let finished = false
let screenshot = null

function note(map, load, reason) {
  if (!map.has(reason)) map.set(reason, new Set())
  if (load) map.get(reason).add(load)
}
const fail = (load, reason) => note(failures, load, reason)
const warn = (load, reason) => note(warnings, load, reason)
const listed = (map) => [...map].map(([reason, loads]) => (loads.size ? `${reason} [${[...loads].join(', ')}]` : reason))

function finish(status) {
  if (finished) return
  finished = true
  const errors = listed(failures)
  const ok = status === 0 && errors.length === 0
  const summary = {
    ok,
    charts: chartSummary,
    requests: [...requests],
    errors,
    warnings: listed(warnings),
    loads: 2,
    file,
    ...(unlisted.length ? { unlisted_charts: unlisted } : {}),
    ...(screenshot ? { screenshot } : {})
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`)
  for (const reason of errors) process.stderr.write(`check-report: FAIL: ${reason}\n`)
  for (const reason of summary.warnings) process.stderr.write(`check-report: warning: ${reason}\n`)
  if (ok) {
    const names = Object.keys(chartSummary)
    process.stderr.write(`check-report: ok: ${names.length} chart(s) drawn (${names.join(', ') || 'none'}), no requests besides the page, no script, no errors\n`)
  }
  process.exitCode = ok ? 0 : status || 1
}

const hardTimeout = setTimeout(async () => {
  fail(null, `timed out after ${timeoutSeconds} s (browser hung?)`)
  finish(1)
  // A few seconds to close the browser and remove its temporary files; Playwright kills
  // the browser it launched when the process exits anyway.
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5_000))])
  // After Playwright's own exit handler, which kills a browser still starting.
  process.on('exit', removeWorkDir)
  process.exit(process.exitCode)
}, timeoutSeconds * 1000)

let chromium
try {
  const require = createRequire(path.join(nodeDir, 'package.json'))
  ;({ chromium } = require('playwright-core'))
} catch (e) {
  fail(null, `playwright-core is not installed in ${nodeDir}; run infra/browser.sh install (${e.message.split('\n')[0]})`)
  finish(3)
  removeWorkDir()
  process.exit(process.exitCode)
}
if (!fs.existsSync(chromiumPath)) {
  fail(null, `Chromium is not installed at ${chromiumPath}; run infra/browser.sh install or set CHAOSLINGR_CHROMIUM`)
  finish(3)
  removeWorkDir()
  process.exit(process.exitCode)
}

// Runs in the page: what the check needs to know about the document, with no page script.
function inspect({ expected }) {
  const round = (n) => Math.round(n * 10) / 10
  const scripts = document.querySelectorAll('script').length
  const handlers = []
  const jsUrls = []
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase()
      if (name.startsWith('on')) handlers.push(`<${el.localName} ${name}>`)
      if (/^(href|src|xlink:href|action|formaction)$/.test(name) && /^\s*javascript:/i.test(attr.value)) {
        jsUrls.push(`<${el.localName} ${name}>`)
      }
    }
  }
  const allCharts = [...document.querySelectorAll('svg[data-chart]')].map((s) => s.getAttribute('data-chart'))
  const names = expected ?? [...new Set(allCharts)]
  const charts = {}
  for (const name of names) {
    const svgs = [...document.querySelectorAll('svg[data-chart]')].filter((s) => s.getAttribute('data-chart') === name)
    if (svgs.length !== 1) {
      charts[name] = { count: svgs.length }
      continue
    }
    const svg = svgs[0]
    const box = svg.getBoundingClientRect()
    const visible =
      box.width > 0 &&
      box.height > 0 &&
      box.right + window.scrollX > 0 &&
      box.bottom + window.scrollY > 0 &&
      svg.checkVisibility({ opacityProperty: true, visibilityProperty: true })
    const title = svg.querySelector(':scope > title')
    let marks = 0
    let drawn = 0
    for (const mark of svg.querySelectorAll('.mark')) {
      marks++
      const m = mark.getBoundingClientRect()
      const nonEmpty = m.width > 0 || m.height > 0
      const inside = m.right >= box.left && m.left <= box.right && m.bottom >= box.top && m.top <= box.bottom
      if (nonEmpty && inside && mark.checkVisibility({ opacityProperty: true, visibilityProperty: true })) drawn++
    }
    charts[name] = {
      count: 1,
      width: round(box.width),
      height: round(box.height),
      visible,
      role: svg.getAttribute('role'),
      title: title ? title.textContent.trim() : null,
      marks,
      drawn
    }
  }
  return {
    scripts,
    handlers,
    jsUrls,
    allCharts,
    charts,
    gapsTables: document.querySelectorAll('table[data-table="gaps"]').length
  }
}

async function load(label, javaScriptEnabled) {
  const context = await browser.newContext({
    javaScriptEnabled,
    viewport: { width: options.width, height: VIEWPORT_HEIGHT },
    serviceWorkers: 'block',
    offline: true
  })
  context.setDefaultTimeout(20_000)
  context.on('request', (request) => {
    const url = request.url()
    requests.add(url)
    const own = url.split('#')[0] === pageUrl
    if (!own && !url.startsWith('data:')) fail(label, `the page requested ${url} (a report must be self-contained)`)
  })
  // Nothing leaves the machine, and nothing waits on a network that is not there.
  await context.route(
    (url) => url.protocol !== 'file:' && url.protocol !== 'data:',
    (route) => route.abort('blockedbyclient')
  )
  const page = await context.newPage()
  page.on('console', (message) => {
    const where = message.location()?.url ? ` (${message.location().url})` : ''
    if (message.type() === 'error') fail(label, `console error: ${message.text()}${where}`)
    else if (message.type() === 'warning') warn(label, `console warning: ${message.text()}${where}`)
  })
  page.on('pageerror', (error) => fail(label, `page error: ${error.message}`))
  page.on('crash', () => fail(label, 'the page crashed'))

  const response = await page.goto(pageUrl, { waitUntil: 'load', timeout: 30_000 })
  if (response && !response.ok()) fail(label, `loading the page failed with status ${response.status()}`)
  // Late requests (fonts are fetched on first use) get a moment to show up.
  await page.waitForLoadState('networkidle', { timeout: 3_000 }).catch(() => {})

  const facts = await page.evaluate(inspect, { expected: options.charts })
  if (facts.scripts) fail(label, `the document has ${facts.scripts} <script> element(s); a report must have none`)
  if (facts.handlers.length) fail(label, `the document has event-handler attributes: ${facts.handlers.slice(0, 5).join(', ')}`)
  if (facts.jsUrls.length) fail(label, `the document has javascript: URLs: ${facts.jsUrls.slice(0, 5).join(', ')}`)
  if (options.charts === null && facts.allCharts.length === 0) fail(label, 'the document has no <svg data-chart> at all')
  if (options.charts !== null) {
    unlisted = [...new Set(facts.allCharts.filter((name) => !options.charts.includes(name)))]
  }
  for (const [name, chart] of Object.entries(facts.charts)) {
    const what = `chart ${name}`
    if (chart.count !== 1) {
      fail(label, chart.count === 0 ? `${what}: no <svg data-chart="${name}"> in the document` : `${what}: ${chart.count} <svg data-chart="${name}"> elements, expected exactly one`)
      if (!(name in chartSummary)) chartSummary[name] = null
      continue
    }
    if (!chartSummary[name]) chartSummary[name] = { marks: chart.drawn, width: chart.width, height: chart.height }
    if (!chart.visible) fail(label, `${what}: not visible (${chart.width}x${chart.height} CSS px, hidden or off the page)`)
    else if (chart.width < MIN_WIDTH || chart.height < MIN_HEIGHT) {
      fail(label, `${what}: ${chart.width}x${chart.height} CSS px, smaller than ${MIN_WIDTH}x${MIN_HEIGHT}`)
    }
    if (chart.role !== 'img') fail(label, `${what}: role is ${JSON.stringify(chart.role)}, expected "img"`)
    if (!chart.title) fail(label, `${what}: no non-empty <title> child`)
    if (chart.marks === 0) fail(label, `${what}: no .mark elements (nothing drawn)`)
    else if (chart.drawn === 0) fail(label, `${what}: none of its ${chart.marks} .mark element(s) has a visible box inside the chart (nothing drawn)`)
  }
  if (facts.gapsTables !== 1) {
    fail(label, facts.gapsTables === 0 ? 'no <table data-table="gaps"> in the document' : `${facts.gapsTables} <table data-table="gaps"> elements, expected exactly one`)
  }

  if (options.screenshot && !javaScriptEnabled) {
    fs.mkdirSync(path.dirname(path.resolve(options.screenshot)), { recursive: true })
    const shot = { path: options.screenshot, fullPage: true, type: 'png', animations: 'disabled' }
    if (options.maxHeight) {
      const height = await page.evaluate(() => document.documentElement.scrollHeight)
      shot.clip = { x: 0, y: 0, width: options.width, height: Math.min(height, options.maxHeight) }
    }
    await page.screenshot(shot)
    screenshot = path.resolve(options.screenshot)
  }
  await context.close()
}

let status = 0
try {
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000
    })
  } catch (e) {
    fail(null, `cannot start Chromium (${chromiumPath}): ${e.message.split('\n')[0]}`)
    status = 3
  }
  if (browser) {
    await load('js off', false)
    await load('js on', true)
  }
} catch (e) {
  fail(null, `the check itself failed: ${e.message.split('\n')[0]}`)
  status = 1
} finally {
  if (browser) await browser.close().catch(() => {})
  clearTimeout(hardTimeout)
  removeWorkDir()
  finish(status)
}
