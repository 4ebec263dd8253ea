import { useState } from 'preact/hooks';
import {
  get,
  post,
  toApiError,
  type AlertsResponse,
  type ApiError,
  type Evidence,
  type Incident,
  type ReceivedAlert,
} from '../api';
import { useLoad } from '../hooks';
import { navigate } from '../router';
import { Empty, ErrorBox, Loading } from '../components/States';
import { ago, formatNumber, formatTime } from '../format';

/** Labels that may name the service an alert is about, most specific first (for display). */
const SERVICE_LABELS = ['service', 'service_name', 'job', 'unit', 'deployment', 'app', 'target'];

function serviceOf(a: ReceivedAlert): string {
  for (const l of SERVICE_LABELS) if (a.labels[l]) return a.labels[l];
  return '';
}

const HIDDEN = new Set(['alertname', 'severity', ...SERVICE_LABELS]);

/** Alerts received from Alertmanager: what the autopilot's `alert("Name")` conditions read. */
function Received({ alerts }: { alerts: ReceivedAlert[] }) {
  if (alerts.length === 0) return null;
  const firing = alerts.filter((a) => a.status === 'firing').length;
  return (
    <section class="received" data-testid="received-alerts">
      <div class="toolbar">
        <h3 class="title">From Alertmanager</h3>
        <span class="muted">
          {firing} firing · {alerts.length - firing} resolved
        </span>
      </div>
      <div class="scroll-x">
        <table class="grid alerts-table">
          <thead>
            <tr>
              <th>State</th>
              <th>Alert</th>
              <th>Service</th>
              <th>Labels</th>
              <th>What</th>
              <th>Since</th>
            </tr>
          </thead>
          <tbody>
            {alerts.map((a) => (
              <tr data-fingerprint={a.fingerprint} data-state={a.status} class={a.status}>
                <td>
                  <span class={`badge ${a.status} ${a.labels.severity ?? ''}`}>
                    {a.status === 'firing' ? a.labels.severity ?? 'firing' : 'resolved'}
                  </span>
                </td>
                <td class="mono">
                  {a.generator_url ? (
                    <a href={a.generator_url} target="_blank" rel="noreferrer">
                      {a.alertname ?? '(unnamed)'}
                    </a>
                  ) : (
                    a.alertname ?? '(unnamed)'
                  )}
                </td>
                <td>{serviceOf(a)}</td>
                <td class="mono small">
                  {Object.entries(a.labels)
                    .filter(([k]) => !HIDDEN.has(k))
                    .map(([k, v]) => `${k}=${v}`)
                    .join(' ')}
                </td>
                <td class="summary" title={a.annotations.summary ?? a.annotations.description}>
                  {a.annotations.summary ?? a.annotations.description ?? ''}
                </td>
                <td title={formatTime(a.starts_at_ms)}>{ago(a.starts_at_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function duration(a: Incident): string {
  const end = a.resolved_at_ms ?? Date.now();
  const s = Math.max(0, (end - a.starts_at_ms) / 1000);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

const num = (v: number | null | undefined) => (v === null || v === undefined ? '–' : formatNumber(v));

function band(e: Evidence): string {
  if (!e.expected || e.expected.low === null || e.expected.high === null) return '';
  return `${num(e.expected.low)} – ${num(e.expected.high)}`;
}

/** `/search latency_p99_ms` → `/search` and `latency_p99_ms`; the service as a whole reads `(service)`. */
function scope(e: Evidence): string {
  return e.feature_key?.endpoint ?? '(service)';
}

function metric(e: Evidence): string {
  const ep = e.feature_key?.endpoint;
  return ep && e.feature.startsWith(`${ep} `) ? e.feature.slice(ep.length + 1) : e.feature;
}

/** An incident's evidence: each (feature, detector) with its band, latest value and since when. */
function Findings({ incident }: { incident: Incident }) {
  return (
    <table class="grid findings-table" data-testid="findings">
      <thead>
        <tr>
          <th>Scope</th>
          <th>Feature</th>
          <th>Detector</th>
          <th>Observed</th>
          <th>Band</th>
          <th>Since</th>
          <th>Findings</th>
          <th>What</th>
        </tr>
      </thead>
      <tbody>
        {incident.findings.map((e) => (
          <tr data-feature={e.feature} data-detector={e.detector}>
            <td class="mono">{scope(e)}</td>
            <td class="mono">{metric(e)}</td>
            <td>
              <span class={`badge ${incident.state === 'firing' ? 'firing' : ''} ${e.severity}`}>{e.detector}</span>
            </td>
            <td class="num">{num(e.observed)}</td>
            <td class="num" data-testid="band">
              {band(e)}
            </td>
            <td title={formatTime(e.since_ms)}>{formatTime(e.since_ms)}</td>
            <td class="num">{e.count}</td>
            <td class="message" title={e.message}>
              {e.message}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The baseline engine's incidents, firing first; each opens to its findings. Acknowledge, or jump to the profiles around it. */
export function Alerts() {
  const [tick, setTick] = useState(0);
  const [ackError, setAckError] = useState<ApiError | null>(null);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const list = useLoad((s) => get<AlertsResponse>('/api/v1/alerts', {}, s), [tick]);

  const toggle = (id: string) =>
    setOpen((o) => {
      const n = new Set(o);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });

  const ack = async (id: string) => {
    setAckError(null);
    try {
      await post<Incident>(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, { by: 'web UI' });
      setTick((t) => t + 1);
    } catch (e) {
      setAckError(toApiError(e));
    }
  };

  // Profiles of the incident's service an hour before its start against
  // since its start: what changed in the code's CPU time.
  const compare = (a: Incident) => {
    const service = a.service || a.labels.service;
    const q = service ? `{service_name="${service}"}` : '{}';
    const end = a.resolved_at_ms ?? Date.now();
    navigate('/compare', {
      query: q,
      base_query: q,
      base_from: String(a.starts_at_ms - 3600e3),
      base_until: String(a.starts_at_ms),
      from: String(a.starts_at_ms),
      until: String(Math.max(end, a.starts_at_ms + 60e3)),
    });
  };

  if (list.error) return <ErrorBox error={list.error} what="alerts" />;
  if (!list.data) return <Loading what="alerts" />;
  const received = list.data.received ?? [];
  if (!list.data.enabled) {
    if (received.length > 0) {
      return (
        <div class="view alerts" aria-busy={list.loading}>
          <Received alerts={received} />
          <p class="muted small">
            perfpilot's own baselines are off: start the server with <code>--baseline-config FILE</code> to learn them
            and raise incidents here.
          </p>
        </div>
      );
    }
    return (
      <Empty>
        <h3>Alerts are off</h3>
        <p>
          Start the server with <code>--baseline-config FILE</code> (a <code>perfpilot baseline watch</code> config) to
          learn baselines from request logs and Prometheus and raise incidents here.
        </p>
      </Empty>
    );
  }
  const incidents = list.data.alerts;
  const firing = incidents.filter((a) => a.state === 'firing').length;
  const autopilotOnly = list.data.baselines === false;
  return (
    <div class="view alerts" aria-busy={list.loading}>
      <div class="toolbar">
        <h2 class="title">Incidents</h2>
        <span class="muted" data-testid="alert-counts">
          {firing} firing · {incidents.length - firing} resolved
        </span>
        <span class="spacer" />
        <button onClick={() => setTick((t) => t + 1)}>Refresh</button>
      </div>
      {ackError && <ErrorBox error={ackError} what="the acknowledgement" />}
      {autopilotOnly && (
        <p class="muted small" data-testid="autopilot-only">
          Only the autopilot's own alerts show here: it raises one when an action makes its target worse. Start the
          server with <code>--baseline-config FILE</code> to learn baselines and raise incidents on them too.
        </p>
      )}
      {incidents.length === 0 ? (
        <Empty>
          <h3>No incidents</h3>
          <p>
            {autopilotOnly
              ? 'No autopilot action has made its target worse.'
              : 'Every watched service is within its baseline.'}
          </p>
        </Empty>
      ) : (
        <div class="scroll-x">
          <table class="grid alerts-table" data-testid="alerts-table">
            <thead>
              <tr>
                <th />
                <th>State</th>
                <th>Service</th>
                <th>Incident</th>
                <th>Findings</th>
                <th>Since</th>
                <th>For</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {incidents.flatMap((a) => {
                const expanded = open.has(a.id);
                const severity = a.severity ?? a.labels.severity ?? '';
                const rows = [
                  <tr data-alert={a.id} data-state={a.state} class={`${a.state} incident`}>
                    <td>
                      <button
                        class="expand"
                        data-testid="expand"
                        aria-expanded={expanded}
                        title={expanded ? 'Hide its findings' : 'Show its findings'}
                        onClick={() => toggle(a.id)}
                      >
                        {expanded ? '▾' : '▸'}
                      </button>
                    </td>
                    <td>
                      <span class={`badge ${a.state} ${severity}`}>{a.state === 'firing' ? severity || 'firing' : 'resolved'}</span>
                    </td>
                    <td>{a.service || a.labels.service}</td>
                    <td class="summary" title={a.summary}>
                      {a.summary || a.annotations.summary}
                    </td>
                    <td class="num" data-testid="finding-count">
                      {a.findings.length}
                    </td>
                    <td title={formatTime(a.starts_at_ms)}>{ago(a.starts_at_ms)}</td>
                    <td>{duration(a)}</td>
                    <td class="actions">
                      <button onClick={() => compare(a)} title="Compare the service's profiles before and since the incident began">
                        Profiles
                      </button>
                      {a.ack ? (
                        <span class="muted small" data-testid="acked">
                          acked by {a.ack.by}
                        </span>
                      ) : (
                        <button data-testid="ack" onClick={() => ack(a.id)}>
                          Ack
                        </button>
                      )}
                    </td>
                  </tr>,
                ];
                if (expanded) {
                  rows.push(
                    <tr class="evidence" data-findings-for={a.id}>
                      <td />
                      <td colSpan={7}>
                        <Findings incident={a} />
                      </td>
                    </tr>,
                  );
                }
                return rows;
              })}
            </tbody>
          </table>
        </div>
      )}
      <Received alerts={received} />
    </div>
  );
}
