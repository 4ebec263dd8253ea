// Starts a real perfpilot server on a free port with a fresh data dir,
// ingests known profiles through the Pyroscope ingest API, and opens
// Debian's Chromium through playwright-core.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const here = new URL('.', import.meta.url).pathname;
export const SHOTS = resolve(here, '../../target/ui-screenshots');

export function perfpilotBin() {
  return process.env.PERFPILOT_BIN ?? resolve(here, '../../target/debug/perfpilot');
}

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

export async function startServer(extraArgs = []) {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'perfpilot-ui-'));
  const proc = spawn(perfpilotBin(), ['server', '--listen', `127.0.0.1:${port}`, '--data', data, ...extraArgs], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`perfpilot server exited with ${proc.exitCode}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error('perfpilot server did not answer /healthz within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
    },
    cleanup() {
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Folded stacks uploaded as CPU samples at 100 Hz over [from, until) (Unix seconds). */
export async function ingestFolded(url, app, from, until, stacks) {
  const body = Object.entries(stacks)
    .map(([s, n]) => `${s} ${n}`)
    .join('\n');
  const qs = new URLSearchParams({ name: app, from: String(from), until: String(until), sampleRate: '100', format: 'folded', spyName: 'test' });
  const r = await fetch(`${url}/ingest?${qs}`, { method: 'POST', body });
  if (!r.ok) throw new Error(`ingest ${app}: ${r.status} ${await r.text()}`);
}

export async function launch() {
  // playwright gives every launch a fresh, empty profile.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
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
  mkdirSync(SHOTS, { recursive: true });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/**
 * A page of `browser` at `width`×`height`; an uncaught error in the page
 * fails the test.
 */
export async function newPage(browser, width = 1280, height = 800) {
  const page = await browser.newPage({ viewport: { width, height } });
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => {
    throw new Error(`page error: ${e.message}`);
  });
  return page;
}

export async function shoot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}
