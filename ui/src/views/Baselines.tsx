import { useState } from 'preact/hooks';
import { baselines, type BandState, type BaselineFeature, type FeatureMetric } from '../api';
import { useLoad, usePoll } from '../hooks';
import { navigate, setParams, type Params } from '../router';
import { Empty, ErrorBox, Loading } from '../components/States';
import { ago, formatBytes, formatNumber, formatTime } from '../format';

const POLL_MS = 5000;

const SERVICE_WIDE = 'service-wide';

/** A value as a number and its unit, so a range can share one unit. */
interface Parts {
  n: string;
  u: string;
}

/** What a feature is, for people. */
interface Meaning {
  label: string;
  /** A function or series name shown after the label, in monospace. */
  detail?: string;
  parts: (v: number) => Parts;
  /** Order within an endpoint's group. */
  rank: number;
}

const ms = (v: number): Parts => (Math.abs(v) >= 1000 ? { n: formatNumber(v / 1000), u: 's' } : { n: formatNumber(v), u: 'ms' });
const percent = (v: number): Parts => ({ n: formatNumber(v * 100), u: '%' });
const bytes = (v: number): Parts => {
  const [n, u] = formatBytes(v).split(' ');
  return { n, u };
};
const plain = (u: string) => (v: number): Parts => ({ n: formatNumber(v), u });

function byKind(kind: BaselineFeature['kind']): (v: number) => Parts {
  switch (kind) {
    case 'latency':
      return ms;
    case 'memory':
      return bytes;
    case 'error_rate':
      return percent;
    default:
      return plain('');
  }
}

/** `50` → `50`, `999` → `99.9`: the quantile in a `latency_pNN_ms` name. */
function quantile(digits: string): string {
  return digits.length <= 2 ? digits : `${digits.slice(0, 2)}.${digits.slice(2)}`;
}

function meaning(metric: FeatureMetric, kind: BaselineFeature['kind']): Meaning {
  switch (metric.kind) {
    case 'latency_quantile': {
      const q = quantile(metric.quantile);
      return { label: `p${q} latency`, parts: ms, rank: Number(q) / 100 };
    }
    case 'request_rate':
      return { label: 'requests/s', parts: plain('req/s'), rank: 1 };
    case 'error_rate':
      return { label: 'error rate', parts: percent, rank: 2 };
    case 'cpu_cores':
      return { label: 'CPU cores', parts: plain('cores'), rank: 3 };
    case 'cpu_share':
      return { label: 'CPU share of', detail: metric.function, parts: percent, rank: 4 };
    case 'per_thousand_requests': {
      // Cores over requests per second: core-seconds a request, times 1,000.
      if (metric.of.kind === 'cpu_cores') return { label: 'CPU per 1k requests', parts: plain('core·s'), rank: 5 };
      const m = meaning(metric.of, kind);
      return { label: `${m.detail ?? m.label} per 1k requests`, parts: byKind(kind), rank: 5 };
    }
    case 'named':
      return { label: '', detail: metric.name, parts: byKind(kind), rank: 6 };
  }
}

/** The feature's endpoint group and its name without the endpoint, from its typed key. */
function scope(f: BaselineFeature): { endpoint: string; name: string } {
  const { endpoint } = f.key;
  if (endpoint === null) return { endpoint: SERVICE_WIDE, name: f.feature };
  return { endpoint, name: f.feature.slice(endpoint.length + 1) };
}

function join(p: Parts): string {
  if (!p.u) return p.n;
  return p.u === '%' ? `${p.n}%` : `${p.n} ${p.u}`;
}

function range(lo: Parts, hi: Parts): string {
  if (lo.u !== hi.u) return `${join(lo)} – ${join(hi)}`;
  if (lo.n === hi.n) return join(lo);
  return join({ n: `${lo.n}–${hi.n}`, u: lo.u });
}

function warming(s: BandState): { have: number; need: number } | null {
  return typeof s === 'object' && s !== null && 'warming_up' in s ? s.warming_up : null;
}

const STATE_TEXT: Record<string, [string, string]> = {
  ready: ['learned from recent history', 'The band comes from recent windows: no daily or weekly pattern yet.'],
  daily: ['daily profile', 'Recent history shifted by what this time of day usually looks like.'],
  weekly: ['weekly profile', 'Recent history shifted by what this time of the week usually looks like.'],
};

