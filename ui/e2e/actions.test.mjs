// The actions page against servers running the autopilot: one enforcing
// two manual-approval policies, one in dry-run, one without policies.

import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launch, newPage, shoot, startServer } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'perfpilot-actions-'));
// What the approved action creates; the dry-run server's action would
// create the other.
const RAN = join(dir, 'ran');
const DRY_RAN = join(dir, 'dry-ran');
let enforce;
let dry;
let plain;
let ui;

/** A policy on Service `target` with one action; `extra` is YAML after the action's fields. */
function policyYaml({ name, target, action, condition, operation, approval, extra = '' }) {
  return `apiVersion: perfpilot.dev/v1alpha1
kind: AutopilotPolicy
metadata: {name: ${name}}
spec:
  targetRef: {kind: Service, name: ${target}}
  actions:
    - name: ${action}
      condition: '${condition}'
      operation: ${JSON.stringify(operation)}
      approval: ${approval}
${extra}`;
}

/** A manual-approval policy that touches `ran` while UiTestAlert fires. */
function policy(name, target, action, ran) {
  return policyYaml({
    name,
    target,
    action,
    condition: 'alert("UiTestAlert").firing',
    operation: { type: 'exec', command: ['/usr/bin/touch', ran] },
    approval: 'manual',
  });
}

/** A policy directory holding `files` (name → YAML). */
function policies(name, files) {
  const p = join(dir, name);
  mkdirSync(p);
  for (const [f, yaml] of Object.entries(files)) writeFileSync(join(p, f), yaml);
  return p;
}

/**
 * Alertmanager's webhook with UiTestAlert firing for checkout and for
 * search: an alert with a `service` label concerns only that service's
 * policies.
 */
async function fire(url) {
  const body = {
    version: '4',
    status: 'firing',
    receiver: 'pp',
    groupKey: 'k',
    alerts: [
      {
        status: 'firing',
        labels: { alertname: 'UiTestAlert', service: 'checkout' },
        annotations: {},
        startsAt: new Date().toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        fingerprint: 'abc123',
      },
      {
        status: 'firing',
        labels: { alertname: 'UiTestAlert', service: 'search' },
        annotations: {},
        startsAt: new Date().toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        fingerprint: 'abc124',
      },
    ],
  };
  const r = await fetch(`${url}/api/v1/alertmanager`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, await r.text());
}

async function actions(url) {
  const r = await fetch(`${url}/api/v1/actions`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}

/** Waits for `check` to return something truthy (the server decides on its own clock). */
async function until(what, check, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  const pol = policies('policies', {
    'checkout.yaml': policy('ui-test', 'checkout', 'touch', RAN),
    'search.yaml': policy('ui-reject', 'search', 'note', RAN + '-rejected'),
  });
  const dryPol = policies('dry-policies', { 'checkout.yaml': policy('ui-dry', 'checkout', 'touch', DRY_RAN) });
  [enforce, dry, plain] = await Promise.all([
    startServer(['--policies', pol, '--autopilot', 'enforce', '--autopilot-dir', join(dir, 'ap')]),
    startServer(['--policies', dryPol, '--autopilot-dir', join(dir, 'ap-dry')]),
    startServer(),
  ]);
  ui = await launch();
});

