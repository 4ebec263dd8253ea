// Values as people read them, by the profile's unit.

export function formatValue(v: number, unit: string): string {
  switch (unit) {
    case 'nanoseconds':
      return formatDuration(v / 1e9);
    case 'microseconds':
      return formatDuration(v / 1e6);
    case 'milliseconds':
      return formatDuration(v / 1e3);
    case 'seconds':
      return formatDuration(v);
    case 'bytes':
      return formatBytes(v);
    default:
      return `${formatCount(v)}`;
  }
}

export function formatDuration(s: number): string {
  const a = Math.abs(s);
  if (a === 0) return '0 s';
  if (a >= 3600) return `${(s / 3600).toFixed(2)} h`;
  if (a >= 60) return `${(s / 60).toFixed(2)} min`;
  if (a >= 1) return `${s.toFixed(2)} s`;
  if (a >= 1e-3) return `${(s * 1e3).toFixed(1)} ms`;
  if (a >= 1e-6) return `${(s * 1e6).toFixed(1)} µs`;
  return `${(s * 1e9).toFixed(0)} ns`;
}

export function formatBytes(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = b;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

export function formatCount(n: number): string {
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Math.round(n).toLocaleString('en-US');
}

/**
 * A measured value as read: about 3 significant digits (`25.8`, `0.8`),
 * whole from a thousand on and compacted from ten thousand as by
 * `formatCount` (`1,234`, `12.3k`), tiny ones in exponent form.
 */
export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1000) return formatCount(v);
  if (a < 1e-4) return v.toExponential(1);
  return v.toLocaleString('en-US', { maximumSignificantDigits: 3, useGrouping: false });
}

export function pct(share: number, digits = 2): string {
  return `${(share * 100).toFixed(digits)}%`;
}

/** Percentage points, signed. */
export function pp(change: number): string {
  const s = change > 0 ? '+' : change < 0 ? '−' : '±';
  return `${s}${Math.abs(change).toFixed(2)} pp`;
}

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** How long ago `ms` was, roughly: `12 s ago`, `5 min ago`. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
