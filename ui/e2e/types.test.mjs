// The profile types beyond CPU in the web UI: off-CPU, wall and lock
// contention (Go's mutex types) profiles uploaded as pprof, as the agent
// ships them. The type picker lists them, flame graphs and tables read in
// their unit (nanoseconds as time, contentions as counts), and the diff
// view compares a non-CPU type.

import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { launch, newPage, shoot, startServer } from './harness.mjs';

const now = Math.floor(Date.now() / 1000);
const MIN = 60;

// ---- A minimal pprof (profile.proto) writer ----

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

const field = (num, wire) => varint((num << 3) | wire);
const uint = (num, v) => [...field(num, 0), ...varint(v)];
const bytes = (num, b) => [...field(num, 2), ...varint(b.length), ...b];
const packed = (num, vs) => bytes(num, vs.flatMap(varint));
const str = (num, s) => bytes(num, [...Buffer.from(s)]);

/**
 * A gzipped pprof: `types` [[type, unit]...], `period` [type, unit], and
 * `samples` {"root;...;leaf": [value per type]}, at `timeSec`.
 */
function pprof(types, period, samples, timeSec) {
  const strings = [''];
  const idx = (s) => {
    let i = strings.indexOf(s);
    if (i < 0) i = strings.push(s) - 1;
    return i;
  };
  const vt = ([t, u]) => [...uint(1, idx(t)), ...uint(2, idx(u))];
  const fns = new Map();
  const msg = [];
  for (const t of types) msg.push(...bytes(1, vt(t)));
  for (const [stack, values] of Object.entries(samples)) {
    const ids = stack
      .split(';')
      .reverse()
      .map((name) => {
        if (!fns.has(name)) fns.set(name, fns.size + 1);
        return fns.get(name);
      });
    msg.push(...bytes(2, [...packed(1, ids), ...packed(2, values)]));
  }
  for (const [name, id] of fns) {
    msg.push(...bytes(4, [...uint(1, id), ...bytes(4, uint(1, id))]));
    msg.push(...bytes(5, [...uint(1, id), ...uint(2, idx(name))]));
  }
  const tail = [...uint(9, BigInt(timeSec) * 1_000_000_000n), ...uint(10, 10_000_000_000), ...bytes(11, vt(period)), ...uint(12, 1)];
  for (const s of strings) msg.push(...str(6, s));
  return gzipSync(Buffer.from([...msg, ...tail]));
}

async function upload(url, name, body) {
  const r = await fetch(`${url}/api/v1/pprof?name=${encodeURIComponent(name)}`, { method: 'POST', body });
  if (!r.ok) throw new Error(`pprof upload ${name}: ${r.status} ${await r.text()}`);
}

const OFF_CPU = 'off_cpu:off_cpu:nanoseconds:off_cpu:nanoseconds';
const WALL = 'wall:wall:nanoseconds:wall:nanoseconds';
const DELAY = 'mutex:delay:nanoseconds:contentions:count';
const CONTENTIONS = 'mutex:contentions:count:contentions:count';
const MS = 1_000_000;

let server;
let ui;

before(async () => {
  server = await startServer();
  const url = server.url;
  const mutex = [['contentions', 'count'], ['delay', 'nanoseconds']];
  // Lock contention, before and after a change: waiting in flush_cache
  // grows from 25% to 60% of the time waited, in as many waits.
  for (const t of [now - 45 * MIN, now - 44 * MIN]) {
    await upload(url, 'orders{env="prod"}', pprof(mutex, ['contentions', 'count'], {
      'main;worker;take_order;pthread_mutex_lock': [30, 1800 * MS],
      'main;worker;flush_cache;pthread_mutex_lock': [30, 600 * MS],
    }, t));
  }
  for (const t of [now - 6 * MIN, now - 5 * MIN]) {
    await upload(url, 'orders{env="prod"}', pprof(mutex, ['contentions', 'count'], {
      'main;worker;take_order;pthread_mutex_lock': [30, 800 * MS],
      'main;worker;flush_cache;pthread_mutex_lock': [30, 1200 * MS],
    }, t));
  }
  await upload(url, 'orders{env="prod"}', pprof([['off_cpu', 'nanoseconds']], ['off_cpu', 'nanoseconds'], {
    'main;worker;read_socket': [3000 * MS],
    'main;worker;nanosleep': [1000 * MS],
  }, now - 5 * MIN));
  await upload(url, 'orders{env="prod"}', pprof([['wall', 'nanoseconds']], ['wall', 'nanoseconds'], {
    'main;worker;read_socket': [3000 * MS],
    'main;worker;parse': [1000 * MS],
  }, now - 5 * MIN));
  ui = await launch();
});

