// The baselines page against a server whose baseline engine has learned
// six minutes of a request log and follows a live one, with CPU profiles
// coming in; /search turns slow while the page is open.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ingestFolded, launch, newPage, perfpilotBin, shoot, startServer } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'perfpilot-baselines-'));
const LIVE = join(dir, 'live.jsonl');
let server;
let plain;
let ui;
let feeder;
let slow = false;
let n = 0;
// Requests a second: enough for each endpoint to be judged on its own in
// a 3 s window (the engine wants 20 requests).
const RATE = 30;

/** Request `i` at `t_ms`: a third to /search, the rest to /item, 20 to 32 ms (/search ×8 when slow). */
function line(t_ms, i, slowSearch) {
  const endpoint = i % 3 === 0 ? '/search' : '/item';
  let latency = 20 + ((i * 7919) % 13);
  if (slowSearch && endpoint === '/search') latency *= 8;
  return JSON.stringify({ ts: t_ms / 1000, latency_ms: latency, status: 200, endpoint, service: 'shop' });
}

function config(log, follow, extra = '') {
  return `window = "3s"
lateness = "2s"
state_dir = ${JSON.stringify(join(dir, 'baselines'))}

[[logs]]
path = ${JSON.stringify(log)}
format = "json"
follow = ${follow}
${extra}
[detectors.baseline]
warmup = 20
`;
}

before(async () => {
  // Six minutes of history, learned and saved by `baseline watch`; the
  // server starts from those baselines and follows the live log.
  const history = join(dir, 'history.jsonl');
  const start = Date.now() - 6 * 60e3;
  const lines = [];
  for (let i = 0; i < 6 * 60 * RATE; i++) lines.push(line(start + (i * 1000) / RATE, i, false));
  writeFileSync(history, lines.join('\n') + '\n');
  writeFileSync(LIVE, '');
  mkdirSync(join(dir, 'baselines'));
  writeFileSync(join(dir, 'learn.toml'), config(history, false));
  execFileSync(perfpilotBin(), ['baseline', 'watch', '-q', '--config', join(dir, 'learn.toml')], { stdio: 'inherit' });
  writeFileSync(join(dir, 'watch.toml'), config(LIVE, true, '\n[[profiles]]\nservice = "shop"\nfunctions = ["encrypt"]\n'));
  server = await startServer(['--baseline-config', join(dir, 'watch.toml')]);
  plain = await startServer();
  // A second of CPU profile each second for the next two minutes, a third
  // of it in encrypt: the CPU features warm up while the tests run.
  const t = Math.floor(Date.now() / 1000);
  for (let k = -2; k < 120; k++) {
    await ingestFolded(server.url, 'shop', t + k, t + k + 1, { 'main;handle;encrypt': 30, 'main;handle;parse': 60 });
  }
  // Live traffic at the history's rate, as it happens: each tick writes
  // the requests since the last, so a late timer leaves no gap.
  let next = Date.now();
  feeder = setInterval(() => {
    const batch = [];
    for (const now = Date.now(); next <= now; next += 1000 / RATE) batch.push(line(next, n++, slow));
    if (batch.length) appendFileSync(LIVE, batch.join('\n') + '\n');
  }, 250);
  ui = await launch();
});

