// The UI against the server's real answers: crates/server/tests/api_contract.rs
// writes these golden files from a running server, and this test (type-checked
// by `tsc`, run by vitest) feeds them to the UI's own decoders. A field the UI
// needs that the server stops sending fails `npm run build`; an answer the
// decoders misread fails here.
import { describe, expect, test } from 'vitest';
import type {
  Evidence,
  Incident,
  AlertsResponse,
  DiffResponse,
  FlamegraphResponse,
  SandwichResponse,
  Series,
  TimeseriesResponse,
  TopResponse,
} from './api';
import { unitOf } from './api';
import { decodeDiff, decodeFlame, type Graph } from './flame/model';
import alertsJson from '../../crates/server/tests/api-golden/alerts.json';
import diffJson from '../../crates/server/tests/api-golden/diff.json';
import flamegraphJson from '../../crates/server/tests/api-golden/flamegraph.json';
import labelValuesJson from '../../crates/server/tests/api-golden/label_values.json';
import labelsJson from '../../crates/server/tests/api-golden/labels.json';
import profileTypesJson from '../../crates/server/tests/api-golden/profile_types.json';
import sandwichJson from '../../crates/server/tests/api-golden/sandwich.json';
import seriesJson from '../../crates/server/tests/api-golden/series.json';
import timeseriesJson from '../../crates/server/tests/api-golden/timeseries.json';
import topJson from '../../crates/server/tests/api-golden/top.json';

// Compile-time: each answer is assignable to the type the views read.
const flamegraph: FlamegraphResponse = flamegraphJson;
const top: TopResponse = topJson;
const sandwich: SandwichResponse = sandwichJson;
const diff: DiffResponse = diffJson;
const labels: { names: string[] } = labelsJson;
const labelValues: { values: string[] } = labelValuesJson;
const profileTypes: { profile_types: string[] } = profileTypesJson;
const series: { series: Record<string, string>[] } = seriesJson;

/** Path from the root (names joined by ';') of every node, with its values. */
function paths(g: Graph): Map<string, { total: number; self: number; change: number }> {
  const out = new Map<string, { total: number; self: number; change: number }>();
  const above: string[][] = [];
  g.levels.forEach((lv, d) => {
    const here: string[] = [];
    for (let i = 0; i < lv.x.length; i++) {
      const name = g.names[lv.name[i]];
      const path = d === 0 ? name : `${above[d - 1][lv.parent[i]]};${name}`;
      here.push(path);
      out.set(path, { total: lv.total[i], self: lv.self[i], change: lv.change?.[i] ?? 0 });
    }
    above.push(here);
  });
  return out;
}

describe('flame graphs', () => {
  test('the merged flame graph decodes to the uploaded stacks', () => {
    const g = decodeFlame(flamegraph.flamegraph);
    expect(g.total).toBe(flamegraph.flamegraph.total);
    const nodes = flamegraph.flamegraph.levels.reduce((n, row) => n + row.length / 4, 0);
    expect(g.nodes).toBe(nodes);
    const p = paths(g);
    // Both windows of shop: parse 80, render 120, gc 20 samples at 10 ms.
    expect(p.get('total;main;handle;render')?.total).toBe(120 * 1e7);
    expect(p.get('total;main;handle')?.total).toBe(200 * 1e7);
    expect(p.get('total;main;gc')?.self).toBe(20 * 1e7);
    // Children never stick out of their parents.
    for (let d = 1; d < g.levels.length; d++) {
      const lv = g.levels[d];
      const up = g.levels[d - 1];
      for (let i = 0; i < lv.x.length; i++) {
        const parent = lv.parent[i];
        expect(lv.x[i]).toBeGreaterThanOrEqual(up.x[parent] - 1e-9);
        expect(lv.x[i] + lv.w[i]).toBeLessThanOrEqual(up.x[parent] + up.w[parent] + 1e-9);
      }
    }
  });

  test("a sandwich's callers and callees have the function at the root", () => {
    const callees = decodeFlame(sandwich.callees, true);
    const callers = decodeFlame(sandwich.callers, true);
    expect(callees.names[callees.levels[0].name[0]]).toBe(sandwich.function);
    expect(callers.names[callers.levels[0].name[0]]).toBe(sandwich.function);
    expect(callees.levels[0].total[0]).toBe(sandwich.total_value);
  });
});

