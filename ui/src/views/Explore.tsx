import { useMemo } from 'preact/hooks';
import { api, unitOf, type SandwichResponse } from '../api';
import { maxNodesFor, useLoad, useViewportWidth } from '../hooks';
import { setParams, type Params } from '../router';
import { QueryBar } from '../components/QueryBar';
import { TimeChart } from '../components/TimeChart';
import { TopTable } from '../components/TopTable';
import { Empty, ErrorBox, Loading } from '../components/States';
import { FlameGraph } from '../flame/FlameGraph';
import { decodeFlame, matchNames, matchedShare } from '../flame/model';
import { abs, resolveTime } from '../time';
import { formatValue, pct } from '../format';

export function Explore({ params }: { params: Params }) {
  const query = params.query ?? '{}';
  const from = params.from ?? 'now-1h';
  const until = params.until ?? 'now';
  const search = params.search ?? '';
  const fn = params.fn ?? '';
  const flame = params.mode === 'flame';
  const range = { from, until };
  const width = useViewportWidth();
  // The flame graph gets about 60% of the page next to the table.
  const maxNodes = maxNodesFor(width * 0.6);

  const ts = useLoad((s) => api.timeseries(query, range, s), [query, from, until]);
  const top = useLoad((s) => api.top(query, range, s), [query, from, until]);
  const fg = useLoad((s) => api.flamegraph(query, range, maxNodes, s), [query, from, until, maxNodes]);
  const sw = useLoad(fn ? (s) => api.sandwich(query, range, fn, maxNodes, s) : null, [query, from, until, fn, maxNodes]);

  const graph = useMemo(() => (fg.data ? decodeFlame(fg.data.flamegraph) : null), [fg.data]);
  const share = useMemo(() => {
    const m = graph ? matchNames(graph.names, search) : null;
    return graph && m ? matchedShare(graph, m).target : null;
  }, [graph, search]);
  const unit = unitOf(fg.data?.profile_type ?? top.data?.profile_type ?? ts.data?.profile_type);
  const fromMs = resolveTime(from) ?? Date.now() - 3600e3;
  const untilMs = resolveTime(until) ?? Date.now();
  const error = top.error ?? fg.error ?? ts.error;
  const empty = top.data && top.data.total === 0;

  return (
    <div class="view explore" aria-busy={ts.loading || top.loading || fg.loading || sw.loading}>
      <QueryBar query={query} from={from} until={until} onChange={(p) => setParams({ ...p, fn: '' })} />
      {error ? (
        <ErrorBox error={error} what="the profile" />
      ) : (
        <>
          <div class="chart-box">
            {ts.data ? (
              <TimeChart
                testId="timechart"
                data={ts.data}
                unit={unit}
                fromMs={fromMs}
                untilMs={untilMs}
                onSelect={(a, b) => setParams({ from: abs(a), until: abs(b) })}
              />
            ) : (
              <Loading what="the time series" />
            )}
          </div>
          {empty ? (
            <Empty>
              <h3>No profiles in this range</h3>
              <p>
                Nothing matches <code>{query}</code> between {from} and {until}. Widen the range, or remove a filter.
              </p>
            </Empty>
          ) : (
            <>
              <div class="toolbar">
                <input
                  class="search"
                  data-testid="search"
                  type="search"
                  placeholder="Search functions (text or /regex/)"
                  value={search}
                  onInput={(e) => setParams({ search: (e.target as HTMLInputElement).value }, true)}
                />
                {search && share !== null && (
                  <span class="match-share" data-testid="search-share">
                    Matching frames: <b>{pct(share)}</b> of the total
                  </span>
                )}
                <span class="spacer" />
                <div class="toggle" role="group" aria-label="Orientation">
                  <button class={!flame ? 'on' : ''} data-testid="mode-icicle" onClick={() => setParams({ mode: '' })}>
                    Icicle
                  </button>
                  <button class={flame ? 'on' : ''} data-testid="mode-flame" onClick={() => setParams({ mode: 'flame' })}>
                    Flame
                  </button>
                </div>
                <a class="button" href={`/api/v1/export?${new URLSearchParams({ query, from, until, format: 'pprof' })}`} download="profile.pb.gz">
                  Download pprof
                </a>
              </div>
              <div class="panes">
                <section class="pane left">
                  <h3>Top functions</h3>
                  {top.data ? (
                    <TopTable rows={top.data.functions} unit={unit} selected={fn} onSelect={(name) => setParams({ fn: name })} />
                  ) : (
                    <Loading what="top functions" />
                  )}
                </section>
                <section class="pane right">
                  {fn ? (
                    <Sandwich fn={fn} data={sw.data} error={sw.error} unit={unit} search={search} onClose={() => setParams({ fn: '' })} onFunction={(name) => setParams({ fn: name })} />
                  ) : (
                    <>
                      <h3>
                        Flame graph{' '}
                        {fg.data && (
                          <span class="muted small">
                            {formatValue(fg.data.flamegraph.total, unit)} · {graph?.nodes.toLocaleString('en-US')} nodes
                          </span>
                        )}
                      </h3>
                      {graph ? (
                        <FlameGraph testId="flamegraph" graph={graph} unit={unit} flame={flame} search={search} onFunction={(name) => setParams({ fn: name })} />
                      ) : (
                        <Loading what="the flame graph" />
                      )}
                    </>
                  )}
                </section>
              </div>
            </>
          )}
        </>
      )}
    </div>
  );
}

function Sandwich(p: {
  fn: string;
  data: SandwichResponse | null;
  error: import('../api').ApiError | null;
  unit: string;
  search: string;
  onClose: () => void;
  onFunction: (name: string) => void;
}) {
  const callers = useMemo(() => (p.data ? decodeFlame(p.data.callers, true) : null), [p.data]);
  const callees = useMemo(() => (p.data ? decodeFlame(p.data.callees, true) : null), [p.data]);
  const total = p.data?.total || 1;
  return (
    <div class="sandwich" data-testid="sandwich">
      <div class="sandwich-head">
        <h3>
          <span class="mono">{p.fn}</span>
        </h3>
        {p.data && (
          <span class="muted small" data-testid="sandwich-stats">
            self {pct(p.data.self_value / total)} · total {pct(p.data.total_value / total)}
          </span>
        )}
        <span class="spacer" />
        <button data-testid="sandwich-close" onClick={p.onClose}>
          Back to the flame graph
        </button>
      </div>
      {p.error && <ErrorBox error={p.error} what="callers and callees" />}
      {!p.error && (!callers || !callees) && <Loading what="callers and callees" />}
      {callers && callees && (
        <>
          <h4>Callers (who calls it, read upward)</h4>
          <FlameGraph testId="sandwich-callers" graph={callers} unit={p.unit} flame={true} search={p.search} onFunction={p.onFunction} />
          <h4>Callees (what it calls, read downward)</h4>
          <FlameGraph testId="sandwich-callees" graph={callees} unit={p.unit} flame={false} search={p.search} onFunction={p.onFunction} />
        </>
      )}
    </div>
  );
}