after(async () => {
  clearInterval(feeder);
  await ui?.close();
  for (const s of [server, plain]) {
    await s?.stop();
    s?.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function apiBaselines(url) {
  const r = await fetch(`${url}/api/v1/baselines`);
  assert.equal(r.status, 200);
  return r.json();
}

const row = (page, feature) => page.locator(`[data-testid="feature-row"][data-feature="${feature}"]`);

/** The number in a cell like `25.8 ms` or `24.5–27.1 ms`. */
const numbers = (text) => [...text.matchAll(/\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));

describe('baselines', () => {
  it('groups features by service and endpoint, with their bands, states, last values and gauges', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/baselines`);
    await page.locator('[data-testid="service-heading"]', { hasText: 'shop' }).waitFor();
    assert.match(await page.locator('[data-service="shop"] [data-testid="service-firing"]').innerText(), /^0 firing$/);
    assert.deepEqual(
      await page.locator('[data-service="shop"] [data-testid="endpoint-group"]').evaluateAll((gs) => gs.map((g) => g.dataset.endpoint)),
      ['service-wide', '/item', '/search'],
    );

    // The live log's first windows give the last values; the profiles
    // the CPU features, still warming up.
    const p50 = row(page, 'latency_p50_ms');
    await p50.locator('[data-testid="last"]', { hasText: /ago/ }).waitFor({ timeout: 20_000 });
    await row(page, 'cpu_share:encrypt').locator('[data-testid="last"]', { hasText: /ago/ }).waitFor({ timeout: 30_000 });

    // The service-wide p50 row: learned from 20 to 32 ms requests.
    assert.match(await p50.locator('td').first().innerText(), /^p50 latency$/);
    assert.equal(await p50.locator('[data-testid="state"]').innerText(), 'learned from recent history');
    const expected = await p50.locator('[data-testid="expected"]').innerText();
    assert.match(expected, /^\d+(\.\d+)? ms$/);
    const [e] = numbers(expected);
    assert.ok(e > 20 && e < 32, expected);
    const band = await p50.locator('[data-testid="band"]').innerText();
    assert.match(band, /^\d+(\.\d+)?–\d+(\.\d+)? ms$/);
    const [low, high] = numbers(band);
    assert.ok(low < e && e < high, `${low} < ${e} < ${high}`);
    assert.match(await p50.locator('[data-testid="last"]').innerText(), /\d+(\.\d+)? ms\s*\d+ s ago/);
    // As the server has it.
    const api = await apiBaselines(server.url);
    const f = api.features.find((x) => x.service === 'shop' && x.feature === 'latency_p50_ms');
    assert.ok(Math.abs(f.band.expected - e) < 0.5, `${f.band.expected} ≈ ${e}`);
    assert.equal(await p50.locator('[data-testid="gauge"]').count(), 1);
    assert.equal(await p50.locator('[data-testid="gauge-marker"]').getAttribute('data-outside'), 'false');

    // Endpoint rows read the same way; p90 and the error rate too (a
    // p99.9 is no feature at 20-30 requests a window: it is never judged).
    assert.match(await row(page, '/item latency_p90_ms').locator('td').first().innerText(), /^p90 latency$/);
    assert.match(await row(page, '/search errors').locator('td').first().innerText(), /^error rate$/);
    assert.match(await row(page, '/search errors').locator('[data-testid="expected"]').innerText(), /^\d+(\.\d+)?%$/);
    assert.match(await row(page, '/item requests_per_s').locator('[data-testid="expected"]').innerText(), /^\d+(\.\d+)? req\/s$/);

    // CPU from the profiles: no band until 20 windows are seen.
    const share = row(page, 'cpu_share:encrypt');
    assert.match(await share.locator('td').first().innerText(), /^CPU share of encrypt$/);
    assert.match(await share.locator('[data-testid="state"]').innerText(), /^warming up \d+\/20$/);
    assert.equal(await share.locator('[data-testid="band"]').innerText(), '—');
    assert.match(await share.locator('[data-testid="last"]').innerText(), /^3\d(\.\d+)?%/);
    assert.match(await row(page, 'cpu_cores').locator('td').first().innerText(), /^CPU cores$/);
    assert.equal(await share.locator('[data-testid="gauge-marker"]').count(), 1);
    await shoot(page, 'baselines-1280x800');

    // The filter narrows the rows and lives in the URL.
    const all = await page.locator('[data-testid="feature-row"]').count();
    await page.locator('[data-testid="baseline-filter"]').fill('p50');
    await page.waitForURL(/filter=p50/);
    assert.deepEqual(
      await page.locator('[data-testid="feature-row"]').evaluateAll((rs) => rs.map((r) => r.dataset.feature)),
      ['latency_p50_ms', '/item latency_p50_ms', '/search latency_p50_ms'],
    );
    await page.reload();
    await page.locator('[data-testid="feature-row"]').first().waitFor();
    assert.equal(await page.locator('[data-testid="baseline-filter"]').inputValue(), 'p50');
    assert.equal(await page.locator('[data-testid="feature-row"]').count(), 3);
    await page.locator('[data-testid="baseline-filter"]').fill('/item');
    await page.waitForURL(/filter=%2Fitem/);
    assert.deepEqual(
      await page.locator('[data-testid="endpoint-group"]').evaluateAll((gs) => gs.map((g) => g.dataset.endpoint)),
      ['/item'],
    );
    await page.locator('[data-testid="baseline-filter"]').fill('no such feature');
    await page.locator('[data-testid="empty"]', { hasText: 'No feature matches' }).waitFor();
    await page.locator('[data-testid="empty"] button', { hasText: 'Show all' }).click();
    await page.waitForURL((u) => !u.search.includes('filter='));
    // Every feature again: the live log and the profiles may have added
    // some since they were counted, so the server says how many.
    const rows = page.locator('[data-testid="feature-row"]');
    let shownAll = 0;
    let listed = -1;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await page.waitForTimeout(250)) {
      listed = (await apiBaselines(server.url)).features.length;
      shownAll = await rows.count();
      if (shownAll === listed) break;
    }
    assert.equal(shownAll, listed);
    assert.ok(shownAll >= all, `${shownAll} >= ${all}`);
    await page.close();
  });

  it('highlights a feature as it fires and links it to the alerts page', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/baselines`);
    await page.locator('[data-testid="feature-row"]').first().waitFor();
    assert.equal(await page.locator('[data-testid="feature-row"][data-firing="true"]').count(), 0);
    assert.equal((await apiBaselines(server.url)).features.filter((f) => f.firing).length, 0);

    // /search turns eight times slower; the page, polling, shows it fire.
    // Its p50 is the row to watch: a window holds 20-30 /search requests,
    // too few for a p99 to be judged (it needs one request beyond it).
    slow = true;
    const fired = row(page, '/search latency_p50_ms').and(page.locator('.firing'));
    await fired.waitFor({ timeout: 45_000 });
    assert.equal(await fired.getAttribute('data-firing'), 'true');
    assert.equal(await fired.locator('[data-testid="gauge-marker"]').getAttribute('data-outside'), 'true');
    assert.match(await fired.locator('[data-testid="last"] .outside').innerText(), /^\d+(\.\d+)? ms$/);
    const [last] = numbers(await fired.locator('[data-testid="last"] .outside').innerText());
    const [, high] = numbers(await fired.locator('[data-testid="band"]').innerText());
    assert.ok(last > high, `${last} > ${high}`);
    // /item's latency never changed.
    assert.equal(await page.locator('[data-testid="feature-row"][data-feature^="/item latency"][data-firing="true"]').count(), 0);

    // What the page shows firing, the server reports firing.
    const shown = await page.locator('[data-testid="feature-row"][data-firing="true"]').evaluateAll((rs) => rs.map((r) => r.dataset.feature));
    const api = await apiBaselines(server.url);
    const firing = new Set(api.features.filter((f) => f.firing).map((f) => f.feature));
    for (const f of shown) assert.ok(firing.has(f), `${f} fires on the server`);
    assert.equal(await page.locator('[data-service="shop"] [data-testid="service-firing"]').innerText(), `${shown.length} firing`);
    await shoot(page, 'baselines-firing-1280x800');
    await page.setViewportSize({ width: 1920, height: 1080 });
    await shoot(page, 'baselines-1920x1080');

    // Firing only, kept in the URL.
    await page.locator('[data-testid="firing-only"]').check();
    await page.waitForURL(/firing=1/);
    const only = await page.locator('[data-testid="feature-row"]').evaluateAll((rs) => rs.map((r) => r.dataset.firing));
    assert.ok(only.length >= shown.length && only.every((x) => x === 'true'), only.join());

    await fired.locator('[data-testid="firing-link"]').click();
    await page.waitForURL(/\/alerts$/);
    // The incident holding it, with the feature among its findings.
    const incident = page.locator('[data-testid="alerts-table"] tr.incident[data-state="firing"]', { hasText: 'shop' });
    await incident.first().waitFor();
    await incident.first().locator('[data-testid="expand"]').click();
    await page.locator('[data-testid="findings"] tr[data-feature="/search latency_p50_ms"]').first().waitFor();
    await page.close();
  });

  it('says how to turn baselines on, and when the server is gone', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${plain.url}/baselines`);
    await page.locator('[data-testid="empty"]').waitFor();
    const text = await page.locator('[data-testid="empty"]').innerText();
    assert.match(text, /Baselines are off/);
    assert.match(text, /--baseline-config/);
    assert.equal((await apiBaselines(plain.url)).enabled, false);
    await shoot(page, 'baselines-off');

    // The page keeps polling: with the server gone it says so.
    await plain.stop();
    await page.locator('[data-testid="error"]', { hasText: 'Server unreachable' }).waitFor({ timeout: 15_000 });
    await page.close();
  });
});
