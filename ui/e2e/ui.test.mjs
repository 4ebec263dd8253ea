// End-to-end tests of the web UI: a real perfpilot server, known profiles,
// Debian's Chromium. Screenshots of every view land in target/ui-screenshots.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ingestFolded, launch, newPage, shoot, startServer } from './harness.mjs';

const now = Math.floor(Date.now() / 1000);
const MIN = 60;

// checkout, before and after a change: encrypt_data grows from 10% to 35%
// of the CPU, db_query shrinks from 50% to 28%, gc from 10% to 7%, and
// parse_json stays at 30%.
const BASE = {
  'main;handle;parse_json': 300,
  'main;handle;encrypt_data': 100,
  'main;handle;db_query': 500,
  'main;gc': 100,
};
const TARGET = {
  'main;handle;parse_json': 300,
  'main;handle;encrypt_data': 350,
  'main;handle;db_query': 280,
  'main;gc': 70,
};

let server;
let ui;

before(async () => {
  server = await startServer();
  await ingestFolded(server.url, 'checkout.cpu{env="prod"}', now - 50 * MIN, now - 40 * MIN, BASE);
  await ingestFolded(server.url, 'checkout.cpu{env="prod"}', now - 8 * MIN, now - 2 * MIN, TARGET);
  await ingestFolded(server.url, 'search.cpu{env="prod"}', now - 8 * MIN, now - 2 * MIN, {
    'main;serve;rank_results': 600,
    'main;serve;tokenize': 400,
  });
  ui = await launch();
});

after(async () => {
  await ui?.close();
  await server?.stop();
  server?.cleanup();
});


/** Text of the tooltip after hovering a flame graph at (fx of its width, row). */
async function hoverFlame(page, testId, fx, row) {
  const canvas = page.locator(`[data-testid="${testId}"] canvas`);
  const box = await canvas.boundingBox();
  assert.ok(box, `${testId} has no canvas`);
  await page.mouse.move(box.x + box.width * fx, box.y + 18 * row + 9);
  const tip = page.locator(`[data-testid="${testId}"] .tooltip`);
  await tip.waitFor();
  return tip.innerText();
}

/** Waits until the view has no request in flight (stale rows are replaced). */
async function settled(page) {
  await page.locator('.view[aria-busy="false"]').waitFor();
}

async function rowOf(page, table, fn) {
  const tr = page.locator(`[data-testid="${table}"] tr[data-function="${fn}"]`);
  await tr.waitFor();
  return tr;
}

