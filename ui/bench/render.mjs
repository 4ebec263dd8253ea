// Flame graph render benchmark: perfpilot's canvas renderer against a peer,
// Pyroscope's own flame graph component (@pyroscope/flamegraph), on the same
// synthetic trees of 1k, 10k and 20k nodes, in headless Chromium.
//
//   npm run bench                      (in ui/)
//   npm run bench -- --repeats 25 --width 1920 --rebuild
//
// Builds ui/dist if bench.html is missing (or with --rebuild), installs and
// builds the peer project in bench/peer if needed, serves both over
// 127.0.0.1, and runs ours and the peer's draws alternately so the noise of
// a shared machine hits both. Progress goes to stderr, the table to stdout.
// The figures that matter are the ratios; absolute times vary by machine.

import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const uiDir = resolve(here, '..');
const peerDir = join(here, 'peer');
const SIZES = [1000, 10000, 20000];
const GOAL_MS = 100;

function usage(msg) {
  if (msg) console.error(`bench: ${msg}`);
  console.error('usage: node bench/render.mjs [--repeats N] [--width PX] [--rebuild]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { repeats: 15, width: 1920, rebuild: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rebuild') o.rebuild = true;
    else if (a === '--repeats' || a === '--width') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) usage(`${a} needs a positive integer`);
      o[a.slice(2)] = v;
    } else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  return o;
}

const log = (...a) => console.error('bench:', ...a);

