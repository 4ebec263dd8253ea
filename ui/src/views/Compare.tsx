import { useMemo, useState } from 'preact/hooks';
import { api, unitOf, type DiffRow } from '../api';
import { maxNodesFor, useLoad, useViewportWidth } from '../hooks';
import { setParams, type Params } from '../router';
import { QueryBar } from '../components/QueryBar';
import { TimeChart } from '../components/TimeChart';
import { Empty, ErrorBox, Loading } from '../components/States';
import { FlameGraph } from '../flame/FlameGraph';
import { decodeDiff, matchNames, matchedShare } from '../flame/model';
import { diffColor } from '../flame/render';
import { abs, resolveTime } from '../time';
import { formatValue, pct, pp } from '../format';

const DAY = 86400e3;

export function Compare({ params }: { params: Params }) {
  const query = params.query ?? '{}';
  const from = params.from ?? 'now-1h';
  const until = params.until ?? 'now';
  const baseQuery = params.base_query ?? query;
  const baseFrom = params.base_from ?? 'now-2h';
  const baseUntil = params.base_until ?? 'now-1h';
  const search = params.search ?? '';
  const flame = params.mode === 'flame';
  const width = useViewportWidth();
  const maxNodes = maxNodesFor(width);

  const base = { query: baseQuery, from: baseFrom, until: baseUntil };
  const target = { query, from, until };
  const diff = useLoad((s) => api.diff(base, target, maxNodes, s), [baseQuery, baseFrom, baseUntil, query, from, until, maxNodes]);
  const baseTs = useLoad((s) => api.timeseries(baseQuery, { from: baseFrom, until: baseUntil }, s), [baseQuery, baseFrom, baseUntil]);
  const targetTs = useLoad((s) => api.timeseries(query, { from, until }, s), [query, from, until]);

  const graph = useMemo(() => {
    const d = diff.data;
    if (!d) return null;
    return decodeDiff(d.flamegraph, {
      baseTotal: d.diff.base_total,
      targetTotal: d.diff.target_total,
      baseSamples: d.diff.base_samples,
      targetSamples: d.diff.target_samples,
    });
  }, [diff.data]);
  const share = useMemo(() => {
    const m = graph ? matchNames(graph.names, search) : null;
    return graph && m ? matchedShare(graph, m) : null;
  }, [graph, search]);
  const unit = unitOf(diff.data?.profile_type ?? targetTs.data?.profile_type);

  const ms = (s: string, dflt: number) => resolveTime(s) ?? dflt;
  const now = Date.now();
  const tFrom = ms(from, now - 3600e3);
  const tUntil = ms(until, now);
  const bFrom = ms(baseFrom, now - 7200e3);
  const bUntil = ms(baseUntil, now - 3600e3);

  // The target's window against the same window earlier (same selector).
  const shifted = (by: number) =>
    setParams({
      from: abs(tFrom),
      until: abs(tUntil),
      base_query: query,
      base_from: abs(tFrom - by),
      base_until: abs(tUntil - by),
    });
  const [moment, setMoment] = useState('');
  const beforeAfter = () => {
    const t = moment ? new Date(moment).getTime() : (tFrom + tUntil) / 2;
    if (Number.isNaN(t)) return;
    const w = Math.max(60e3, (tUntil - tFrom) / (moment ? 1 : 2));
    setParams({
      base_query: query,
      base_from: abs(t - w),
      base_until: abs(t),
      from: abs(t),
      until: abs(Math.min(t + w, Date.now())),
    });
  };

  const d = diff.data?.diff;
  const empty = d && d.base_total === 0 && d.target_total === 0;
  return (
    <div class="view compare" aria-busy={diff.loading || baseTs.loading || targetTs.loading}>
      <div class="sides">
        <div class="side">
          <QueryBar side="Base" query={baseQuery} from={baseFrom} until={baseUntil} onChange={(p) => setParams({ base_query: p.query ?? baseQuery, base_from: p.from ?? baseFrom, base_until: p.until ?? baseUntil })} />
          {baseTs.data && <TimeChart testId="base-chart" height={90} color="#2171b5" data={baseTs.data} unit={unit} fromMs={bFrom} untilMs={bUntil} onSelect={(a, b) => setParams({ base_from: abs(a), base_until: abs(b) })} />}
        </div>
        <div class="side">
          <QueryBar side="Target" query={query} from={from} until={until} onChange={(p) => setParams({ ...p })} />
          {targetTs.data && <TimeChart testId="target-chart" height={90} color="#de2d26" data={targetTs.data} unit={unit} fromMs={tFrom} untilMs={tUntil} onSelect={(a, b) => setParams({ from: abs(a), until: abs(b) })} />}
        </div>
      </div>
      <div class="toolbar">
        <span class="muted">Compare the target with:</span>
        <button data-testid="vs-day" onClick={() => shifted(DAY)}>
          Same window 1 day earlier
        </button>
        <button data-testid="vs-week" onClick={() => shifted(7 * DAY)}>
          1 week earlier
        </button>
        <span class="muted">or split at</span>
        <input type="datetime-local" step="1" data-testid="moment" value={moment} onInput={(e) => setMoment((e.target as HTMLInputElement).value)} title="A moment (a deploy, say); empty means the middle of the target range" />
        <button data-testid="before-after" onClick={beforeAfter}>
          Before / after this moment
        </button>
      </div>
      {diff.error ? (
        <ErrorBox error={diff.error} what="the comparison" />
      ) : !diff.data || !graph ? (
        <Loading what="the comparison" />
      ) : empty ? (
        <Empty>
          <h3>No profiles on either side</h3>
          <p>Neither selection has samples in its range. Widen the ranges, or check the selectors.</p>
        </Empty>
      ) : (
        <>
          <div class="toolbar">
            <input class="search" data-testid="search" type="search" placeholder="Search functions (text or /regex/)" value={search} onInput={(e) => setParams({ search: (e.target as HTMLInputElement).value }, true)} />
            {search && share && (
              <span class="match-share" data-testid="search-share">
                Matching frames: <b>{pct(share.base)}</b> → <b>{pct(share.target)}</b>
              </span>
            )}
            <span class="spacer" />
            <Legend />
            <div class="toggle" role="group" aria-label="Orientation">
              <button class={!flame ? 'on' : ''} onClick={() => setParams({ mode: '' })}>
                Icicle
              </button>
              <button class={flame ? 'on' : ''} onClick={() => setParams({ mode: 'flame' })}>
                Flame
              </button>
            </div>
          </div>
          <div class="panes">
            <section class="pane left">
              <h3>
                Changes <span class="muted small">base {formatValue(d!.base_total, unit)} · target {formatValue(d!.target_total, unit)}</span>
              </h3>
              <DiffTable rows={d!.rows} />
            </section>
            <section class="pane right">
              <h3>Diff flame graph</h3>
              <FlameGraph testId="diff-flamegraph" graph={graph} unit={unit} flame={flame} search={search} />
            </section>
          </div>
        </>
      )}
    </div>
  );
}

