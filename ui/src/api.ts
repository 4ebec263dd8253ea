// The server's query API (docs/API.md), typed for the views.

export interface FlatFlame {
  names: string[];
  levels: number[][];
  total: number;
  max_self: number;
}

export interface FlamegraphResponse {
  profile_type: string | null;
  unit: string | null;
  from: number;
  until: number;
  flamegraph: FlatFlame;
}

export interface TopRow {
  name: string;
  self_value: number;
  total_value: number;
  self_percent: number;
  total_percent: number;
}

export interface TopResponse {
  profile_type: string | null;
  total: number;
  functions: TopRow[];
}

export interface DiffRow {
  name: string;
  base_self: number;
  base_total: number;
  target_self: number;
  target_total: number;
  base_self_percent: number;
  base_total_percent: number;
  target_self_percent: number;
  target_total_percent: number;
  total_percent_change: number;
  p_value: number;
  q_value: number;
  significant: boolean;
  test: string;
}

export interface DiffResponse {
  profile_type: string | null;
  diff: {
    base_total: number;
    target_total: number;
    base_samples: number;
    target_samples: number;
    rows: DiffRow[];
  };
  flamegraph: FlatDiff;
}

export interface FlatDiff {
  names: string[];
  levels: number[][];
  base_total: number;
  target_total: number;
  max_self: number;
  /** Per node, in the order of `levels`: the server's test of its share. */
  p_values: number[];
  q_values: number[];
  significant: boolean[];
}

export interface SandwichResponse {
  profile_type: string | null;
  unit: string | null;
  function: string;
  self_value: number;
  total_value: number;
  total: number;
  callers: FlatFlame;
  callees: FlatFlame;
}

export interface Series {
  labels: Record<string, string>;
  points: [number, number][];
}

export interface TimeseriesResponse {
  profile_type: string | null;
  step_ms: number;
  series: Series[];
  function_series: Series[] | null;
}

/** A failed request, with the server's own message when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly unreachable = false,
  ) {
    super(message);
  }
}

/**
 * Any error of a request as an ApiError. `get` and `post` already turn a
 * fetch that could not reach the server into an unreachable ApiError, so
 * anything else (an answer that is not JSON, say) is not about reaching it.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(e instanceof Error ? e.message : String(e), 0);
}

export interface Range {
  from: string;
  until: string;
}

type Params = Record<string, string | number | undefined>;

export async function get<T>(path: string, params: Params, signal?: AbortSignal): Promise<T> {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '') qs.set(k, String(v));
  }
  let res: Response;
  try {
    res = await fetch(`${path}?${qs}`, { signal, credentials: 'same-origin' });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(
      `Cannot reach the perfpilot server at ${location.origin}: is it running?`,
      0,
      true,
    );
  }
  return answer<T>(res);
}

/** The body of an answer, or an ApiError with the server's own message. */
async function answer<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) {
    let message = text.trim();
    try {
      const body = JSON.parse(text);
      message = body.error ?? body.message ?? message;
    } catch {
      // Not JSON (a proxy's page, say): show it as it came.
    }
    throw new ApiError(message || `${res.status} ${res.statusText}`, res.status);
  }
  return JSON.parse(text) as T;
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(`Cannot reach the perfpilot server at ${location.origin}: is it running?`, 0, true);
  }
  return answer<T>(res);
}

export const api = {
  profileTypes: (r: Range, signal?: AbortSignal) =>
    get<{ profile_types: string[] }>('/api/v1/profile_types', { ...r }, signal),
  labels: (query: string, r: Range, signal?: AbortSignal) =>
    get<{ names: string[] }>('/api/v1/labels', { query, ...r }, signal),
  labelValues: (name: string, query: string, r: Range, signal?: AbortSignal) =>
    get<{ values: string[] }>('/api/v1/label_values', { name, query, ...r }, signal),
  flamegraph: (query: string, r: Range, maxNodes: number, signal?: AbortSignal) =>
    get<FlamegraphResponse>('/api/v1/flamegraph', { query, ...r, max_nodes: maxNodes }, signal),
  top: (query: string, r: Range, signal?: AbortSignal) =>
    get<TopResponse>('/api/v1/top', { query, ...r, limit: 2000 }, signal),
  sandwich: (query: string, r: Range, fn: string, maxNodes: number, signal?: AbortSignal) =>
    get<SandwichResponse>(
      '/api/v1/sandwich',
      { query, ...r, function: fn, max_nodes: maxNodes },
      signal,
    ),
  timeseries: (query: string, r: Range, signal?: AbortSignal) =>
    get<TimeseriesResponse>('/api/v1/timeseries', { query, ...r }, signal),
  diff: (base: { query: string } & Range, target: { query: string } & Range, maxNodes: number, signal?: AbortSignal) =>
    get<DiffResponse>(
      '/api/v1/diff',
      {
        query: target.query,
        from: target.from,
        until: target.until,
        base_query: base.query,
        base_from: base.from,
        base_until: base.until,
        max_nodes: maxNodes,
      },
      signal,
    ),
};

