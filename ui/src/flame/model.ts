// Flame graphs decoded from the server's flamebearer encoding into flat typed
// arrays per level: drawing 20,000 nodes then walks arrays, not objects.

import type { FlatDiff, FlatFlame } from '../api';

export interface Level {
  /** Left edge and width as fractions of the root's width. */
  x: Float64Array;
  w: Float64Array;
  /** Values (the target's in a diff). */
  total: Float64Array;
  self: Float64Array;
  name: Int32Array;
  /** Index of the parent in the previous level (-1 for the root). */
  parent: Int32Array;
  /** Diffs only: the base's values. */
  baseTotal?: Float64Array;
  baseSelf?: Float64Array;
  /**
   * Diffs only: -1..1, the sign telling whether the node's share shrank or
   * grew and the size its significance; 0 when the change is within noise.
   */
  change?: Float32Array;
}

export interface DiffInfo {
  baseTotal: number;
  targetTotal: number;
  baseSamples: number;
  targetSamples: number;
}

export interface Graph {
  names: string[];
  levels: Level[];
  /** The root's value (the target's in a diff). */
  total: number;
  diff?: DiffInfo;
  nodes: number;
}

function fillParents(levels: Level[]) {
  for (let d = 1; d < levels.length; d++) {
    const up = levels[d - 1];
    const lv = levels[d];
    let p = 0;
    for (let i = 0; i < lv.x.length; i++) {
      // Children lie inside their parent; both levels are sorted by x.
      const eps = 1e-12;
      while (p + 1 < up.x.length && up.x[p] + up.w[p] <= lv.x[i] + eps) p++;
      lv.parent[i] = p;
    }
  }
}

function emptyLevel(n: number, diff: boolean): Level {
  const lv: Level = {
    x: new Float64Array(n),
    w: new Float64Array(n),
    total: new Float64Array(n),
    self: new Float64Array(n),
    name: new Int32Array(n),
    parent: new Int32Array(n).fill(-1),
  };
  if (diff) {
    lv.baseTotal = new Float64Array(n);
    lv.baseSelf = new Float64Array(n);
    lv.change = new Float32Array(n);
  }
  return lv;
}

/**
 * Decodes a flame graph. With `dropRoot`, the root ("total") is left out:
 * a sandwich's trees have the function as the root's only child, and it
 * reads better as the root itself.
 */
export function decodeFlame(f: FlatFlame, dropRoot = false): Graph {
  const total = f.total || 1;
  let nodes = 0;
  let rows = f.levels;
  if (dropRoot && rows.length > 1 && rows[1].length === 4) rows = rows.slice(1);
  const levels = rows.map((row) => {
    const n = Math.floor(row.length / 4);
    const lv = emptyLevel(n, false);
    let x = 0;
    for (let i = 0; i < n; i++) {
      x += row[4 * i];
      lv.x[i] = x / total;
      lv.w[i] = row[4 * i + 1] / total;
      lv.total[i] = row[4 * i + 1];
      lv.self[i] = row[4 * i + 2];
      lv.name[i] = row[4 * i + 3];
      x += row[4 * i + 1];
    }
    nodes += n;
    return lv;
  });
  fillParents(levels);
  return { names: f.names, levels, total: f.total, nodes };
}

/**
 * A diff: each node is laid out at the mean of its base and target shares,
 * so both sides keep their nesting, and coloured by the server's test of its
 * share (Benjamini–Hochberg over all nodes, as the diff table is).
 */
export function decodeDiff(f: FlatDiff, info: DiffInfo): Graph {
  const bt = f.base_total || 1;
  const tt = f.target_total || 1;
  let nodes = 0;
  const levels = f.levels.map((row) => {
    const n = Math.floor(row.length / 7);
    const lv = emptyLevel(n, true);
    let xb = 0;
    let xt = 0;
    for (let i = 0; i < n; i++) {
      const o = 7 * i;
      xb += row[o];
      xt += row[o + 3];
      lv.x[i] = (xb / bt + xt / tt) / 2;
      lv.w[i] = (row[o + 1] / bt + row[o + 4] / tt) / 2;
      lv.baseTotal![i] = row[o + 1];
      lv.baseSelf![i] = row[o + 2];
      lv.total[i] = row[o + 4];
      lv.self[i] = row[o + 5];
      lv.name[i] = row[o + 6];
      xb += row[o + 1];
      xt += row[o + 4];
    }
    nodes += n;
    return lv;
  });
  // One test per node, in the order of the levels.
  let k = 0;
  for (const lv of levels) {
    for (let i = 0; i < lv.x.length; i++, k++) {
      if (!f.significant[k]) continue;
      const q = f.q_values[k] ?? 1;
      const grew = lv.total[i] / tt > lv.baseTotal![i] / bt;
      // q = 0.05 is faint, q = 1e-10 and below is full colour.
      const strength = Math.min(1, 0.25 + (0.75 * Math.log10(0.05 / Math.max(q, 1e-300))) / 8.7);
      lv.change![i] = grew ? strength : -strength;
    }
  }
  fillParents(levels);
  return { names: f.names, levels, total: f.target_total, diff: info, nodes };
}

/** Which names match a search: a case-insensitive substring, or /regex/. */
export function matchNames(names: string[], search: string): Uint8Array | null {
  const s = search.trim();
  if (!s) return null;
  let test: (n: string) => boolean;
  const re = /^\/(.+)\/([a-z]*)$/.exec(s);
  if (re) {
    try {
      const r = new RegExp(re[1], re[2].includes('i') ? 'i' : '');
      test = (n) => r.test(n);
    } catch {
      const lower = s.toLowerCase();
      test = (n) => n.toLowerCase().includes(lower);
    }
  } else {
    const lower = s.toLowerCase();
    test = (n) => n.toLowerCase().includes(lower);
  }
  const out = new Uint8Array(names.length);
  names.forEach((n, i) => (out[i] = test(n) ? 1 : 0));
  return out;
}

/**
 * The combined share of the frames matching a search: each stack counted
 * once however many matching frames it has (a match below a match adds
 * nothing). The root never counts.
 */
export function matchedShare(g: Graph, matches: Uint8Array): { target: number; base: number } {
  let target = 0;
  let base = 0;
  let covered = new Uint8Array(0);
  g.levels.forEach((lv, d) => {
    const next = new Uint8Array(lv.x.length);
    for (let i = 0; i < lv.x.length; i++) {
      const up = d > 0 && covered[lv.parent[i]] === 1;
      const m = d > 0 && matches[lv.name[i]] === 1;
      if (m && !up) {
        target += lv.total[i];
        if (lv.baseTotal) base += lv.baseTotal[i];
      }
      next[i] = up || m ? 1 : 0;
    }
    covered = next;
  });
  const bt = g.diff ? g.diff.baseTotal : 0;
  return { target: g.total ? target / g.total : 0, base: bt ? base / bt : 0 };
}

/** The largest node index of the level whose left edge is at most `x`. */
export function nodeAt(lv: Level, x: number): number {
  let lo = 0;
  let hi = lv.x.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lv.x[mid] <= x) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found >= 0 && x < lv.x[found] + lv.w[found]) return found;
  return -1;
}
