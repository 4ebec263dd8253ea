// Peer for the flame graph render benchmark: the same synthetic trees as
// perfpilot's bench page (syntheticFlame from ui/src/bench.ts), drawn by
// Pyroscope's own flame graph component. Driven by ui/bench/render.mjs.
//
// Two figures per draw:
// - renderMs: the whole component path a page pays when handed a profile —
//   FlamegraphRenderer mounted with flushSync (it copies and decodes the
//   levels, renders React, and draws its canvas in an effect), up to a pixel
//   read back from that canvas;
// - canvasMs: Pyroscope's canvas drawing class alone (new Flamegraph(...)
//   .render()) on levels decoded beforehand, up to a pixel read back: the
//   like-for-like figure for perfpilot's draw().

import { createElement } from 'react';
import { flushSync } from 'react-dom';
import { createRoot, type Root } from 'react-dom/client';
import { Maybe } from 'true-myth';
import { DefaultPalette, Flamegraph, FlamegraphRenderer } from '@pyroscope/flamegraph';
import '@pyroscope/flamegraph/dist/index.css';
import { syntheticFlame } from '../../../src/bench';

type Flat = ReturnType<typeof syntheticFlame>;

export interface PeerResult {
  nodes: number;
  levels: number;
  /** Median of the component path (see above). */
  renderMs: number;
  /** Median of the canvas class alone. */
  canvasMs: number;
  renderRuns: number[];
  canvasRuns: number[];
  /** Fewest painted pixels over the runs' component canvases, and its size. */
  paintedPx: number;
  canvasPx: [number, number];
  /** Fewest painted pixels over the runs' canvas-class canvases. */
  paintedPxCanvas: number;
}

declare global {
  interface Window {
    runPeer: (n: number, width?: number, repeats?: number) => Promise<PeerResult>;
    peerRects: (n: number, width?: number) => { canvas: number; component: number };
    showPeer: (n: number, width?: number) => void;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = () => new Promise((r) => requestAnimationFrame(() => r(null)));

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Pixels that are neither transparent nor (near) white. */
function painted(canvas: HTMLCanvasElement): number {
  const { width, height } = canvas;
  if (!width || !height) return 0;
  const d = canvas.getContext('2d')!.getImageData(0, 0, width, height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && !(d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245)) n++;
  }
  return n;
}

/** The profile as perfpilot's server sends it (offsets still relative). */
function profileOf(flat: Flat) {
  return {
    version: 1,
    flamebearer: { names: flat.names, levels: flat.levels, numTicks: flat.total, maxSelf: flat.max_self },
    metadata: { format: 'single', units: 'samples', spyName: 'unknown', sampleRate: 100 },
  };
}

/**
 * What the component hands its canvas class: levels with absolute offsets.
 * Done here, untimed, so canvasMs is drawing only.
 */
function decodedOf(flat: Flat) {
  const levels = flat.levels.map((row) => {
    const out = row.slice();
    let right = 0;
    for (let i = 0; i < out.length; i += 4) {
      out[i] += right;
      right = out[i] + out[i + 1];
    }
    return out;
  });
  return {
    format: 'single',
    names: flat.names,
    levels,
    numTicks: flat.total,
    maxSelf: flat.max_self,
    sampleRate: 100,
    units: 'samples',
    spyName: 'unknown',
  };
}

let root: Root | null = null;
let hostWidth = 0;

function mount(n: number, key: string, profile: ReturnType<typeof profileOf>) {
  root!.render(
    createElement(FlamegraphRenderer, {
      key: `${n}-${key}`,
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      profile: profile as any,
      onlyDisplay: 'flamegraph',
      showToolbar: false,
      showCredit: false,
      colorMode: 'light',
    }),
  );
}

/**
 * The element the component mounts in, sized so that its canvas is `width`
 * CSS pixels wide like perfpilot's (the component pads its pane).
 */
function host(width: number): HTMLElement {
  const el = document.getElementById('root')!;
  if (!root) root = createRoot(el);
  if (hostWidth !== width) {
    el.style.width = `${width}px`;
    flushSync(() => mount(0, 'calibrate', profileOf(syntheticFlame(10))));
    const c = el.querySelector('canvas.flamegraph-canvas') as HTMLCanvasElement;
    el.style.width = `${2 * width - c.clientWidth}px`;
    flushSync(() => root!.render(null));
    hostWidth = width;
  }
  return el;
}

function rawCanvas(width: number): HTMLCanvasElement {
  const box = document.getElementById('raw')!;
  box.replaceChildren();
  const c = document.createElement('canvas');
  c.style.width = `${width}px`;
  c.style.display = 'block';
  box.appendChild(c);
  return c;
}

function drawRaw(fb: ReturnType<typeof decodedOf>, canvas: HTMLCanvasElement) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const g = new (Flamegraph as any)(fb, canvas, Maybe.nothing(), 'HEAD', '', Maybe.nothing(), DefaultPalette);
  g.render();
}