function Legend() {
  return (
    <span class="legend" title="Colour: change in share; intensity: significance (Benjamini–Hochberg q < 0.05). Grey: within noise.">
      <i style={{ background: diffColor(-1) }} /> shrank
      <i style={{ background: diffColor(-0.4) }} />
      <i style={{ background: diffColor(0) }} /> noise
      <i style={{ background: diffColor(0.4) }} />
      <i style={{ background: diffColor(1) }} /> grew
    </span>
  );
}

type Key = 'server' | 'change' | 'name';

function DiffTable({ rows }: { rows: DiffRow[] }) {
  const [key, setKey] = useState<Key>('server');
  const [filter, setFilter] = useState('');
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const out = f ? rows.filter((r) => r.name.toLowerCase().includes(f)) : rows.slice();
    if (key === 'change') out.sort((a, b) => Math.abs(b.total_percent_change) - Math.abs(a.total_percent_change));
    if (key === 'name') out.sort((a, b) => a.name.localeCompare(b.name));
    return out.slice(0, 300);
  }, [rows, key, filter]);
  return (
    <div class="table-wrap">
      <input class="filter" placeholder="Filter functions" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      <table class="grid" data-testid="diff-table">
        <thead>
          <tr>
            <th class="name" onClick={() => setKey('name')}>Function</th>
            <th class="num">Base</th>
            <th class="num">Target</th>
            <th class="num" onClick={() => setKey('change')} title="Change in total share, percentage points">
              Change
            </th>
            <th class="num" onClick={() => setKey('server')} title="Significant first (q < 0.05), then by size of change">
              q
            </th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr data-function={r.name} data-significant={r.significant ? 'yes' : 'no'} class={r.significant ? 'sig' : ''}>
              <td class="name mono" title={r.name}>
                <i class="swatch" style={{ background: diffColor(r.significant ? Math.sign(r.total_percent_change) : 0) }} />
                {r.name}
              </td>
              <td class="num">{pct(r.base_total_percent / 100)}</td>
              <td class="num">{pct(r.target_total_percent / 100)}</td>
              <td class="num" data-col="change">{pp(r.total_percent_change)}</td>
              <td class="num" data-col="q" title={`${r.test} test, p = ${r.p_value.toExponential(2)}`}>
                {r.significant ? <b>{fmtQ(r.q_value)}</b> : <span class="muted">{fmtQ(r.q_value)}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function fmtQ(q: number): string {
  if (q < 1e-4) return q.toExponential(0);
  return q.toFixed(q < 0.01 ? 4 : 2);
}