interface Row {
  f: BaselineFeature;
  endpoint: string;
  name: string;
  m: Meaning;
  /** The band, when learned. */
  band: { low: number; high: number } | null;
  last: number | null;
  outside: boolean;
}

function row(f: BaselineFeature): Row {
  const { endpoint, name } = scope(f);
  const { low, high, state } = f.band;
  const band = !warming(state) && low !== null && high !== null ? { low, high } : null;
  const last = f.latest?.[1] ?? null;
  return {
    f,
    endpoint,
    name,
    m: meaning(f.key.metric, f.kind),
    band,
    last,
    outside: band !== null && last !== null && (last < band.low || last > band.high),
  };
}

function matches(r: Row, filter: string): boolean {
  if (!filter) return true;
  const hay = `${r.f.service} ${r.f.feature} ${r.m.label} ${r.m.detail ?? ''}`.toLowerCase();
  return filter
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => hay.includes(w));
}

interface Group {
  endpoint: string;
  rows: Row[];
}

interface ServiceGroup {
  service: string;
  groups: Group[];
  firing: number;
  features: number;
}

/** By service, then service-wide before each endpoint, then features in a fixed order. */
function group(rows: Row[]): ServiceGroup[] {
  const services = new Map<string, Map<string, Row[]>>();
  for (const r of rows) {
    let eps = services.get(r.f.service);
    if (!eps) services.set(r.f.service, (eps = new Map()));
    let list = eps.get(r.endpoint);
    if (!list) eps.set(r.endpoint, (list = []));
    list.push(r);
  }
  const epKey = (e: string) => (e === SERVICE_WIDE ? '' : e === '(other)' ? '\uffff' : `~${e}`);
  return [...services.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, eps]) => {
      const groups = [...eps.entries()]
        .sort(([a], [b]) => (epKey(a) < epKey(b) ? -1 : epKey(a) > epKey(b) ? 1 : 0))
        .map(([endpoint, list]) => ({
          endpoint,
          rows: list.sort((a, b) => a.m.rank - b.m.rank || a.name.localeCompare(b.name)),
        }));
      const all = groups.flatMap((g) => g.rows);
      return { service, groups, firing: all.filter((r) => r.f.firing).length, features: all.length };
    });
}

/**
 * The band as a bar: the band shaded, a tick at the expected value and a
 * marker at the last value, red outside the band. The scale is the band
 * widened by its own width on both sides, so gauges read alike; a value
 * beyond that shows as an arrow at the edge.
 */
function Gauge({ r }: { r: Row }) {
  const W = 150;
  const H = 18;
  const PAD = 6;
  const { expected } = r.f.band;
  let lo: number;
  let hi: number;
  if (r.band) {
    const floor = r.f.kind === 'error_rate' ? 0.01 : Math.max(Math.abs(expected ?? r.band.high) * 0.1, 1e-9);
    const w = Math.max(r.band.high - r.band.low, floor);
    lo = r.band.low - w;
    hi = r.band.high + w;
    if (r.band.low >= 0 && (r.last === null || r.last >= 0)) lo = Math.max(lo, 0);
  } else {
    const c = expected ?? r.last ?? 0;
    const w = Math.max(Math.abs(c) * 0.5, 1e-9);
    lo = c - w;
    hi = c + w;
  }
  const x = (v: number) => PAD + ((v - lo) / (hi - lo)) * (W - 2 * PAD);
  const clampX = (v: number) => Math.min(W - PAD, Math.max(PAD, x(v)));
  const title = [
    r.band ? `band ${range(r.m.parts(r.band.low), r.m.parts(r.band.high))}` : 'no band yet',
    expected !== null ? `expected ${join(r.m.parts(expected))}` : '',
    r.last !== null ? `last ${join(r.m.parts(r.last))}` : 'no value yet',
  ]
    .filter(Boolean)
    .join(' · ');
  const mid = H / 2;
  let marker = null;
  if (r.last !== null) {
    const cls = `gauge-marker${r.outside ? ' outside' : ''}`;
    const mx = x(r.last);
    if (mx > W - PAD) {
      marker = <path class={cls} d={`M${W - 7} 3 L${W - 1} ${mid} L${W - 7} ${H - 3} Z`} data-testid="gauge-marker" data-outside={String(r.outside)} />;
    } else if (mx < PAD) {
      marker = <path class={cls} d={`M7 3 L1 ${mid} L7 ${H - 3} Z`} data-testid="gauge-marker" data-outside={String(r.outside)} />;
    } else {
      marker = <rect class={cls} x={mx - 1.5} y={2} width={3} height={H - 4} rx={1} data-testid="gauge-marker" data-outside={String(r.outside)} />;
    }
  }
  return (
    <svg class="gauge" width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} data-testid="gauge">
      <title>{title}</title>
      <rect class="gauge-track" x={PAD} y={mid - 2} width={W - 2 * PAD} height={4} rx={2} />
      {r.band && (
        <rect
          class="gauge-band"
          x={clampX(r.band.low) - 1}
          y={mid - 5}
          width={Math.max(4, clampX(r.band.high) - clampX(r.band.low) + 2)}
          height={10}
          rx={2}
        />
      )}
      {expected !== null && <line class={`gauge-expected${r.band ? '' : ' estimate'}`} x1={clampX(expected)} x2={clampX(expected)} y1={mid - 6} y2={mid + 6} />}
      {marker}
    </svg>
  );
}