after(async () => {
  await ui?.close();
  await server?.stop();
  server?.cleanup();
});

async function settled(page) {
  await page.locator('.view[aria-busy="false"]').waitFor();
}

/** The flame graph's heading total ("1.00 s · 5 nodes"). */
async function flameTotal(page) {
  const h = page.locator('h3:has-text("Flame graph") .muted');
  await h.waitFor();
  return h.innerText();
}

async function hoverFlame(page, testId, fx, row) {
  const canvas = page.locator(`[data-testid="${testId}"] canvas`);
  const box = await canvas.boundingBox();
  assert.ok(box, `${testId} has no canvas`);
  await page.mouse.move(box.x + box.width * fx, box.y + 18 * row + 9);
  const tip = page.locator(`[data-testid="${testId}"] .tooltip`);
  await tip.waitFor();
  return tip.innerText();
}

describe('profile types', () => {
  it('lists off-CPU, wall and mutex types in the picker and shows each in its unit', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/explore?from=now-1h&until=now`);
    const picker = page.locator('[data-testid="profile-type"]');
    await page.locator(`[data-testid="profile-type"] option[value="${DELAY}"]`).waitFor({ state: 'attached' });
    const options = await picker.locator('option').evaluateAll((os) => os.map((o) => o.value));
    for (const t of [OFF_CPU, WALL, DELAY, CONTENTIONS]) assert.ok(options.includes(t), `${t} in ${options}`);

    // Time waited: a duration (the last 15 minutes hold 2 x 2 s).
    await page.selectOption('[data-testid="range-preset"]', 'now-15m');
    await picker.selectOption(DELAY);
    await page.waitForURL(/mutex%3Adelay/);
    await settled(page);
    assert.match(await flameTotal(page), /^4\.00 s ·/);
    const tip = await hoverFlame(page, 'flamegraph', 0.3, 3);
    assert.match(tip, /flush_cache/);
    assert.match(tip, /2\.40 s/);
    await page.mouse.move(0, 0);
    await shoot(page, 'types-mutex-delay-1280x800');

    // Contentions: a count, not a time.
    await picker.selectOption(CONTENTIONS);
    await page.waitForURL(/mutex%3Acontentions/);
    await settled(page);
    assert.match(await flameTotal(page), /^120 ·/);
    await shoot(page, 'types-mutex-contentions-1280x800');

    // Off-CPU and wall time: durations.
    await picker.selectOption(OFF_CPU);
    await page.waitForURL(/off_cpu/);
    await settled(page);
    assert.match(await flameTotal(page), /^4\.00 s ·/);
    await shoot(page, 'types-offcpu-1280x800');
    await picker.selectOption(WALL);
    await page.waitForURL(/wall%3Awall/);
    await settled(page);
    assert.match(await flameTotal(page), /^4\.00 s ·/);
    await page.close();
  });

  it('diffs lock delay between two windows', async () => {
    const page = await newPage(ui.browser);
    const q = encodeURIComponent(`${DELAY}{service_name="orders"}`);
    await page.goto(
      `${server.url}/compare?query=${q}&base_query=${q}&base_from=now-50m&base_until=now-40m&from=now-10m&until=now`,
    );
    await settled(page);
    const rows = page.locator('[data-testid="diff-table"] tbody tr');
    await rows.first().waitFor();
    const flush = page.locator('[data-testid="diff-table"] tr[data-function="flush_cache"]');
    await flush.waitFor();
    // 600 of 2400 ms, then 1200 of 2000 ms: +35 points.
    assert.equal(await flush.locator('[data-col="change"]').innerText(), '+35.00 pp');
    const take = page.locator('[data-testid="diff-table"] tr[data-function="take_order"]');
    assert.equal(await take.locator('[data-col="change"]').innerText(), '−35.00 pp');
    const changes = page.locator('h3:has-text("Changes") .muted');
    assert.match(await changes.innerText(), /base 4\.80 s · target 4\.00 s/);
    await page.mouse.move(0, 0);
    await shoot(page, 'types-mutex-compare-1280x800');
    await page.close();
  });
});
