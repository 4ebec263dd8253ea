import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Graph } from './model';
import { matchNames, nodeAt } from './model';
import { draw, graphHeight, levelTop, ROW_HEIGHT } from './render';
import { formatValue, pct, pp } from '../format';

interface Props {
  graph: Graph;
  unit: string;
  /** Root at the bottom. */
  flame: boolean;
  search: string;
  /** Asked for a function's sandwich view (right click). */
  onFunction?: (name: string) => void;
  testId?: string;
}

interface Zoom {
  x0: number;
  x1: number;
  depth: number;
}

const NO_ZOOM: Zoom = { x0: 0, x1: 1, depth: 0 };

/** A canvas flame graph: click zooms, hover explains, search highlights. */
export function FlameGraph({ graph, unit, flame, search, onFunction, testId }: Props) {
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(0);
  const [zoom, setZoom] = useState<Zoom>(NO_ZOOM);
  const [hover, setHover] = useState<{ d: number; i: number; x: number; y: number } | null>(null);
  const matches = useMemo(() => matchNames(graph.names, search), [graph, search]);

  useEffect(() => setZoom(NO_ZOOM), [graph]);

  useLayoutEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);

  const height = graphHeight(graph);
  const opts = { flame, rowHeight: ROW_HEIGHT };

  useLayoutEffect(() => {
    const c = canvas.current;
    if (!c || width === 0) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    draw(ctx, graph, width, {
      ...zoom,
      focusDepth: zoom.depth,
      flame,
      rowHeight: ROW_HEIGHT,
      matches,
      hover: hover ? [hover.d, hover.i] : null,
    });
  }, [graph, width, height, zoom, flame, matches, hover?.d, hover?.i]);

  const hit = (e: MouseEvent): { d: number; i: number } | null => {
    const c = canvas.current;
    if (!c) return null;
    const r = c.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const row = Math.floor(y / ROW_HEIGHT);
    const d = flame ? graph.levels.length - 1 - row : row;
    const lv = graph.levels[d];
    if (!lv) return null;
    const fx = zoom.x0 + (x / width) * (zoom.x1 - zoom.x0);
    const i = nodeAt(lv, fx);
    return i < 0 ? null : { d, i };
  };

  const onMove = (e: MouseEvent) => {
    const h = hit(e);
    const r = wrap.current?.getBoundingClientRect();
    if (!h || !r) return setHover(null);
    setHover({ ...h, x: e.clientX - r.left, y: e.clientY - r.top });
  };

  const onClick = (e: MouseEvent) => {
    const h = hit(e);
    if (!h || h.d === 0) return setZoom(NO_ZOOM);
    const lv = graph.levels[h.d];
    setZoom({ x0: lv.x[h.i], x1: lv.x[h.i] + lv.w[h.i], depth: h.d });
  };

  const onContext = (e: MouseEvent) => {
    const h = hit(e);
    if (!h || h.d === 0 || !onFunction) return;
    e.preventDefault();
    onFunction(graph.names[graph.levels[h.d].name[h.i]]);
  };

  const zoomed = zoom.x0 > 0 || zoom.x1 < 1;
  return (
    <div class="flame-wrap" ref={wrap} data-testid={testId} data-nodes={graph.nodes}>
      {zoomed && (
        <button class="reset-zoom" onClick={() => setZoom(NO_ZOOM)}>
          Reset zoom
        </button>
      )}
      <canvas
        ref={canvas}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
        onClick={onClick}
        onContextMenu={onContext}
        style={{ cursor: hover ? 'pointer' : 'default' }}
      />
      {hover && (
        <Tooltip
          graph={graph}
          unit={unit}
          d={hover.d}
          i={hover.i}
          x={hover.x}
          y={hover.y}
          width={width}
          top={levelTop(graph, hover.d, opts)}
          sandwich={!!onFunction}
        />
      )}
    </div>
  );
}

function Tooltip(p: {
  graph: Graph;
  unit: string;
  d: number;
  i: number;
  x: number;
  y: number;
  top: number;
  width: number;
  sandwich: boolean;
}) {
  const lv = p.graph.levels[p.d];
  const name = p.graph.names[lv.name[p.i]];
  const total = lv.total[p.i];
  const self = lv.self[p.i];
  const left = Math.min(p.x + 14, Math.max(0, p.width - 380));
  const style = { left: `${left}px`, top: `${p.y + 16}px` };
  if (p.graph.diff && lv.baseTotal && lv.change) {
    const bt = p.graph.diff.baseTotal || 1;
    const tt = p.graph.diff.targetTotal || 1;
    const b = lv.baseTotal[p.i] / bt;
    const t = total / tt;
    const c = lv.change[p.i];
    return (
      <div class="tooltip" style={style} role="tooltip">
        <div class="tt-name">{name}</div>
        <table>
          <tr>
            <td>Base</td>
            <td>{pct(b)}</td>
            <td>{formatValue(lv.baseTotal[p.i], p.unit)}</td>
          </tr>
          <tr>
            <td>Target</td>
            <td>{pct(t)}</td>
            <td>{formatValue(total, p.unit)}</td>
          </tr>
          <tr>
            <td>Change</td>
            <td>{pp((t - b) * 100)}</td>
            <td>{c === 0 ? 'within noise' : c > 0 ? 'grew (significant)' : 'shrank (significant)'}</td>
          </tr>
        </table>
      </div>
    );
  }
  const rootTotal = p.graph.total || 1;
  return (
    <div class="tooltip" style={style} role="tooltip">
      <div class="tt-name">{name}</div>
      <table>
        <tr>
          <td>Total</td>
          <td>{pct(total / rootTotal)}</td>
          <td>{formatValue(total, p.unit)}</td>
        </tr>
        <tr>
          <td>Self</td>
          <td>{pct(self / rootTotal)}</td>
          <td>{formatValue(self, p.unit)}</td>
        </tr>
      </table>
      <div class="tt-hint">Click to zoom{p.sandwich ? ' · right-click for callers and callees' : ''}</div>
    </div>
  );
}