function Learned({ state }: { state: BandState }) {
  const w = warming(state);
  if (w) {
    const share = w.need > 0 ? Math.min(1, w.have / w.need) : 0;
    return (
      <span class="learned warming" title={`No band until ${w.need} windows are seen; ${w.have} so far.`}>
        warming up {w.have}/{w.need}
        <span class="progress" aria-hidden="true">
          <span style={{ width: `${Math.round(share * 100)}%` }} />
        </span>
      </span>
    );
  }
  const [text, title] = STATE_TEXT[state as string] ?? [String(state), ''];
  return (
    <span class={`learned ${String(state)}`} title={title}>
      {text}
    </span>
  );
}

function FeatureRow({ r, at }: { r: Row; at: number }) {
  const { expected } = r.f.band;
  const toAlerts = (e: MouseEvent) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate('/alerts', {});
  };
  return (
    <tr
      class={`feature-row${r.f.firing ? ' firing' : ''}`}
      data-testid="feature-row"
      data-feature={r.f.feature}
      data-firing={String(r.f.firing)}
    >
      <td class="feature-name" title={`${r.f.service} · ${r.f.feature} (${r.f.kind})`}>
        {r.m.label}
        {r.m.detail && <span class="mono">{r.m.label ? ' ' : ''}{r.m.detail}</span>}
      </td>
      <td data-testid="state">
        <Learned state={r.f.band.state} />
      </td>
      <td class="num" data-testid="expected">
        {expected === null ? (
          <span class="muted">—</span>
        ) : r.band ? (
          join(r.m.parts(expected))
        ) : (
          <span class="muted" title="The estimate so far: no band until the warm-up ends.">
            ≈ {join(r.m.parts(expected))}
          </span>
        )}
      </td>
      <td class="num" data-testid="band">
        {r.band ? range(r.m.parts(r.band.low), r.m.parts(r.band.high)) : <span class="muted">—</span>}
      </td>
      <td class="num" data-testid="last">
        {r.last === null ? (
          <span class="muted">no data yet</span>
        ) : (
          <>
            <span class={r.outside ? 'outside' : ''}>{join(r.m.parts(r.last))}</span>
            <span class="muted small when" title={`Window starting ${formatTime(r.f.latest![0])}`}>
              {ago(r.f.latest![0], at)}
            </span>
          </>
        )}
      </td>
      <td class="gauge-cell">
        <Gauge r={r} />
      </td>
      <td class="alert-cell">
        {r.f.firing && (
          <a class="badge firing critical" href="/alerts" onClick={(e) => toAlerts(e as MouseEvent)} title="An alert about this feature fires: see it on the Alerts page" data-testid="firing-link">
            firing ›
          </a>
        )}
      </td>
    </tr>
  );
}