describe('explore', () => {
  it('picks a selector, lists the top functions, searches, zooms and opens the sandwich view', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/`);
    assert.match(page.url(), /\/explore/);

    // Range first, then a label filter built with the picker's suggestions.
    await page.selectOption('[data-testid="range-preset"]', 'now-15m');
    await page.click('[data-testid="add-filter"]');
    await page.fill('[data-testid="label-name"]', 'service_name');
    const suggested = page.locator('#filter-values option[value="checkout"]');
    await suggested.waitFor({ state: 'attached' });
    const values = await page.locator('#filter-values option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(values.sort(), ['checkout', 'search']);
    await page.fill('[data-testid="label-value"]', 'checkout');
    await page.click('[data-testid="apply-filter"]');
    await page.waitForURL(/service_name%3D%22checkout%22/);
    await settled(page);

    // The top table: self shares of the target window only.
    const expected = { encrypt_data: '35.00%', parse_json: '30.00%', db_query: '28.00%', gc: '7.00%' };
    for (const [fn, share] of Object.entries(expected)) {
      const tr = await rowOf(page, 'top-table', fn);
      assert.equal(await tr.locator('[data-col="self-percent"]').innerText(), share, `self share of ${fn}`);
    }
    const first = await page.locator('[data-testid="top-table"] tbody tr').first().getAttribute('data-function');
    assert.equal(first, 'encrypt_data', 'sorted by self, the biggest first');
    assert.equal(
      await (await rowOf(page, 'top-table', 'handle')).locator('[data-col="total-percent"]').innerText(),
      '93.00%',
    );
    await page.locator('[data-testid="flamegraph"] canvas').waitFor();
    await shoot(page, 'explore-1280x800');

    // Sorting by total puts the callers first.
    await page.click('[data-testid="sort-total"]');
    const byTotal = await page.locator('[data-testid="top-table"] tbody tr').evaluateAll((rs) => rs.slice(0, 2).map((r) => r.dataset.function));
    assert.deepEqual(byTotal, ['main', 'handle']);
    await page.fill('[data-testid="top-filter"]', 'json');
    assert.equal(await page.locator('[data-testid="top-table"] tbody tr').count(), 1);
    await page.fill('[data-testid="top-filter"]', '');

    // Hover: the root is everything; icicle order puts main's children
    // (gc 7%, handle 93%, by name) on row 2 and handle's on row 3.
    const root = await hoverFlame(page, 'flamegraph', 0.5, 0);
    assert.match(root, /total/);
    assert.match(root, /100\.00%/);
    const leaf = await hoverFlame(page, 'flamegraph', 0.5, 3);
    assert.match(leaf, /encrypt_data/);
    assert.match(leaf, /35\.00%/);

    // Search highlights and sums the matching frames.
    await page.fill('[data-testid="search"]', 'encrypt');
    await page.locator('[data-testid="search-share"]').waitFor();
    assert.match(await page.locator('[data-testid="search-share"]').innerText(), /35\.00%/);
    await page.fill('[data-testid="search"]', '/^(gc|parse_json)$/');
    assert.match(await page.locator('[data-testid="search-share"]').innerText(), /37\.00%/);
    await page.fill('[data-testid="search"]', 'encrypt');
    await page.mouse.move(0, 0);
    await shoot(page, 'explore-search-1280x800');

    // Click zooms into encrypt_data: it then fills the width.
    const canvas = page.locator('[data-testid="flamegraph"] canvas');
    const box = await canvas.boundingBox();
    await page.mouse.click(box.x + box.width * 0.5, box.y + 18 * 3 + 9);
    await page.locator('.reset-zoom').waitFor();
    assert.match(await hoverFlame(page, 'flamegraph', 0.05, 3), /encrypt_data/);
    assert.match(await hoverFlame(page, 'flamegraph', 0.95, 3), /encrypt_data/);
    await page.click('.reset-zoom');
    assert.match(await hoverFlame(page, 'flamegraph', 0.2, 3), /db_query/);

    // Flame orientation puts the root at the bottom, and is in the URL.
    await page.click('[data-testid="mode-flame"]');
    await page.waitForURL(/mode=flame/);
    assert.match(await hoverFlame(page, 'flamegraph', 0.5, 3), /total/);
    await page.click('[data-testid="mode-icicle"]');

    // The sandwich view of handle: main calls it; it calls the three leaves.
    await (await rowOf(page, 'top-table', 'handle')).click();
    await page.locator('[data-testid="sandwich"]').waitFor();
    await page.locator('[data-testid="sandwich-stats"]').waitFor();
    assert.equal(await page.locator('[data-testid="sandwich-stats"]').innerText(), 'self 0.00% · total 93.00%');
    // Callers read upward: handle at the bottom, main above it.
    assert.match(await hoverFlame(page, 'sandwich-callers', 0.5, 0), /main/);
    assert.match(await hoverFlame(page, 'sandwich-callers', 0.5, 1), /handle/);
    // Callees read downward: handle on top, its callees below, shares of
    // handle's time (35 of 93 for encrypt_data).
    const callee = await hoverFlame(page, 'sandwich-callees', 0.5, 1);
    assert.match(callee, /encrypt_data/);
    assert.match(callee, /37\.63%/);
    await page.mouse.move(0, 0);
    await shoot(page, 'explore-sandwich-1280x800');

    // Everything is in the URL: a reload shows the same view.
    await page.reload();
    await settled(page);
    await page.locator('[data-testid="sandwich-stats"]').waitFor();
    assert.equal(await page.inputValue('[data-testid="search"]'), 'encrypt');
    assert.equal(await page.locator('[data-testid="chip"]').count(), 1);
    await page.click('[data-testid="sandwich-close"]');
    await page.locator('[data-testid="flamegraph"] canvas').waitFor();

    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.locator('[data-testid="flamegraph"] canvas').waitFor();
    await shoot(page, 'explore-1920x1080');

    // Dragging across the time chart's middle third selects that range.
    const plot = page.locator('[data-testid="timechart"] .u-over');
    const pb = await plot.boundingBox();
    const before = Date.now();
    await page.mouse.move(pb.x + pb.width / 3, pb.y + pb.height / 2);
    await page.mouse.down();
    await page.mouse.move(pb.x + (2 * pb.width) / 3, pb.y + pb.height / 2, { steps: 8 });
    await page.mouse.up();
    await page.waitForURL(/from=\d+/);
    const q = new URL(page.url()).searchParams;
    const [f, u] = [Number(q.get('from')), Number(q.get('until'))];
    // A third of the 15 minutes shown, starting about 10 minutes ago.
    assert.ok(Math.abs(u - f - 5 * 60e3) < 30e3, `dragged range is ${(u - f) / 1e3} s`);
    assert.ok(Math.abs(before - 10 * 60e3 - f) < 60e3, `dragged range starts ${(before - f) / 1e3} s ago`);
    await page.close();
  });
});

describe('compare', () => {
  it('lists the function that grew first as significant and the unchanged one as not', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/explore?query=${encodeURIComponent('{service_name="checkout"}')}`);
    await page.click('a.nav-link:has-text("Compare")');
    await page.waitForURL(/\/compare/);

    // Base: the hour's first half; target: the last 15 minutes.
    await page.fill('[data-testid="base-from"]', 'now-1h');
    await page.fill('[data-testid="base-until"]', 'now-30m');
    await page.locator('[data-testid="base-until"]').press('Enter');
    await page.waitForURL(/base_until=now-30m/);
    await page.selectOption('[data-testid="target-range-preset"]', 'now-15m');
    await page.waitForURL(/from=now-15m/);
    await settled(page);

    const rows = page.locator('[data-testid="diff-table"] tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.first().getAttribute('data-function'), 'encrypt_data');
    assert.equal(await rows.first().getAttribute('data-significant'), 'yes');
    assert.equal(await rows.first().locator('[data-col="change"]').innerText(), '+25.00 pp');
    const db = await rowOf(page, 'diff-table', 'db_query');
    assert.equal(await db.getAttribute('data-significant'), 'yes');
    assert.equal(await db.locator('[data-col="change"]').innerText(), '−22.00 pp');
    const parse = await rowOf(page, 'diff-table', 'parse_json');
    assert.equal(await parse.getAttribute('data-significant'), 'no');
    assert.equal(await parse.locator('[data-col="change"]').innerText(), '±0.00 pp');

    // The diff flame graph says the same on hover.
    const grown = await hoverFlame(page, 'diff-flamegraph', 0.6, 3);
    assert.match(grown, /encrypt_data/);
    assert.match(grown, /grew \(significant\)/);
    const same = await hoverFlame(page, 'diff-flamegraph', 0.97, 3);
    assert.match(same, /parse_json/);
    assert.match(same, /within noise/);
    await page.mouse.move(0, 0);
    await shoot(page, 'compare-1280x800');
    await page.setViewportSize({ width: 1920, height: 1080 });
    await shoot(page, 'compare-1920x1080');

    // One click: the same window a day earlier (absolute times, one day apart).
    await page.click('[data-testid="vs-day"]');
    await page.waitForURL(/base_from=\d+/);
    await settled(page);
    const p = new URL(page.url()).searchParams;
    assert.equal(Number(p.get('from')) - Number(p.get('base_from')), 86_400_000);
    assert.equal(Number(p.get('until')) - Number(p.get('base_until')), 86_400_000);
    assert.equal(p.get('base_query'), '{service_name="checkout"}');
    // Nothing was profiled a day ago.
    await page.locator('[data-testid="diff-table"]').waitFor();
    assert.equal(
      await (await rowOf(page, 'diff-table', 'encrypt_data')).locator('td').nth(1).innerText(),
      '0.00%',
    );

    // Before/after a moment: with the target's range an hour long, the
    // hour before 30 minutes ago holds the base profile (50 to 40 minutes
    // ago) and the time after it the target's (8 to 2 minutes ago).
    await page.selectOption('[data-testid="target-range-preset"]', 'now-1h');
    await settled(page);
    const pad = (n) => String(n).padStart(2, '0');
    const m = new Date(Date.now() - 30 * 60e3);
    const local = `${m.getFullYear()}-${pad(m.getMonth() + 1)}-${pad(m.getDate())}T${pad(m.getHours())}:${pad(m.getMinutes())}:${pad(m.getSeconds())}`;
    await page.fill('[data-testid="moment"]', local);
    await page.click('[data-testid="before-after"]');
    await page.waitForURL((u) => new URL(u).searchParams.get('base_until') === new URL(u).searchParams.get('from'));
    await settled(page);
    const split = await rowOf(page, 'diff-table', 'encrypt_data');
    assert.equal(await split.getAttribute('data-significant'), 'yes');
    assert.equal(await split.locator('[data-col="change"]').innerText(), '+25.00 pp');
    await page.close();
  });
});

describe('states', () => {
  it('shows empty, query error and unreachable server states', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/explore?query=${encodeURIComponent('{service_name="nope"}')}&from=now-15m`);
    await page.locator('[data-testid="empty"]').waitFor();
    assert.match(await page.locator('[data-testid="empty"]').innerText(), /No profiles in this range/);
    await shoot(page, 'state-empty');

    // A bad regex: the server's own message is shown.
    await page.fill('[data-testid="selector"]', '{service_name=~"("}');
    await page.locator('[data-testid="selector"]').press('Enter');
    await page.locator('[data-testid="error"]').waitFor();
    const err = await page.locator('[data-testid="error"]').innerText();
    assert.match(err, /Could not load/);
    assert.match(err, /regex|regular expression/i);
    await shoot(page, 'state-error');

    await server.stop();
    await page.selectOption('[data-testid="range-preset"]', 'now-1h');
    await page.locator('[data-testid="error"]:has-text("Server unreachable")').waitFor();
    await shoot(page, 'state-unreachable');
    await page.close();
  });
});