window.runPeer = async (n, width = 1920, repeats = 15) => {
  const el = host(width);
  const renders: number[] = [];
  const canvases: number[] = [];
  let minPainted = Infinity;
  let minPaintedCanvas = Infinity;
  let size: [number, number] = [0, 0];
  let levels = 0;
  for (let r = 0; r < repeats; r++) {
    const flat = syntheticFlame(n);
    levels = flat.levels.length;
    const profile = profileOf(flat);

    // Component: mount a fresh renderer; flushSync commits it and runs its
    // effects (which draw the canvas) before returning.
    const t0 = performance.now();
    flushSync(() => mount(n, `${r}-${Math.random()}`, profile));
    const canvas = el.querySelector('canvas.flamegraph-canvas') as HTMLCanvasElement | null;
    if (!canvas) throw new Error('peer: the component rendered no canvas');
    canvas.getContext('2d')!.getImageData(0, 0, 1, 1);
    const t1 = performance.now();
    if (canvas.getAttribute('data-state') !== 'rendered') {
      throw new Error(`peer: canvas not drawn when flushSync returned (data-state=${canvas.getAttribute('data-state')})`);
    }
    renders.push(t1 - t0);
    minPainted = Math.min(minPainted, painted(canvas));
    size = [canvas.width, canvas.height];
    // Unmount untimed, and let the component's debounced resize redraw
    // (50 ms) lapse, so nothing of this run spills into the next.
    flushSync(() => root!.render(null));
    await sleep(60);
    await frame();

    // Canvas class alone, on levels decoded beforehand.
    const fb = decodedOf(flat);
    const c = rawCanvas(width);
    const t2 = performance.now();
    drawRaw(fb, c);
    c.getContext('2d')!.getImageData(0, 0, 1, 1);
    const t3 = performance.now();
    canvases.push(t3 - t2);
    minPaintedCanvas = Math.min(minPaintedCanvas, painted(c));
    await frame();
  }
  document.getElementById('raw')!.replaceChildren();
  return {
    nodes: n,
    levels,
    renderMs: median(renders),
    canvasMs: median(canvases),
    renderRuns: renders,
    canvasRuns: canvases,
    paintedPx: minPainted,
    canvasPx: size,
    paintedPxCanvas: minPaintedCanvas,
  };
};

/**
 * Rectangles the peer fills for an n-node tree, untimed (counts fill()
 * calls): by the canvas class once, and by a mount of the component.
 */
window.peerRects = (n, width = 1920) => {
  const flat = syntheticFlame(n);
  const el = host(width);
  const proto = CanvasRenderingContext2D.prototype;
  const fill = proto.fill;
  let count = 0;
  proto.fill = function (this: CanvasRenderingContext2D, ...args: unknown[]) {
    count++;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (fill as any).apply(this, args);
  } as typeof proto.fill;
  try {
    drawRaw(decodedOf(flat), rawCanvas(width));
    const canvas = count;
    count = 0;
    flushSync(() => mount(n, `rects-${Math.random()}`, profileOf(flat)));
    const component = count;
    if (!el.querySelector('canvas.flamegraph-canvas')) throw new Error('peer: the component rendered no canvas');
    return { canvas, component };
  } finally {
    proto.fill = fill;
    flushSync(() => root!.render(null));
    document.getElementById('raw')!.replaceChildren();
  }
};

/** Leaves the component mounted with an n-node tree, to look at. */
window.showPeer = (n, width = 1920) => {
  host(width);
  flushSync(() => mount(n, `show-${Math.random()}`, profileOf(syntheticFlame(n))));
};
