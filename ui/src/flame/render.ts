// Draws a flame graph on a canvas. Kept free of the UI framework so the
// render benchmark (bench.html) times exactly what the views draw.

import type { Graph } from './model';

export interface DrawOptions {
  /** The visible window of the root's width, as fractions (zoom). */
  x0: number;
  x1: number;
  /** Root at the bottom (flame) instead of the top (icicle). */
  flame: boolean;
  rowHeight: number;
  /** Per name index: 1 if it matches the search (others are greyed). */
  matches: Uint8Array | null;
  /** Depth of the zoomed node: the levels above it are its ancestors. */
  focusDepth: number;
  hover: [number, number] | null;
}

export const ROW_HEIGHT = 18;
const FONT = '12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';

const palettes = new WeakMap<string[], string[]>();

/** Warm colours by a hash of the name: stable across reloads and views. */
export function colorOf(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  h >>>= 0;
  const hue = 8 + (h % 40);
  const sat = 68 + ((h >>> 8) % 18);
  const light = 56 + ((h >>> 16) % 12);
  return `hsl(${hue},${sat}%,${light}%)`;
}

function palette(names: string[]): string[] {
  let p = palettes.get(names);
  if (!p) {
    p = names.map(colorOf);
    palettes.set(names, p);
  }
  return p;
}

/** Colour of a diff node: red grew, blue shrank, grey within noise. */
export function diffColor(change: number): string {
  const s = Math.abs(change);
  const grey = [208, 208, 212];
  const to = change > 0 ? [222, 45, 38] : [33, 113, 181];
  const c = grey.map((g, k) => Math.round(g + (to[k] - g) * s));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function graphHeight(g: Graph, rowHeight = ROW_HEIGHT): number {
  return Math.max(1, g.levels.length) * rowHeight;
}

/** y of level `d`'s top edge, in CSS pixels. */
export function levelTop(g: Graph, d: number, o: Pick<DrawOptions, 'flame' | 'rowHeight'>): number {
  return o.flame ? (g.levels.length - 1 - d) * o.rowHeight : d * o.rowHeight;
}

export function draw(
  ctx: CanvasRenderingContext2D,
  g: Graph,
  width: number,
  o: DrawOptions,
): number {
  const colors = palette(g.names);
  const span = o.x1 - o.x0;
  const scale = width / span;
  ctx.font = FONT;
  ctx.textBaseline = 'middle';
  const charW = ctx.measureText('mmmmmmmmmm').width / 10;
  const rh = o.rowHeight;
  let drawn = 0;
  for (let d = 0; d < g.levels.length; d++) {
    const lv = g.levels[d];
    const y = levelTop(g, d, o);
    const n = lv.x.length;
    // First node whose right edge is inside the window.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (lv.x[mid] + lv.w[mid] <= o.x0) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < n; i++) {
      const nx = lv.x[i];
      if (nx >= o.x1) break;
      let px = (nx - o.x0) * scale;
      let pw = lv.w[i] * scale;
      if (px < 0) {
        pw += px;
        px = 0;
      }
      if (px + pw > width) pw = width - px;
      if (pw < 0.5) continue;
      const nameIdx = lv.name[i];
      const matched = o.matches === null || o.matches[nameIdx] === 1;
      const ancestor = d < o.focusDepth;
      let fill: string;
      if (lv.change) fill = diffColor(lv.change[i]);
      else fill = colors[nameIdx];
      if (!matched || ancestor) fill = matched && ancestor ? fill : '#e4e4e7';
      ctx.fillStyle = fill;
      ctx.globalAlpha = ancestor ? 0.55 : 1;
      ctx.fillRect(px, y, Math.max(pw - 1, 0.5), rh - 1);
      drawn++;
      if (pw > 3 * charW + 6) {
        const name = g.names[nameIdx] ?? '';
        const max = Math.floor((pw - 6) / charW);
        const text = name.length > max ? name.slice(0, max - 1) + '…' : name;
        ctx.fillStyle = matched ? '#1f1f23' : '#8a8a93';
        ctx.fillText(text, px + 3, y + rh / 2);
      }
    }
  }
  ctx.globalAlpha = 1;
  if (o.hover) {
    const [d, i] = o.hover;
    const lv = g.levels[d];
    if (lv && i < lv.x.length) {
      const px = (lv.x[i] - o.x0) * scale;
      const pw = lv.w[i] * scale;
      ctx.strokeStyle = '#111';
      ctx.lineWidth = 1.5;
      ctx.strokeRect(Math.max(px, 0) + 0.75, levelTop(g, d, o) + 0.75, Math.min(pw, width) - 2, rh - 2.5);
    }
  }
  return drawn;
}