describe('diff', () => {
  test('the flame graph colours what the table calls significant, the same way', () => {
    const d = diff.diff;
    const g = decodeDiff(diff.flamegraph, {
      baseTotal: d.base_total,
      targetTotal: d.target_total,
      baseSamples: d.base_samples,
      targetSamples: d.target_samples,
    });
    const byName = new Map<string, number[]>();
    for (const [path, v] of paths(g)) {
      const name = path.split(';').pop() ?? '';
      byName.set(name, [...(byName.get(name) ?? []), v.change]);
    }
    const significant = d.rows.filter((r) => r.significant);
    expect(significant.length).toBeGreaterThan(0);
    for (const row of d.rows) {
      const changes = byName.get(row.name);
      expect(changes, row.name).toBeDefined();
      if (!row.significant) continue;
      // A function called from one place: its node is the row.
      for (const c of changes ?? []) {
        expect(Math.sign(c), row.name).toBe(Math.sign(row.total_percent_change));
      }
    }
  });
});

describe('tables and series', () => {
  test('top rows are sorted by self time and their shares add up', () => {
    const selfs = top.functions.map((f) => f.self_value);
    expect([...selfs].sort((a, b) => b - a)).toEqual(selfs);
    const share = top.functions.reduce((s, f) => s + f.self_percent, 0);
    expect(share).toBeCloseTo(100, 6);
    expect(unitOf(top.profile_type)).toBe('nanoseconds');
  });

  test('time series points are [ms, value] pairs on the step', () => {
    const ts = timeseriesJson as unknown as TimeseriesResponse;
    expect(ts.series.length).toBeGreaterThan(0);
    const s: Series = ts.series[0];
    for (const p of s.points) {
      expect(p).toHaveLength(2);
      expect(p[0] % ts.step_ms).toBe(0);
    }
    expect(ts.function_series).toBeNull();
  });

  test('labels, values, types and series name what was uploaded', () => {
    expect(labels.names).toContain('service_name');
    expect(labelValues.values).toEqual(['cart', 'shop']);
    expect(profileTypes.profile_types).toHaveLength(1);
    expect(series.series.map((s) => s.service_name).sort()).toEqual(['cart', 'shop']);
  });
});

describe('alerts', () => {
  // Literal unions (state, severity, the metric's kind) are not what JSON
  // imports type as, so this answer is checked at run time.
  const answer = alertsJson as unknown as AlertsResponse;

  test('every incident has what the alerts page reads', () => {
    expect(answer.enabled).toBe(true);
    expect(answer.alerts.length).toBeGreaterThan(0);
    for (const a of answer.alerts as Incident[]) {
      expect(typeof a.id).toBe('string');
      expect(typeof a.service).toBe('string');
      expect(['firing', 'resolved']).toContain(a.state);
      expect(['warning', 'critical']).toContain(a.severity);
      expect(Number.isInteger(a.starts_at_ms)).toBe(true);
      expect(Number.isInteger(a.raised_at_ms)).toBe(true);
      expect(Number.isInteger(a.updated_at_ms)).toBe(true);
      expect(a.resolved_at_ms === null || Number.isInteger(a.resolved_at_ms)).toBe(true);
      expect(a.ack === null || typeof a.ack.by === 'string').toBe(true);
      expect(typeof a.summary).toBe('string');
      expect(a.labels.alertname).toBe('PerfpilotIncident');
      expect(a.labels.incident).toBe(a.id);
      expect(a.findings.length).toBeGreaterThan(0);
      for (const e of a.findings as Evidence[]) {
        expect(typeof e.feature).toBe('string');
        expect(typeof e.detector).toBe('string');
        expect(Number.isInteger(e.since_ms)).toBe(true);
        expect(Number.isInteger(e.count)).toBe(true);
        expect(typeof e.message).toBe('string');
      }
    }
    expect(answer.received).toEqual([]);
  });

  test("a finding's typed feature key says what its feature says", () => {
    const [latency, errors] = answer.alerts[0].findings;
    expect(latency.feature).toBe('/search latency_p99_ms');
    expect(latency.feature_key).toEqual({
      endpoint: '/search',
      metric: { kind: 'latency_quantile', quantile: '99' },
    });
    expect(latency.expected?.high).toBe(200);
    expect(errors.feature_key).toEqual({ endpoint: null, metric: { kind: 'error_rate' } });
  });
});