after(async () => {
  await ui?.close();
  for (const s of [enforce, dry, plain]) {
    await s?.stop();
    s?.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});


describe('actions', () => {
  it('shows the evidence of waiting decisions, pauses, approves and rejects', async () => {
    const page = await newPage(ui.browser);
    // The approver is asked for once, then remembered.
    const asked = [];
    page.on('dialog', async (d) => {
      asked.push(d.message());
      await d.accept('alice');
    });
    await page.goto(`${enforce.url}/actions`);
    assert.match(await page.locator('[data-testid="mode"]').innerText(), /^enforce/);
    assert.match(await page.locator('[data-testid="pending"]').innerText(), /Nothing is waiting/);

    await fire(enforce.url);
    const touch = page.locator('[data-testid="pending-card"][data-policy="ui-test"]');
    const other = page.locator('[data-testid="pending-card"][data-policy="ui-reject"]');
    await touch.waitFor();
    await other.waitFor();
    const card = await touch.innerText();
    assert.match(card, /ui-test\s+v1/);
    assert.match(card, /touch/);
    assert.match(card, /Service\/checkout/);
    assert.match(card, /exec/);
    assert.equal(await touch.locator('[data-testid="condition"]').innerText(), 'alert("UiTestAlert").firing');
    assert.equal(await touch.locator('[data-testid="readings"]').innerText(), 'alert("UiTestAlert").firing = true');
    await shoot(page, 'actions-pending-1280x800');

    // Paused, the page says so, the server agrees, and an approval gets
    // the server's 409 shown on its card.
    await page.locator('[data-testid="pause-toggle"]', { hasText: 'Pause' }).click();
    await page.locator('[data-testid="pause-state"]', { hasText: 'Paused' }).waitFor();
    assert.equal((await actions(enforce.url)).paused, true);
    await touch.locator('[data-testid="approve"]').click();
    await touch.locator('[data-testid="decide-error"]').waitFor();
    assert.match(await touch.locator('[data-testid="decide-error"]').innerText(), /paused/);
    assert.equal(asked.length, 1);
    assert.match(await page.locator('[data-testid="approver"]').innerText(), /deciding as alice/);
    assert.equal(existsSync(RAN), false);
    await shoot(page, 'actions-paused-1280x800');

    await page.locator('[data-testid="pause-toggle"]', { hasText: 'Resume' }).click();
    await page.locator('[data-testid="pause-state"]', { hasText: 'Active' }).waitFor();
    assert.equal((await actions(enforce.url)).paused, false);

    // Approve: it runs, and moves to the recent actions with its approver.
    const id = await touch.getAttribute('data-action-id');
    await touch.locator('[data-testid="approve"]').click();
    const done = page.locator(`[data-testid="recent-table"] tr[data-action-id="${id}"]`);
    await page.locator(`[data-testid="recent-table"] tr[data-action-id="${id}"][data-status="succeeded"]`).waitFor();
    assert.equal(await done.locator('[data-testid="by"]').innerText(), 'alice');
    assert.match(await done.innerText(), /exit 0/);
    assert.ok(existsSync(RAN), 'the approved action ran');
    await page.locator(`[data-testid="pending-card"][data-action-id="${id}"]`).waitFor({ state: 'detached' });

    // Reject the other: nothing runs. Its condition still holds, so the
    // engine queues a new decision for it at once.
    const rid = await other.getAttribute('data-action-id');
    await other.locator('[data-testid="reject"]').click();
    const rejected = page.locator(`[data-testid="recent-table"] tr[data-action-id="${rid}"]`);
    await page.locator(`[data-testid="recent-table"] tr[data-action-id="${rid}"][data-status="rejected"]`).waitFor();
    assert.equal(await rejected.locator('[data-testid="by"]').innerText(), 'alice');
    await page.locator(`[data-testid="pending-card"][data-action-id="${rid}"]`).waitFor({ state: 'detached' });
    assert.equal(existsSync(RAN + '-rejected'), false);
    assert.equal(asked.length, 1, 'the name is asked for once');

    // The server agrees.
    const api = await actions(enforce.url);
    const ran = api.recent.find((a) => String(a.id) === id);
    assert.equal(ran.status, 'succeeded');
    assert.equal(ran.by, 'alice');
    assert.equal(api.recent.find((a) => String(a.id) === rid).status, 'rejected');

    // A row opens on the condition and its readings.
    await done.click();
    const detail = page.locator('[data-testid="detail"]');
    await detail.waitFor();
    const text = await detail.innerText();
    assert.match(text, /alert\("UiTestAlert"\)\.firing = true/);
    assert.match(text, /exec/);

    // The audit log lists the approval and the rejection.
    const audit = page.locator('[data-testid="audit-table"]');
    await audit.locator('tr[data-kind="approval"]', { hasText: 'touch approved by alice' }).waitFor();
    await audit.locator('tr[data-kind="approval"]', { hasText: 'note rejected by alice' }).waitFor();
    await audit.locator('tr[data-kind="action_run"]', { hasText: 'touch' }).waitFor();
    await audit.locator('tr[data-kind="pause"]', { hasText: /^.*paused by \w+/ }).waitFor();
    await audit.locator('tr[data-kind="pause"]', { hasText: /resumed by \w+/ }).waitFor();
    await audit.locator('tr[data-kind="policy_change"]', { hasText: /loaded v1 · .*checkout\.yaml/ }).waitFor();
    await shoot(page, 'actions-1280x800');

    // Only approvals when filtered.
    await page.locator('[data-testid="audit"] select').selectOption('approval');
    await page.waitForURL(/kind=approval/);
    await until(
      'the audit filter',
      async () =>
        (await audit.locator('tbody tr:not([data-kind="approval"])').count()) === 0 &&
        (await audit.locator('tbody tr[data-kind="approval"]').count()) >= 2,
    );

    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.locator('[data-testid="audit"] select').selectOption('');
    await audit.locator('tr[data-kind="decision"]').first().waitFor();
    await shoot(page, 'actions-1920x1080');

    // The Alerts page lists what Alertmanager sent, per service, though
    // this server learns no baselines of its own.
    await page.goto(`${enforce.url}/alerts`);
    const received = page.locator('[data-testid="received-alerts"]');
    await received.locator('tr[data-fingerprint="abc123"][data-state="firing"]', { hasText: 'checkout' }).waitFor();
    await received.locator('tr[data-fingerprint="abc124"]', { hasText: 'search' }).waitFor();
    assert.match(await received.innerText(), /UiTestAlert/);
    // Only the autopilot's own alerts would be listed: none yet.
    assert.match(
      await page.locator('[data-testid="autopilot-only"]').innerText(),
      /^Only the autopilot's own alerts show here.*--baseline-config FILE/,
    );
    assert.match(await page.locator('.view.alerts').innerText(), /No autopilot action has made its target worse\./);
    await shoot(page, 'alerts-received-1920x1080');
    await page.close();
  });

  it('labels dry-run, records what would run, and says when the server is gone', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${dry.url}/actions`);
    assert.equal(await page.locator('[data-testid="mode"]').innerText(), 'dry-run: nothing runs');
    await fire(dry.url);
    const row = page.locator('[data-testid="recent-table"] tr[data-status="dry-run"]');
    await row.first().waitFor();
    assert.match(await row.first().innerText(), /ui-dry/);
    assert.match(await row.first().innerText(), /not run/);
    assert.equal(await page.locator('[data-testid="pending-card"]').count(), 0);
    assert.equal(existsSync(DRY_RAN), false);
    await shoot(page, 'actions-dry-run-1280x800');

    // The page keeps polling: with the server gone it says so.
    await dry.stop();
    await page.locator('[data-testid="error"]', { hasText: 'Server unreachable' }).waitFor();
    await page.close();
  });

  it('shows impact verdicts, rollbacks, retries and output as an enforcing server records them', async () => {
    // Three services in one followed request log, each with a policy that
    // acts when its p99 passes 500 ms. What each action does to its
    // service's latency is up to the log writer below: shop's makes it
    // worse (and is rolled back), cart's makes it better, search's fails.
    const d = join(dir, 'impact');
    mkdirSync(d);
    const log = join(d, 'access.jsonl');
    writeFileSync(log, '');
    writeFileSync(
      join(d, 'watch.toml'),
      `window = "1s"\nlateness = "1s"\n\n[[logs]]\npath = ${JSON.stringify(log)}\nformat = "json"\nfollow = true\n`,
    );
    const shopRan = join(d, 'shop-ran');
    const rolled = join(d, 'shop-rolled-back');
    const cartRan = join(d, 'cart-ran');
    const latencyPolicy = (name, target, action, operation, extra) =>
      policyYaml({ name, target, action, condition: 'p99 > 500ms', operation, approval: 'auto', extra: `      cooldown: 1h\n${extra}` });
    const pol = policies('impact-policies', {
      'shop.yaml': latencyPolicy(
        'shop-latency',
        'shop',
        'restart',
        { type: 'exec', command: ['/bin/sh', '-c', 'echo restarted shop && touch "$1"', 'sh', shopRan] },
        `      rollback: ${JSON.stringify({ type: 'exec', command: ['/usr/bin/touch', rolled] })}\n  guard: {impactWindow: 8s, rollbackIf: worse}\n`,
      ),
      'cart.yaml': latencyPolicy(
        'cart-latency',
        'cart',
        'restart',
        { type: 'exec', command: ['/usr/bin/touch', cartRan] },
        '  guard: {impactWindow: 20s, rollbackIf: worse}\n',
      ),
      'search.yaml': latencyPolicy(
        'search-latency',
        'search',
        'flush',
        { type: 'exec', command: ['/bin/sh', '-c', 'echo "search: unit not found"; exit 1'] },
        '',
      ),
    });
    const server = await startServer([
      '--policies', pol, '--autopilot', 'enforce', '--autopilot-dir', join(d, 'ap'),
      '--baseline-config', join(d, 'watch.toml'),
    ]);
    // 20 requests a second per service at 800 ms, until an action changes it.
    const latency = { shop: 800, cart: 800, search: 800 };
    const feeder = setInterval(() => {
      if (existsSync(shopRan)) latency.shop = 2000;
      if (existsSync(cartRan)) latency.cart = 100;
      const ts = Date.now() / 1000;
      const lines = [];
      for (const service of Object.keys(latency)) {
        for (let i = 0; i < 5; i++) {
          lines.push(JSON.stringify({ ts, latency_ms: latency[service], status: 200, endpoint: '/', service }));
        }
      }
      appendFileSync(log, lines.join('\n') + '\n');
    }, 250);
    try {
      const page = await newPage(ui.browser);
      await page.goto(`${server.url}/actions`);
      const row = (policy) => page.locator(`[data-testid="recent-table"] tr[data-policy="${policy}"]`);

      // cart's impact window is still open: a countdown in seconds.
      await row('cart-latency').locator('[data-testid="impact"]', { hasText: /checking in \d+ s/ }).waitFor();
      const [, remaining] = (await row('cart-latency').locator('[data-testid="impact"]').innerText()).match(/checking in (\d+) s/);
      assert.ok(Number(remaining) <= 20, remaining);

      // search's action failed three times.
      const failed = row('search-latency');
      await failed.locator('[data-testid="status"]', { hasText: 'failed' }).waitFor();
      assert.match(await failed.innerText(), /exit 1/);
      await failed.click();
      const detail = page.locator('[data-testid="detail"]');
      await detail.waitFor();
      assert.match(await detail.innerText(), /3 attempts/);
      assert.match(await detail.innerText(), /search: unit not found/);

      // shop's action made p99 worse (0.8 s → 2 s), so it was rolled back.
      const worse = row('shop-latency');
      await worse.locator('[data-testid="impact"]', { hasText: 'rolled back' }).waitFor({ timeout: 60_000 });
      assert.ok(existsSync(rolled));
      assert.match(await worse.locator('[data-testid="status"]').innerText(), /rolled back/);
      const worseText = await worse.locator('[data-testid="impact"]').innerText();
      assert.match(worseText, /^worse\s+p99 [\d.]+ → [\d.]+\s+rolled back$/);
      const [before, after] = worseText.match(/p99 ([\d.]+) → ([\d.]+)/).slice(1).map(Number);
      assert.ok(Math.abs(before - 0.8) < 0.05 && Math.abs(after - 2) < 0.05, worseText);
      await worse.click();
      await page.locator('[data-testid="detail"]', { hasText: 'restarted shop' }).waitFor();

      // cart's made it better (0.8 s → 0.1 s): no rollback.
      const better = row('cart-latency');
      await better.locator('[data-testid="impact"]', { hasText: /^better/ }).waitFor({ timeout: 60_000 });
      const betterText = await better.locator('[data-testid="impact"]').innerText();
      assert.doesNotMatch(betterText, /rolled back/);
      const [b0, b1] = betterText.match(/p99 ([\d.]+) → ([\d.]+)/).slice(1).map(Number);
      assert.ok(Math.abs(b0 - 0.8) < 0.05 && Math.abs(b1 - 0.1) < 0.05, betterText);

      // What the page shows is what the server recorded.
      const { recent } = await actions(server.url);
      const byPolicy = Object.fromEntries(recent.map((a) => [a.policy, a]));
      assert.equal(byPolicy['shop-latency'].impact.status, 'worse');
      assert.equal(byPolicy['shop-latency'].impact.rollback, 'succeeded');
      assert.equal(byPolicy['cart-latency'].impact.status, 'better');
      assert.equal(byPolicy['search-latency'].status, 'failed');
      assert.equal(byPolicy['search-latency'].attempts, 3);
      const audit = page.locator('[data-testid="audit-table"]');
      await audit.locator('tr[data-kind="rollback"]').first().waitFor();
      assert.match(
        await audit.locator('tr[data-kind="rollback"]').first().innerText(),
        new RegExp(`restart rolled back \\(.*\\): exec /usr/bin/touch ${rolled.replace(/[/.]/g, '\\$&')} · exit 0`),
      );
      assert.match(await audit.locator('tr[data-kind="impact"]', { hasText: 'shop-latency' }).first().innerText(), /restart: worse/);
      await shoot(page, 'actions-impact-1280x800');
      await page.close();
    } finally {
      clearInterval(feeder);
      await server.stop();
      server.cleanup();
    }
  });

  it('lists policies with their versions and puts an earlier one back in force', async () => {
    const d = join(dir, 'versions');
    mkdirSync(d);
    const file = join(d, 'shop.yaml');
    const version = (action) =>
      policyYaml({
        name: 'ui-versions',
        target: 'shop',
        action,
        condition: 'alert("UiNeverFires").firing',
        operation: { type: 'exec', command: ['/usr/bin/true'] },
        approval: 'manual',
      });
    writeFileSync(file, version('first'));
    const server = await startServer(['--policies', d, '--autopilot-dir', join(d, 'ap')]);
    try {
      const page = await newPage(ui.browser);
      const dialogs = [];
      page.on('dialog', async (dialog) => {
        dialogs.push([dialog.type(), dialog.message()]);
        if (dialog.type() === 'prompt') await dialog.accept('dana');
        else await dialog.accept();
      });
      await page.goto(`${server.url}/actions`);
      const row = page.locator('[data-testid="policies-table"] tr[data-policy="ui-versions"]');
      await row.locator('[data-testid="version"]', { hasText: /^v1$/ }).waitFor();
      assert.match(await row.innerText(), /Service\/shop\s+first\s+.*shop\.yaml\s+none/);

      // An edit is a new version; the page, polling, shows it.
      writeFileSync(file, version('second'));
      await row.locator('[data-testid="version"]', { hasText: /^v2$/ }).waitFor();
      assert.match(await row.innerText(), /second/);
      assert.deepEqual(
        await row.locator('[data-testid="restore-version"] option').evaluateAll((os) => os.map((o) => o.textContent)),
        ['v1'],
      );
      await row.locator('[data-testid="restore"]').click();
      await row.locator('[data-testid="version"]', { hasText: /^v3 · v1's content$/ }).waitFor();
      assert.match(await row.innerText(), /first/);
      assert.deepEqual(dialogs.map(([t]) => t), ['prompt', 'confirm']);
      assert.match(dialogs[1][1], /^Put version 1 of ui-versions back in force\? It becomes version 3 and stays until .*shop\.yaml changes\.$/);

      // As the server has it, and in the audit log.
      const r = await fetch(`${server.url}/api/v1/policies`);
      const [p] = (await r.json()).policies;
      assert.deepEqual([p.version, p.restored_from, p.actions, p.versions], [3, 1, ['first'], [1, 2, 3]]);
      await page
        .locator('[data-testid="audit-table"] tr[data-kind="policy_change"]', { hasText: "rolled back to v1's content as v3 by dana" })
        .waitFor();
      await shoot(page, 'actions-policies-1280x800');

      // Cancelling the confirmation changes nothing: no rollback is asked for.
      page.removeAllListeners('dialog');
      const dismissed = [];
      page.on('dialog', async (dialog) => {
        dismissed.push(dialog.type());
        await dialog.dismiss();
      });
      const rollbacks = [];
      page.on('request', (req) => {
        if (req.method() === 'POST' && new URL(req.url()).pathname.endsWith('/rollback')) rollbacks.push(req.url());
      });
      await row.locator('[data-testid="restore-version"]').selectOption('2');
      await row.locator('[data-testid="restore"]').click();
      await until('the confirmation', async () => dismissed.length > 0);
      assert.deepEqual(dismissed, ['confirm']);
      // The name is remembered, so only the confirmation is asked. A
      // request the page sends after the click's handler has returned is
      // seen after any the handler sent.
      const marker = '/api/v1/policies?after-dismissed-confirm';
      const seen = page.waitForRequest((req) => req.url().endsWith(marker));
      await page.evaluate((url) => fetch(url).then((r) => r.status), marker);
      await seen;
      assert.deepEqual(rollbacks, []);
      const again = await (await fetch(`${server.url}/api/v1/policies`)).json();
      assert.equal(again.policies[0].version, 3);
      await row.locator('[data-testid="version"]', { hasText: /^v3 · v1's content$/ }).waitFor();
      assert.equal(await row.locator('[data-testid="restore"]').innerText(), 'Restore');
      await page.close();
    } finally {
      await server.stop();
      server.cleanup();
    }
  });

  it('says how to turn the autopilot on when the server has no policies', async () => {
    const page = await newPage(ui.browser);
    await page.goto(`${plain.url}/actions`);
    await page.locator('[data-testid="empty"]').waitFor();
    const text = await page.locator('[data-testid="empty"]').innerText();
    assert.match(text, /--policies DIR/);
    assert.match(text, /--autopilot enforce/);
    await shoot(page, 'actions-off-1280x800');
    await page.close();
  });
});
