import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { TimeseriesResponse } from '../api';
import { formatValue } from '../format';

interface Props {
  data: TimeseriesResponse;
  unit: string;
  fromMs: number;
  untilMs: number;
  /** Called with the range dragged over, in ms. */
  onSelect: (fromMs: number, untilMs: number) => void;
  color?: string;
  testId?: string;
  /** Shaded ranges, e.g. the other side of a comparison. */
  marks?: { fromMs: number; untilMs: number; color: string }[];
  height?: number;
}

/** Samples over time; drag across it to choose the range. */
export function TimeChart({ data, unit, fromMs, untilMs, onSelect, color = '#e4572e', testId, marks = [], height = 140 }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const select = useRef(onSelect);
  select.current = onSelect;

  useEffect(() => {
    const box = el.current;
    if (!box) return;
    // Steps without data are zero: fill them so gaps show as gaps.
    const step = Math.max(data.step_ms || 10_000, Math.ceil((untilMs - fromMs) / 5000));
    const start = Math.floor(fromMs / step) * step;
    const n = Math.max(1, Math.ceil((untilMs - start) / step));
    const xs: number[] = [];
    const ys: number[] = new Array(n).fill(0);
    for (let k = 0; k < n; k++) xs.push((start + k * step) / 1000);
    // The server's steps need not start where this grid does: each point
    // goes to the step it falls in.
    for (const s of data.series) {
      for (const [t, v] of s.points) {
        const k = Math.floor((t - start) / step);
        if (k >= 0 && k < n) ys[k] += v;
      }
    }
    const opts: uPlot.Options = {
      width: box.clientWidth || 800,
      height,
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: false },
      scales: { x: { time: true, min: fromMs / 1000, max: untilMs / 1000 } },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' } },
        {
          stroke: '#555',
          grid: { stroke: '#eee' },
          size: 80,
          values: (_u, vals) => vals.map((v) => formatValue(v, unit)),
        },
      ],
      series: [
        {},
        {
          label: 'value',
          stroke: color,
          width: 1.5,
          fill: color + '33',
          paths: uPlot.paths.stepped!({ align: 1 }),
          points: { show: false },
        },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const a = u.posToVal(u.select.left, 'x') * 1000;
            const b = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            select.current(Math.round(a), Math.round(b));
          },
        ],
        draw: [
          (u) => {
            const ctx = u.ctx;
            for (const m of marks) {
              const l = u.valToPos(m.fromMs / 1000, 'x', true);
              const r = u.valToPos(m.untilMs / 1000, 'x', true);
              ctx.save();
              ctx.fillStyle = m.color;
              ctx.fillRect(l, u.bbox.top, Math.max(r - l, 1), u.bbox.height);
              ctx.restore();
            }
          },
        ],
      },
    };
    const plot = new uPlot(opts, [xs, ys], box);
    const ro = new ResizeObserver(() => plot.setSize({ width: box.clientWidth, height }));
    ro.observe(box);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [data, unit, fromMs, untilMs, color, height, JSON.stringify(marks)]);

  return <div class="chart" ref={el} data-testid={testId} title="Drag across the chart to choose a time range" />;
}