function ServiceSection({ s, at }: { s: ServiceGroup; at: number }) {
  return (
    <section class="section baseline-service" data-testid="service" data-service={s.service}>
      <div class="section-head">
        <h3 data-testid="service-heading">{s.service || '(no service)'}</h3>
        <span class={s.firing > 0 ? 'badge firing critical' : 'count'} data-testid="service-firing">
          {s.firing} firing
        </span>
        <span class="muted small">
          {s.features} {s.features === 1 ? 'feature' : 'features'}
        </span>
      </div>
      <div class="scroll-x">
        <table class="grid baselines-table">
          <thead>
            <tr>
              <th>Feature</th>
              <th>Learned</th>
              <th class="num">Expected</th>
              <th class="num">Band</th>
              <th class="num">Last value</th>
              <th>Last vs band</th>
              <th />
            </tr>
          </thead>
          {s.groups.map((g) => {
            const firing = g.rows.filter((r) => r.f.firing).length;
            return (
              <tbody data-testid="endpoint-group" data-endpoint={g.endpoint}>
                <tr class="group-row">
                  <td colSpan={7}>
                    {g.endpoint === SERVICE_WIDE ? (
                      <span class="group-name">service-wide</span>
                    ) : (
                      <span class="group-name mono">{g.endpoint}</span>
                    )}
                    {firing > 0 && <span class="group-firing">{firing} firing</span>}
                  </td>
                </tr>
                {g.rows.map((r) => (
                  <FeatureRow r={r} at={at} />
                ))}
              </tbody>
            );
          })}
        </table>
      </div>
    </section>
  );
}

/**
 * What normal looks like for every feature the baseline engine follows:
 * by service and endpoint, each feature's learned band, its last value
 * against it, and whether it alerts. Polled every 5 s.
 */
export function Baselines({ params }: { params: Params }) {
  const poll = usePoll(POLL_MS);
  const [bump, setBump] = useState(0);
  const list = useLoad((s) => baselines.list(s), [poll, bump]);
  const filter = params.filter ?? '';
  const firingOnly = params.firing === '1';

  if (list.error) return <ErrorBox error={list.error} what="baselines" />;
  if (!list.data) return <Loading what="baselines" />;
  if (!list.data.enabled) {
    return (
      <Empty>
        <h3>Baselines are off</h3>
        <p>
          Start the server with <code>--baseline-config FILE</code> (a <code>perfpilot baseline watch</code> config) to
          learn what normal looks like for each service and endpoint from request logs, Prometheus and profiles, and see
          the bands here.
        </p>
      </Empty>
    );
  }
  const at = list.data.at_ms;
  const rows = list.data.features.map(row);
  const shown = rows.filter((r) => matches(r, filter) && (!firingOnly || r.f.firing));
  const services = group(shown);
  const firing = rows.filter((r) => r.f.firing).length;
  const warm = rows.filter((r) => warming(r.f.band.state)).length;
  return (
    <div class="view baselines" aria-busy={list.loading}>
      <div class="toolbar">
        <h2 class="title">Baselines</h2>
        <span class="muted" data-testid="baseline-counts">
          {rows.length} features · {firing} firing · {warm} warming up
        </span>
        <input
          class="search"
          data-testid="baseline-filter"
          type="search"
          placeholder="Filter by service or feature"
          value={filter}
          onInput={(e) => setParams({ filter: (e.target as HTMLInputElement).value }, true)}
        />
        <label class="check">
          <input
            type="checkbox"
            data-testid="firing-only"
            checked={firingOnly}
            onChange={(e) => setParams({ firing: (e.target as HTMLInputElement).checked ? '1' : '' }, true)}
          />
          firing only
        </label>
        <span class="spacer" />
        <span class="muted small" title={formatTime(at)}>
          bands at {formatTime(at).slice(11)} · refreshed every {POLL_MS / 1000} s
        </span>
        <button onClick={() => setBump((b) => b + 1)}>Refresh</button>
      </div>
      {rows.length === 0 ? (
        <Empty>
          <h3>Nothing learned yet</h3>
          <p>
            Features appear here once the baseline engine has closed a first window of their request logs, Prometheus
            queries or profiles.
          </p>
        </Empty>
      ) : services.length === 0 ? (
        <Empty>
          <h3>No feature matches</h3>
          <p>
            {filter && (
              <>
                Nothing matches “{filter}”{firingOnly ? ' among the firing features' : ''}.{' '}
              </>
            )}
            {!filter && firingOnly && 'No feature is firing. '}
            <button
              class="link"
              onClick={() => setParams({ filter: '', firing: '' }, true)}
            >
              Show all {rows.length} features
            </button>
          </p>
        </Empty>
      ) : (
        services.map((s) => <ServiceSection s={s} at={at} />)
      )}
    </div>
  );
}
