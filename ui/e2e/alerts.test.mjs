// The alerts page against a server running the baseline engine over a
// request log with a known incident.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launch, newPage, shoot, startServer } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'perfpilot-alerts-'));
let server;
let plain;
let ui;

/** Twelve minutes of JSON request logs, 10 a second, ending now: /search turns slow at minute 8. */
function writeLog(path) {
  const start = Date.now() - 12 * 60e3;
  const lines = [];
  for (let i = 0; i < 7200; i++) {
    const endpoint = i % 3 === 0 ? '/search' : '/item';
    const minute = Math.floor(i / 600);
    let latency = 20 + ((i * 7919) % 13);
    if (endpoint === '/search' && minute >= 8 && minute < 10) latency *= 8;
    lines.push(JSON.stringify({ ts: (start + i * 100) / 1000, latency_ms: latency, status: 200, endpoint, service: 'shop' }));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

before(async () => {
  const log = join(dir, 'access.jsonl');
  writeLog(log);
  const cfg = join(dir, 'watch.toml');
  writeFileSync(
    cfg,
    `window = "10s"\n\n[[logs]]\npath = ${JSON.stringify(log)}\nformat = "json"\nfollow = false\n\n[detectors.baseline]\nwarmup = 20\n`,
  );
  server = await startServer(['--baseline-config', cfg]);
  plain = await startServer();
  ui = await launch();
});

after(async () => {
  await ui?.close();
  for (const s of [server, plain]) {
    await s?.stop();
    s?.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('alerts', () => {
  it('lists the incident, opens it to its findings, acknowledges it, and links to the profiles around it', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${server.url}/alerts`);
    const row = page.locator('[data-testid="alerts-table"] tr.incident', { hasText: 'shop' });
    await row.first().waitFor();
    // One problem, one incident: its quantiles, /search and the service as a whole inside it.
    assert.equal(await row.count(), 1);
    const text = await row.first().innerText();
    assert.match(text, /latency/);
    assert.ok(Number(await row.first().locator('[data-testid="finding-count"]').innerText()) > 1);
    const id = await row.first().getAttribute('data-alert');
    await row.first().locator('[data-testid="expand"]').click();
    const findings = page.locator(`tr[data-findings-for="${id}"] [data-testid="findings"]`);
    await findings.waitFor();
    const search = findings.locator('tr[data-feature="/search latency_p50_ms"][data-detector="band"]');
    await search.waitFor();
    const evidence = await search.innerText();
    assert.match(evidence, /above its expected band/);
    // Its band, the value it had and since when.
    assert.match(await search.locator('[data-testid="band"]').innerText(), /\d.*–.*\d/);
    // /item never changed.
    assert.equal(await findings.locator('tr[data-feature^="/item"]').count(), 0);
    await shoot(page, 'alerts-1280x800');

    await row.first().locator('[data-testid="ack"]').click();
    await row.first().locator('[data-testid="acked"]').waitFor();
    assert.match(await row.first().locator('[data-testid="acked"]').innerText(), /acked by web UI/);
    // Acknowledged on the server, not just on the page.
    const api = await (await fetch(`${server.url}/api/v1/alerts`)).json();
    assert.equal(api.alerts.find((a) => a.id === id).ack.by, 'web UI');

    await page.setViewportSize({ width: 1920, height: 1080 });
    await shoot(page, 'alerts-1920x1080');

    await row.first().locator('button', { hasText: 'Profiles' }).click();
    await page.waitForURL(/\/compare\?/);
    const q = new URL(page.url()).searchParams;
    assert.equal(q.get('query'), '{service_name="shop"}');
    assert.equal(Number(q.get('base_until')), Number(q.get('from')));
    await page.close();
  });

  it('says how to turn alerts on when the server has no baseline config', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${plain.url}/alerts`);
    await page.locator('[data-testid="empty"]').waitFor();
    assert.match(await page.locator('[data-testid="empty"]').innerText(), /--baseline-config/);
    await page.close();
  });
});