// The autopilot (docs/API.md, "Autopilot").

export type ActionStatus =
  | 'dry-run'
  | 'pending-approval'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'rejected'
  | 'rolled-back';

/** Whether an action made its target better, checked a while after it ran. */
export interface ActionImpact {
  status: 'pending' | 'better' | 'same' | 'worse' | 'unknown';
  signal: string;
  before: number | null;
  after: number | null;
  /** When the verdict is due (Unix ms). */
  due_ms: number;
  rollback: null | 'succeeded' | 'failed';
}

/** One decision of the autopilot and what became of it. */
export interface ActionView {
  id: number;
  at_ms: number;
  policy: string;
  policy_version: number;
  action: string;
  /** `Kind/name`. */
  target: string;
  condition: string;
  /** `name = value` for every value the condition read. */
  readings: string[];
  /** The operation's type. */
  operation: string;
  mode: 'dry-run' | 'enforce';
  approval: 'auto' | 'manual';
  status: ActionStatus;
  by: string | null;
  exit_status: number | null;
  error: string | null;
  // Newer servers only.
  attempts?: number;
  output?: string | null;
  impact?: ActionImpact | null;
}

export interface ActionsResponse {
  mode: 'dry-run' | 'enforce';
  paused: boolean;
  /** Waiting for approval, oldest first. */
  pending: ActionView[];
  /** Recent decisions, newest first. */
  recent: ActionView[];
}

export type AuditKind =
  | 'alert_received'
  | 'decision'
  | 'action_run'
  | 'impact'
  | 'approval'
  | 'rollback'
  | 'policy_change'
  | 'pause';

export const AUDIT_KINDS: AuditKind[] = [
  'alert_received',
  'decision',
  'action_run',
  'impact',
  'approval',
  'rollback',
  'policy_change',
  'pause',
];

/** One line of the audit log: `seq`, `at_ms`, `kind` and the kind's fields. */
export interface AuditRecord {
  seq: number;
  at_ms: number;
  kind: AuditKind;
  [field: string]: unknown;
}

/** A loaded policy and the versions kept of it. */
export interface PolicyView {
  name: string;
  version: number;
  /** Oldest first. */
  versions: number[];
  file: string | null;
  /** `Kind/name`. */
  target: string;
  actions: string[];
  /** While a rollback is in force: the version whose content it restored. */
  restored_from: number | null;
}

export const autopilot = {
  actions: (signal?: AbortSignal) => get<ActionsResponse>('/api/v1/actions', {}, signal),
  decide: (id: number, verdict: 'approve' | 'reject', by: string) =>
    post<ActionView>(`/api/v1/actions/${id}/${verdict}`, { by }),
  setPaused: (paused: boolean, by: string) =>
    post<{ paused: boolean }>(`/api/v1/actions/${paused ? 'pause' : 'resume'}`, { by }),
  audit: (kind: string, limit: number, signal?: AbortSignal) =>
    get<{ records: AuditRecord[] }>('/api/v1/audit', { kind, limit }, signal),
  policies: (signal?: AbortSignal) => get<{ policies: PolicyView[] }>('/api/v1/policies', {}, signal),
  restorePolicy: (name: string, to: number, by: string) =>
    post<PolicyView>(`/api/v1/policies/${encodeURIComponent(name)}/rollback`, { to, by }),
};

// The baseline engine (docs/API.md, "Alerts").

/** Where a band comes from; while learning, how many windows it has of the warm-up's. */
export type BandState = 'ready' | 'daily' | 'weekly' | { warming_up: { have: number; need: number } };

