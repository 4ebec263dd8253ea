// Render benchmark: synthetic flame graphs of a given node count, decoded
// and drawn by the same code as the views. Driven by bench/render.mjs.

import type { FlatFlame } from './api';
import { decodeFlame } from './flame/model';
import { draw, graphHeight, ROW_HEIGHT } from './flame/render';

/** A random call tree of exactly `n` nodes in the server's encoding. */
export function syntheticFlame(n: number, seed = 1): FlatFlame {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  // Nodes as (parent, self); children get a random parent among recent
  // nodes, which gives deep and bushy parts like real profiles.
  const parent = new Int32Array(n).fill(-1);
  const depth = new Int32Array(n);
  const self = new Float64Array(n);
  for (let i = 1; i < n; i++) {
    const back = Math.floor(rand() * Math.min(i, 64));
    let p = i - 1 - back;
    if (depth[p] >= 60) p = Math.floor(rand() * i * 0.1);
    parent[i] = p;
    depth[i] = depth[p] + 1;
    self[i] = Math.floor(rand() * rand() * 1000);
  }
  const total = Float64Array.from(self);
  for (let i = n - 1; i > 0; i--) total[parent[i]] += total[i];
  const children: number[][] = Array.from({ length: n }, () => []);
  for (let i = 1; i < n; i++) children[parent[i]].push(i);
  const names = Array.from({ length: Math.max(1, Math.floor(n / 3)) }, (_, k) => `module_${k % 97}::function_${k}`);
  names[0] = 'total';
  const levels: number[][] = [];
  const levelEnd: number[] = [];
  const x = new Float64Array(n);
  const stack = [0];
  while (stack.length) {
    const i = stack.pop()!;
    const d = depth[i];
    if (!levels[d]) {
      levels[d] = [];
      levelEnd[d] = 0;
    }
    levels[d].push(x[i] - levelEnd[d], total[i], self[i], i === 0 ? 0 : 1 + (i % (names.length - 1 || 1)));
    levelEnd[d] = x[i] + total[i];
    let cx = x[i];
    const ch = children[i];
    for (const c of ch) {
      x[c] = cx;
      cx += total[c];
    }
    for (let k = ch.length - 1; k >= 0; k--) stack.push(ch[k]);
  }
  return { names, levels, total: total[0], max_self: Math.max(...self) };
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

declare global {
  interface Window {
    runBench: (n: number, width?: number, repeats?: number) => Promise<BenchResult>;
  }
}

export interface BenchResult {
  nodes: number;
  levels: number;
  decodeMs: number;
  drawMs: number;
  drawnRects: number;
}

window.runBench = async (n, width = 1920, repeats = 15) => {
  const flat = syntheticFlame(n);
  const canvas = document.getElementById('c') as HTMLCanvasElement;
  const decodes: number[] = [];
  const draws: number[] = [];
  let drawn = 0;
  let levels = 0;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const g = decodeFlame(flat);
    const t1 = performance.now();
    const h = graphHeight(g);
    canvas.width = width;
    canvas.height = h;
    const ctx = canvas.getContext('2d')!;
    drawn = draw(ctx, g, width, { x0: 0, x1: 1, flame: false, rowHeight: ROW_HEIGHT, matches: null, focusDepth: 0, hover: null });
    // Reading a pixel waits for the drawing to finish, not just be queued.
    ctx.getImageData(0, 0, 1, 1);
    const t2 = performance.now();
    decodes.push(t1 - t0);
    draws.push(t2 - t1);
    levels = g.levels.length;
    await new Promise((r) => requestAnimationFrame(() => r(null)));
  }
  return { nodes: n, levels, decodeMs: median(decodes), drawMs: median(draws), drawnRects: drawn };
};