function run(cmd, args, cwd) {
  log(`${cmd} ${args.join(' ')}  (in ${cwd})`);
  // The children's output goes to stderr: stdout is the table.
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 2, 2] });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${cwd} exited with ${r.status}`);
}

/**
 * Installs a project's packages from its lockfile. Some npm 11 releases
 * write lockfiles without other platforms' optional packages and then refuse
 * them in `npm ci`; `npm install --no-save` installs the same locked versions
 * without rewriting the lockfile.
 */
function install(dir) {
  if (existsSync(join(dir, 'package-lock.json'))) {
    log(`npm ci --no-audit --no-fund  (in ${dir})`);
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8' });
    if (r.status === 0) return;
    const why = `${r.stderr ?? ''}`.split('\n').find((l) => /npm error (code|`npm ci`)/.test(l)) ?? `exit ${r.status}`;
    log(`npm ci failed (${why.trim()}); falling back to npm install --no-save`);
  }
  run('npm', ['install', '--no-save', '--no-audit', '--no-fund'], dir);
}

/** Newest modification time among files under `p` (a file or a folder). */
function newest(p) {
  if (!existsSync(p)) return 0;
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const e of readdirSync(p)) {
    if (e === 'node_modules' || e === 'dist') continue;
    m = Math.max(m, newest(join(p, e)));
  }
  return m;
}

function prepareMain(rebuild) {
  const page = join(uiDir, 'dist', 'bench.html');
  if (!existsSync(join(uiDir, 'node_modules', 'vite')) || !existsSync(join(uiDir, 'node_modules', 'playwright-core'))) {
    install(uiDir);
  }
  if (rebuild || !existsSync(page)) {
    run('npm', ['run', 'build'], uiDir);
    return;
  }
  const src = Math.max(newest(join(uiDir, 'src')), newest(join(uiDir, 'bench.html')));
  if (src > statSync(page).mtimeMs) {
    log('warning: ui/src is newer than ui/dist; pass --rebuild to measure the current code');
  }
}

function preparePeer(rebuild) {
  if (!existsSync(join(peerDir, 'node_modules', '@pyroscope', 'flamegraph', 'package.json'))) install(peerDir);
  const page = join(peerDir, 'dist', 'index.html');
  const src = Math.max(
    newest(join(peerDir, 'src')),
    newest(join(peerDir, 'index.html')),
    newest(join(peerDir, 'vite.config.ts')),
    newest(join(uiDir, 'src', 'bench.ts')),
  );
  if (rebuild || !existsSync(page) || src > statSync(page).mtimeMs) run('npm', ['run', 'build'], peerDir);
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
};

/** A static file server for `root` on 127.0.0.1 and a free port. */
function serve(root) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    let st;
    try {
      st = statSync(file);
    } catch {
      st = null;
    }
    if (!st || !st.isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': st.size,
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((res, rej) => {
    server.on('error', rej);
    server.listen(0, '127.0.0.1', () => res({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

function quantile(xs, q) {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
const median = (xs) => quantile(xs, 0.5);
const spread = (xs) => `${fmt(quantile(xs, 0.25))}-${fmt(quantile(xs, 0.75))}`;

/** In the page: pixels of perfpilot's bench canvas neither transparent nor near white. */
function paintedOurs() {
  const c = document.getElementById('c');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && !(d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245)) n++;
  }
  return { painted: n, size: [c.width, c.height] };
}

const fmt = (x, d = 1) => x.toFixed(d);
const pad = (s, w) => String(s).padStart(w);

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(chromiumPath)) {
    console.error(
      `bench: Chromium not found at ${chromiumPath}. Install Debian's chromium package ` +
        '(apt-get install chromium) or set CHROMIUM to a Chromium binary.',
    );
    process.exit(3);
  }

  prepareMain(opt.rebuild);
  preparePeer(opt.rebuild);
  const { chromium } = await import('playwright-core');

  const ours = await serve(join(uiDir, 'dist'));
  const peer = await serve(join(peerDir, 'dist'));
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    ours.server.close();
    peer.server.close();
    console.error(`bench: could not launch Chromium at ${chromiumPath}: ${e.message.split('\n')[0]}`);
    process.exit(3);
  }

  try {
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, deviceScaleFactor: 1 });
    const errors = [];
    const open = async (url, fn) => {
      const page = await ctx.newPage();
      page.on('pageerror', (e) => errors.push(`${url}: ${e.message}`));
      await page.goto(url);
      await page.waitForFunction((f) => typeof window[f] === 'function', fn, { timeout: 30_000 });
      return page;
    };
    const pp = await open(`${ours.url}/bench.html`, 'runBench');
    const py = await open(`${peer.url}/index.html`, 'runPeer');
    const w = opt.width;

    const rows = [];
    for (const n of SIZES) {
      // One untimed round each first: JIT warm-up, fonts, first-use costs.
      await pp.evaluate(([n, w]) => window.runBench(n, w, 1), [n, w]);
      await py.evaluate(([n, w]) => window.runPeer(n, w, 1), [n, w]);
      const draw = [];
      const decode = [];
      const render = [];
      const canvas = [];
      let rects = 0;
      let levels = 0;
      let ourPainted = Infinity;
      let ourSize = [0, 0];
      let peerPainted = Infinity;
      let peerPaintedCanvas = Infinity;
      let peerSize = [0, 0];
      for (let r = 0; r < opt.repeats; r++) {
        process.stderr.write(`\rbench: ${n} nodes, draw ${r + 1}/${opt.repeats} `);
        // Each call is one fresh tree (new names, so palettes are built
        // again), one decode and one draw; the peer call likewise.
        const a = await pp.evaluate(([n, w]) => window.runBench(n, w, 1), [n, w]);
        const px = await pp.evaluate(paintedOurs);
        draw.push(a.drawMs);
        decode.push(a.decodeMs);
        rects = a.drawnRects;
        levels = a.levels;
        ourPainted = Math.min(ourPainted, px.painted);
        ourSize = px.size;
        const b = await py.evaluate(([n, w]) => window.runPeer(n, w, 1), [n, w]);
        render.push(b.renderMs);
        canvas.push(b.canvasMs);
        peerPainted = Math.min(peerPainted, b.paintedPx);
        peerPaintedCanvas = Math.min(peerPaintedCanvas, b.paintedPxCanvas);
        peerSize = b.canvasPx;
      }
      process.stderr.write('\n');
      const peerRects = await py.evaluate(([n, w]) => window.peerRects(n, w), [n, w]);
      rows.push({
        n,
        levels,
        draw: median(draw),
        decode: median(decode),
        render: median(render),
        canvas: median(canvas),
        spreads: [spread(draw), spread(render), spread(canvas)],
        rects,
        peerRects,
        ourPainted,
        ourSize,
        peerPainted,
        peerPaintedCanvas,
        peerSize,
      });
    }
    if (errors.length) throw new Error(`page errors:\n  ${errors.join('\n  ')}`);

    const version = browser.version();
    console.log(
      `Flame graph render, headless Chromium ${version}, ${w} px wide, median of ${opt.repeats} draws each, ours and peer interleaved`,
    );
    console.log('peer: @pyroscope/flamegraph (FlamegraphRenderer, flame graph only); ratios > 1 mean perfpilot is faster\n');
    const head = [
      ['nodes', 6],
      ['perfpilot draw ms', 17],
      ['perfpilot decode ms', 19],
      ['peer render ms', 14],
      ['peer/perfpilot', 14],
      ['peer canvas-only ms', 19],
      ['canvas-only/draw', 16],
    ];
    console.log(head.map(([h, wd]) => pad(h, wd)).join(' | '));
    console.log(head.map(([, wd]) => '-'.repeat(wd)).join('-|-'));
    for (const r of rows) {
      const cells = [
        r.n,
        fmt(r.draw),
        fmt(r.decode),
        fmt(r.render),
        `${fmt(r.render / r.draw, 2)}x`,
        fmt(r.canvas),
        `${fmt(r.canvas / r.draw, 2)}x`,
      ];
      console.log(cells.map((c, i) => pad(c, head[i][1])).join(' | '));
    }
    const big = rows.find((r) => r.n === 20000);
    console.log(
      `\n20k-node draw under ${GOAL_MS} ms: ${big.draw < GOAL_MS ? 'yes' : 'NO'} (${fmt(big.draw)} ms draw, ` +
        `${fmt(big.draw + big.decode)} ms with decode)`,
    );
    console.log('\nspread (25th-75th percentile ms): perfpilot draw | peer render | peer canvas-only');
    for (const r of rows) console.log(`  ${pad(r.n, 5)} nodes: ${r.spreads.join(' | ')}`);
    console.log('\nsanity (fewest painted pixels over the draws; rectangles of the last draw):');
    for (const r of rows) {
      const pct = (p, [cw, ch]) => `${fmt((100 * p) / Math.max(1, cw * ch), 0)}% of ${cw}x${ch}`;
      console.log(
        `  ${pad(r.n, 5)} nodes, ${pad(r.levels, 2)} levels: perfpilot ${pad(r.rects, 5)} rects, ${pct(r.ourPainted, r.ourSize)}; ` +
          `peer ${pad(r.peerRects.canvas, 5)} rects (component mount: ${r.peerRects.component}), ${pct(r.peerPainted, r.peerSize)} ` +
          `(canvas-only ${pct(r.peerPaintedCanvas, r.peerSize)})`,
      );
    }
    const blank = rows.filter((r) => !r.ourPainted || !r.peerPainted || !r.peerPaintedCanvas || !r.rects || !r.peerRects.canvas || !r.peerRects.component);
    if (blank.length) throw new Error(`a canvas stayed blank for ${blank.map((r) => r.n).join(', ')} nodes`);
  } finally {
    await browser.close();
    ours.server.close();
    peer.server.close();
  }
}

main().catch((e) => {
  console.error(`\nbench: ${e.message}`);
  process.exit(1);
});