/** What a feature measures (docs/API.md, `/api/v1/baselines`). */
export type FeatureMetric =
  /** `quantile`: the digits after the p, `99`, `999` for 99.9. */
  | { kind: 'latency_quantile'; quantile: string }
  | { kind: 'request_rate' }
  | { kind: 'error_rate' }
  | { kind: 'cpu_cores' }
  | { kind: 'cpu_share'; function: string }
  | { kind: 'per_thousand_requests'; of: FeatureMetric }
  | { kind: 'named'; name: string };

/** A feature, typed: its endpoint (null for the service as a whole) and its metric. */
export interface FeatureKey {
  endpoint: string | null;
  metric: FeatureMetric;
}

/** One feature the baseline engine follows (a value the server could not represent comes as null). */
export interface BaselineFeature {
  service: string;
  /** `latency_p99_ms`, or per endpoint `/search latency_p99_ms`: the name alerts label it with. */
  feature: string;
  /** The same, typed. */
  key: FeatureKey;
  /** What it measures, which says which side pages; `level` (older servers) is `gauge`. */
  kind: 'latency' | 'rate' | 'errors' | 'memory' | 'cpu' | 'gauge' | 'level' | 'error_rate';
  /** The band at `at_ms`; `low` and `high` are null while warming up. */
  band: { low: number | null; expected: number | null; high: number | null; state: BandState };
  /** The last value: its window's start (Unix ms) and the value. */
  latest: [number, number | null] | null;
  /** A firing incident has a finding about this feature. */
  firing: boolean;
}

export interface BaselinesResponse {
  /** False when the server runs without `--baseline-config`. */
  enabled: boolean;
  at_ms: number;
  features: BaselineFeature[];
}

export const baselines = {
  list: (signal?: AbortSignal) => get<BaselinesResponse>('/api/v1/baselines', {}, signal),
};

/** The unit of a profile type id, `name:sample_type:unit:period_type:period_unit`. */
export function unitOf(profileType: string | null | undefined): string {
  return profileType?.split(':')[2] ?? 'count';
}

// Alerts (docs/API.md, "Alerts"): the baseline engine's and those Alertmanager posted.

export type Severity = 'warning' | 'critical';

/** What one detector found about one feature inside an incident: its first and latest finding. */
export interface Evidence {
  /** `latency_p99_ms`, or per endpoint `/search latency_p99_ms`. */
  feature: string;
  feature_key: FeatureKey;
  /** `band`, `change_point`, `leak`, `error_burst`, or from outside (`autopilot_made_worse`). */
  detector: string;
  severity: Severity;
  /** When the detector says the anomaly began. */
  since_ms: number;
  /** The windows of its first and latest finding. */
  first_ms: number;
  last_ms: number;
  count: number;
  /** The latest finding's value (null when the server could not represent it). */
  observed: number | null;
  /** The band it was held against, where one applies. */
  expected: { low: number | null; expected: number | null; high: number | null; state: BandState } | null;
  score: number | null;
  message: string;
}

/**
 * One problem of a service: every finding about it (quantiles, endpoints and the service as a whole,
 * detectors, latency and errors) while it fires, resolved after a quiet time.
 */
export interface Incident {
  id: string;
  service: string;
  state: 'firing' | 'resolved';
  /** The highest of its findings'. */
  severity: Severity;
  /** When the problem began, as well as its findings tell. */
  starts_at_ms: number;
  /** The (event) time of the window that raised it. */
  raised_at_ms: number;
  resolved_at_ms: number | null;
  updated_at_ms: number;
  summary: string;
  findings: Evidence[];
  /** As Alertmanager gets it: `alertname` (`PerfpilotIncident`), `service`, `incident`, `severity`. */
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ack: { by: string; at_ms: number } | null;
}

/** The engine's alerts are its incidents. */
export type Alert = Incident;

/** An alert as Alertmanager last posted it to the autopilot. */
export interface ReceivedAlert {
  fingerprint: string;
  alertname: string | null;
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  starts_at_ms: number;
  ends_at_ms: number | null;
  generator_url: string;
}

export interface AlertsResponse {
  enabled: boolean;
  /** False when only the autopilot's own alerts are kept (no --baseline-config); older servers omit it. */
  baselines?: boolean;
  alerts: Alert[];
  received?: ReceivedAlert[];
}
