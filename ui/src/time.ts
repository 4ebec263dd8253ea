// Time arguments as the server reads them (crates/query/src/time.rs), so
// the UI can shift ranges ("one day earlier") and draw them.

const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(s.trim());
  return m ? parseFloat(m[1]) * UNIT_MS[m[2]] : null;
}

/** Milliseconds since the epoch, or null when `s` is not a time. */
export function resolveTime(s: string, now = Date.now()): number | null {
  const t = s.trim();
  if (t === 'now') return now;
  const rel = /^now-(.+)$/.exec(t);
  if (rel) {
    const d = parseDuration(rel[1]);
    return d === null ? null : now - d;
  }
  if (/^\d+$/.test(t)) {
    const n = parseInt(t, 10);
    return t.length >= 13 ? n : n * 1000;
  }
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

export function isRelative(s: string): boolean {
  return s.trim().startsWith('now');
}

/** A compact absolute time for the URL (Unix milliseconds). */
export function abs(ms: number): string {
  return String(Math.round(ms));
}

export const PRESETS: [string, string][] = [
  ['now-5m', 'Last 5 minutes'],
  ['now-15m', 'Last 15 minutes'],
  ['now-1h', 'Last hour'],
  ['now-6h', 'Last 6 hours'],
  ['now-24h', 'Last 24 hours'],
  ['now-7d', 'Last 7 days'],
];
