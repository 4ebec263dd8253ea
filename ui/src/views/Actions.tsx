import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import {
  AUDIT_KINDS,
  autopilot,
  toApiError,
  type ApiError,
  type ActionImpact,
  type ActionView,
  type AuditRecord,
  type PolicyView,
} from '../api';
import { useLoad, usePoll } from '../hooks';
import { setParams, type Params } from '../router';
import { Empty, ErrorBox, Loading } from '../components/States';
import { ago, formatNumber, formatTime } from '../format';

/** How often the page asks again, while it is visible. */
const POLL_MS = 3000;
/** Audit records shown. */
const AUDIT_LIMIT = 25;

const NAME_KEY = 'perfpilot.approver';

function storedName(): string | null {
  try {
    return localStorage.getItem(NAME_KEY);
  } catch {
    return null;
  }
}

/** Asks who is deciding; null when cancelled. Remembered for the next time. */
function askName(current: string | null): string | null {
  const answer = window.prompt(
    'Your name, recorded in the audit log with each approval, rejection or policy restore:',
    current ?? 'ui',
  );
  if (answer === null) return null;
  const name = answer.trim() || 'ui';
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // Private mode: asked again next time.
  }
  return name;
}

function without<K extends string | number, V>(m: Record<K, V>, key: K): Record<K, V> {
  const n = { ...m };
  delete n[key];
  return n;
}

/** A reading of the impact check; `?` when there was none. */
function num(v: number | null): string {
  return v === null ? '?' : formatNumber(v);
}

/** `name = value` readings: what the condition saw when it held. */
function Readings({ readings }: { readings: string[] }) {
  if (readings.length === 0) return <span class="muted">no values read</span>;
  return (
    <ul class="readings" data-testid="readings">
      {readings.map((r) => {
        const i = r.lastIndexOf(' = ');
        return i < 0 ? (
          <li class="mono">{r}</li>
        ) : (
          <li class="mono">
            {r.slice(0, i)} = <b>{r.slice(i + 3)}</b>
          </li>
        );
      })}
    </ul>
  );
}

const STATUS_TEXT: Record<string, string> = {
  'pending-approval': 'waiting',
  'rolled-back': 'rolled back',
};

function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge status-${status}`} data-testid="status">
      {STATUS_TEXT[status] ?? status}
    </span>
  );
}

/** Whole seconds under a minute, else whole minutes: a 20 s impact window is not "1 min". */
function countdown(ms: number): string {
  const s = Math.max(1, Math.round(ms / 1e3));
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
}

function Impact({ impact }: { impact: ActionImpact | null | undefined }) {
  if (!impact) return <span class="muted">—</span>;
  const label =
    impact.status === 'pending'
      ? impact.due_ms > Date.now()
        ? `checking in ${countdown(impact.due_ms - Date.now())}`
        : 'checking'
      : impact.status;
  return (
    <span class="impact" data-testid="impact">
      <span class={`badge impact-${impact.status}`} title={`Impact due ${formatTime(impact.due_ms)}`}>
        {label}
      </span>
      {impact.signal && (impact.before !== null || impact.after !== null) && (
        <span class="mono small" title={impact.signal}>
          {impact.signal} {impact.after === null ? `was ${num(impact.before)}` : `${num(impact.before)} → ${num(impact.after)}`}
        </span>
      )}
      {impact.rollback && (
        <span class={`badge rollback-${impact.rollback}`}>
          {impact.rollback === 'succeeded' ? 'rolled back' : 'rollback failed'}
        </span>
      )}
    </span>
  );
}

function Result({ a }: { a: ActionView }) {
  if (a.error) {
    return (
      <span class="result-error" title={a.error}>
        {a.exit_status !== null && `exit ${a.exit_status}: `}
        {a.error}
      </span>
    );
  }
  if (a.exit_status !== null) {
    return <span class={a.exit_status === 0 ? 'mono' : 'mono result-error'}>exit {a.exit_status}</span>;
  }
  if (a.status === 'dry-run' || a.status === 'rejected') return <span class="muted">not run</span>;
  return <span class="muted">—</span>;
}

function PendingCard({
  a,
  busy,
  error,
  onDecide,
}: {
  a: ActionView;
  busy: 'approve' | 'reject' | undefined;
  error: ApiError | undefined;
  onDecide: (a: ActionView, verdict: 'approve' | 'reject') => void;
}) {
  return (
    <article class="card pending-card" data-testid="pending-card" data-action-id={a.id} data-policy={a.policy}>
      <header class="card-head">
        <span>
          <b>{a.policy}</b>
          <span class="muted"> v{a.policy_version}</span>
          <span class="muted"> · </span>
          <b class="mono">{a.action}</b>
        </span>
        <span class="spacer" />
        <span class="muted small" title={formatTime(a.at_ms)}>
          {ago(a.at_ms)}
        </span>
      </header>
      <dl class="facts">
        <dt>Target</dt>
        <dd class="mono">{a.target}</dd>
        <dt>Operation</dt>
        <dd class="mono">{a.operation}</dd>
        <dt>Condition</dt>
        <dd>
          <code class="condition" data-testid="condition">
            {a.condition}
          </code>
        </dd>
        <dt>Evidence</dt>
        <dd>
          <Readings readings={a.readings} />
        </dd>
      </dl>
      {error && (
        <div class="inline-error" role="alert" data-testid="decide-error">
          {error.unreachable ? 'Server unreachable: ' : ''}
          {error.message}
        </div>
      )}
      <footer class="card-foot">
        <button class="primary" data-testid="approve" disabled={!!busy} onClick={() => onDecide(a, 'approve')}>
          {busy === 'approve' ? 'Running…' : 'Approve and run'}
        </button>
        <button data-testid="reject" disabled={!!busy} onClick={() => onDecide(a, 'reject')}>
          {busy === 'reject' ? 'Rejecting…' : 'Reject'}
        </button>
      </footer>
    </article>
  );
}

function RecentTable({ rows }: { rows: ActionView[] }) {
  // Servers before the impact check send no `impact` at all.
  const impacts = rows.some((a) => a.impact !== undefined);
  const columns = impacts ? 8 : 7;
  const [open, setOpen] = useState<Set<number>>(new Set());
  const toggle = (id: number) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  return (
    <div class="scroll-x">
      <table class="grid actions-table" data-testid="recent-table">
        <thead>
          <tr>
            <th>Time</th>
            <th>Policy · action</th>
            <th>Target</th>
            <th>Status</th>
            <th>Mode</th>
            <th>By</th>
            {impacts && <th>Impact</th>}
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => {
            const expanded = open.has(a.id);
            return (
              <Fragment key={a.id}>
              <tr
                data-action-id={a.id}
                data-policy={a.policy}
                data-status={a.status}
                class={expanded ? 'selected' : ''}
                onClick={() => toggle(a.id)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' || e.key === ' ') {
                    e.preventDefault();
                    toggle(a.id);
                  }
                }}
                tabIndex={0}
                aria-expanded={expanded}
                title="Show the condition, its readings and the output"
              >
                <td title={formatTime(a.at_ms)}>
                  <span class="caret">{expanded ? '▾' : '▸'}</span> {ago(a.at_ms)}
                </td>
                <td>
                  {a.policy}
                  <span class="muted"> v{a.policy_version}</span> · <span class="mono">{a.action}</span>
                </td>
                <td class="mono">{a.target}</td>
                <td>
                  <StatusBadge status={a.status} />
                </td>
                <td>
                  <span class={a.mode === 'dry-run' ? 'muted' : ''}>{a.mode}</span>
                </td>
                <td data-testid="by">{a.by ?? <span class="muted">{a.approval === 'auto' ? 'auto' : '—'}</span>}</td>
                {impacts && (
                  <td>
                    <Impact impact={a.impact} />
                  </td>
                )}
                <td class="result">
                  <Result a={a} />
                </td>
              </tr>
              {expanded && (
                <tr class="detail" data-testid="detail">
                  <td colSpan={columns}>
                    <dl class="facts">
                      <dt>Condition</dt>
                      <dd>
                        <code class="condition">{a.condition}</code>
                      </dd>
                      <dt>Evidence</dt>
                      <dd>
                        <Readings readings={a.readings} />
                      </dd>
                      <dt>Operation</dt>
                      <dd class="mono">
                        {a.operation}
                        <span class="muted"> · approval {a.approval}</span>
                        {a.attempts !== undefined && <span class="muted"> · {a.attempts} attempt{a.attempts === 1 ? '' : 's'}</span>}
                      </dd>
                      <dt>Decided</dt>
                      <dd>
                        {formatTime(a.at_ms)}
                        <span class="muted"> · decision {a.id}</span>
                      </dd>
                      {a.error && (
                        <>
                          <dt>Error</dt>
                          <dd class="result-error mono">{a.error}</dd>
                        </>
                      )}
                      {a.output !== undefined && (
                        <>
                          <dt>Output</dt>
                          <dd>
                            {a.output ? <pre class="output">{a.output}</pre> : <span class="muted">none</span>}
                          </dd>
                        </>
                      )}
                    </dl>
                  </td>
                </tr>
              )}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

/** One line saying what an audit record is about. */
function auditSummary(r: AuditRecord): string {
  const exit = () => {
    if (r.error) return `failed: ${str(r.error)}`;
    return r.exit_status === null || r.exit_status === undefined ? '' : `exit ${r.exit_status}`;
  };
  switch (r.kind) {
    case 'alert_received':
      return `${str(r.alertname) || str(r.fingerprint)} ${str(r.status)} (${str(r.change)})`;
    case 'decision': {
      const mode = r.mode && r.outcome !== 'dry_run' ? ` (${str(r.mode)})` : '';
      return `${str(r.action)}: ${str(r.outcome).replace('_', ' ')}${mode} · ${str(r.condition)}`;
    }
    case 'action_run':
      return `${str(r.action)}: ${r.dry_run ? 'dry run of ' : ''}${str(r.operation)}${exit() ? ` → ${exit()}` : ''}`;
    case 'impact':
      return `${str(r.action)}: ${str(r.verdict)}${r.detail ? ` · ${str(r.detail)}` : ''}`;
    case 'approval':
      return `${str(r.action)} ${r.approved ? 'approved' : 'rejected'} by ${str(r.by)}${r.reason ? ` (${str(r.reason)})` : ''}`;
    case 'rollback':
      return `${str(r.action)} rolled back (${str(r.reason)}): ${str(r.operation)}${exit() ? ` · ${exit()}` : ''}`;
    case 'policy_change':
      return r.change === 'rolled_back'
        ? `rolled back to v${str(r.restored)}'s content as v${str(r.version)} by ${str(r.source)}`
        : `${str(r.change)} v${str(r.version)} · ${str(r.source)}`;
    case 'pause':
      return `${r.paused ? 'paused' : 'resumed'} by ${str(r.by)}`;
    default:
      return '';
  }
}

/**
 * The loaded policies with their versions; an earlier version's content
 * can be put back in force (as a new version, until the file changes).
 */
function Policies({ tick, who, onChanged }: { tick: unknown; who: () => string | null; onChanged: () => void }) {
  const list = useLoad((s) => autopilot.policies(s), [tick]);
  const [chosen, setChosen] = useState<Record<string, number>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<{ policy: string; error: ApiError } | null>(null);

  const restore = async (p: PolicyView, to: number) => {
    const by = who();
    if (!by) return;
    const until = p.file ? `until ${p.file} changes` : 'until its file changes';
    if (!window.confirm(`Put version ${to} of ${p.name} back in force? It becomes version ${p.version + 1} and stays ${until}.`)) {
      return;
    }
    setBusy(p.name);
    setError(null);
    try {
      await autopilot.restorePolicy(p.name, to, by);
      setChosen((c) => without(c, p.name));
    } catch (e) {
      setError({ policy: p.name, error: toApiError(e) });
    } finally {
      setBusy(null);
      onChanged();
    }
  };

  return (
    <section class="section" data-testid="policies">
      <div class="section-head">
        <h3>Policies</h3>
        {list.data && <span class="count">{list.data.policies.length}</span>}
        <span class="muted small">every change is a new version; restoring one is audited</span>
      </div>
      {list.error ? (
        <ErrorBox error={list.error} what="the policies" />
      ) : !list.data ? (
        <Loading what="the policies" />
      ) : list.data.policies.length === 0 ? (
        <p class="muted">No policy is loaded: the --policies directory has no valid AutopilotPolicy.</p>
      ) : (
        <div class="scroll-x">
          <table class="grid policies-table" data-testid="policies-table">
            <thead>
              <tr>
                <th>Policy</th>
                <th>Version</th>
                <th>Target</th>
                <th>Actions</th>
                <th>File</th>
                <th>Earlier versions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.policies.map((p) => {
                const earlier = p.versions.filter((v) => v !== p.version).reverse();
                const pick = chosen[p.name] ?? earlier[0];
                return (
                  <tr data-policy={p.name}>
                    <td>{p.name}</td>
                    <td data-testid="version">
                      v{p.version}
                      {p.restored_from !== null && (
                        <span class="muted small" title="A rollback is in force until the policy's file changes">
                          {' '}
                          · v{p.restored_from}'s content
                        </span>
                      )}
                    </td>
                    <td class="mono">{p.target}</td>
                    <td class="mono">{p.actions.join(', ')}</td>
                    <td class="mono small">{p.file ?? '—'}</td>
                    <td>
                      {earlier.length === 0 ? (
                        <span class="muted">none</span>
                      ) : (
                        <span class="restore">
                          <select
                            data-testid="restore-version"
                            title="Version to put back in force"
                            value={pick}
                            onChange={(e) =>
                              setChosen((c) => ({ ...c, [p.name]: Number((e.target as HTMLSelectElement).value) }))
                            }
                          >
                            {earlier.map((v) => (
                              <option value={v}>v{v}</option>
                            ))}
                          </select>{' '}
                          <button data-testid="restore" disabled={busy === p.name} onClick={() => restore(p, pick)}>
                            {busy === p.name ? 'Restoring…' : 'Restore'}
                          </button>
                        </span>
                      )}
                      {error?.policy === p.name && <ErrorBox error={error.error} what={`restoring ${p.name}`} />}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function AuditLog({ kind, tick }: { kind: string; tick: unknown }) {
  const log = useLoad((s) => autopilot.audit(kind, AUDIT_LIMIT, s), [kind, tick]);
  return (
    <section class="section" data-testid="audit">
      <div class="section-head">
        <h3>Audit log</h3>
        <select
          title="Kind of record"
          value={kind}
          onChange={(e) => setParams({ kind: (e.target as HTMLSelectElement).value }, true)}
        >
          <option value="">every kind</option>
          {AUDIT_KINDS.map((k) => (
            <option value={k}>{k.replace('_', ' ')}</option>
          ))}
        </select>
        <span class="muted small">the latest {AUDIT_LIMIT}, newest first · GET /api/v1/audit for more</span>
      </div>
      {log.error ? (
        <ErrorBox error={log.error} what="the audit log" />
      ) : !log.data ? (
        <Loading what="the audit log" />
      ) : log.data.records.length === 0 ? (
        <p class="muted">No records{kind ? ` of kind ${kind}` : ''} yet.</p>
      ) : (
        <div class="scroll-x">
          <table class="grid audit-table" data-testid="audit-table">
            <thead>
              <tr>
                <th class="num">#</th>
                <th>Time</th>
                <th>Kind</th>
                <th>Policy</th>
                <th>What</th>
              </tr>
            </thead>
            <tbody>
              {log.data.records.map((r) => (
                <tr data-kind={r.kind}>
                  <td class="num muted">{r.seq}</td>
                  <td title={formatTime(r.at_ms)}>{formatTime(r.at_ms)}</td>
                  <td>
                    <span class={`badge kind-${r.kind}`}>{r.kind.replace('_', ' ')}</span>
                  </td>
                  <td>{str(r.policy)}</td>
                  <td class="summary" title={auditSummary(r)}>
                    {auditSummary(r)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/**
 * The autopilot's actions: its mode and pause switch, decisions waiting
 * for approval with the evidence behind them, what it did recently and
 * how that went, and the latest audit records.
 */
export function Actions({ params }: { params: Params }) {
  const poll = usePoll(POLL_MS);
  const [bump, setBump] = useState(0);
  const refresh = () => setBump((b) => b + 1);
  const list = useLoad((s) => autopilot.actions(s), [poll, bump]);
  const [name, setName] = useState<string | null>(storedName());
  const [busy, setBusy] = useState<Record<number, 'approve' | 'reject'>>({});
  const [errors, setErrors] = useState<Record<number, ApiError>>({});
  const [pausing, setPausing] = useState(false);
  const [pauseError, setPauseError] = useState<ApiError | null>(null);

  /** Who decides: the remembered name, else asked for; null when cancelled. */
  const approver = (): string | null => {
    const by = name ?? askName(null);
    if (by) setName(by);
    return by;
  };

  const decide = async (a: ActionView, verdict: 'approve' | 'reject') => {
    const by = approver();
    if (!by) return;
    setBusy((b) => ({ ...b, [a.id]: verdict }));
    setErrors((es) => without(es, a.id));
    try {
      await autopilot.decide(a.id, verdict, by);
    } catch (e) {
      setErrors((es) => ({ ...es, [a.id]: toApiError(e) }));
    } finally {
      setBusy((b) => without(b, a.id));
      refresh();
    }
  };

  const togglePause = async (paused: boolean) => {
    setPausing(true);
    setPauseError(null);
    try {
      // Recorded in the audit log; the name is not asked for just to pause.
      await autopilot.setPaused(paused, name ?? 'ui');
    } catch (e) {
      setPauseError(toApiError(e));
    } finally {
      setPausing(false);
      refresh();
    }
  };

  if (list.error?.status === 404) {
    return (
      <div class="autopilot-off">
      <Empty>
        <h3>The autopilot is off</h3>
        <p>
          Start the server with <code>--policies DIR</code> (a directory of <code>AutopilotPolicy</code> YAML files) to
          decide actions from alerts and approve them here.
        </p>
        <p class="muted">
          It records what it would do and runs nothing until started with <code>--autopilot enforce</code>.
        </p>
      </Empty>
      </div>
    );
  }
  if (list.error) return <ErrorBox error={list.error} what="the autopilot's actions" />;
  if (!list.data) return <Loading what="actions" />;

  const { mode, paused, pending } = list.data;
  const waiting = new Set(pending.map((a) => a.id));
  // An approved decision leaves the queue when its run starts and is
  // reported when it ends; meanwhile it is shown as running.
  const recent = list.data.recent
    .filter((a) => !waiting.has(a.id))
    .map((a) =>
      a.status === 'pending-approval' && busy[a.id] === 'approve' ? { ...a, status: 'running' as const, by: name } : a,
    );
  const dryRun = mode === 'dry-run';
  return (
    <div class="view actions" aria-busy={list.loading}>
      <div class="toolbar autopilot-strip" data-testid="strip">
        <h2 class="title">Actions</h2>
        <span
          class={`mode ${dryRun ? 'dry-run' : 'enforce'}`}
          data-testid="mode"
          title={
            dryRun
              ? 'Started with --autopilot dry-run: decisions are recorded in the audit log and nothing is run. Start with --autopilot enforce to run them.'
              : 'Started with --autopilot enforce: approval: auto actions run when their condition holds; approval: manual ones wait here.'
          }
        >
          {dryRun ? 'dry-run: nothing runs' : 'enforce: actions run'}
        </span>
        <span class={`pause-state ${paused ? 'paused' : 'active'}`} data-testid="pause-state">
          {paused ? 'Paused: nothing is decided or approved' : 'Active: conditions checked every second'}
        </span>
        <button data-testid="pause-toggle" disabled={pausing} onClick={() => togglePause(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <span class="spacer" />
        <span class="muted small" data-testid="approver">
          deciding as <b>{name ?? 'ui'}</b>{' '}
          <button
            class="link"
            onClick={() => {
              const n = askName(name);
              if (n) setName(n);
            }}
          >
            change
          </button>
        </span>
        <button onClick={refresh}>Refresh</button>
      </div>
      {pauseError && <ErrorBox error={pauseError} what="the pause switch" />}

      <section class="section" data-testid="pending">
        <div class="section-head">
          <h3>Waiting for approval</h3>
          <span class="count">{pending.length}</span>
        </div>
        {pending.length === 0 ? (
          <p class="muted">
            Nothing is waiting. Actions with <code>approval: manual</code> queue here when their condition holds
            {dryRun ? ' and the server runs with --autopilot enforce' : ''}.
          </p>
        ) : (
          <div class="cards">
            {pending.map((a) => (
              <PendingCard key={a.id} a={a} busy={busy[a.id]} error={errors[a.id]} onDecide={decide} />
            ))}
          </div>
        )}
      </section>

      <section class="section" data-testid="recent">
        <div class="section-head">
          <h3>Recent actions</h3>
          <span class="count">{recent.length}</span>
          <span class="muted small">newest first · click a row for its evidence and output</span>
        </div>
        {recent.length === 0 ? (
          <Empty>
            <h3>No actions yet</h3>
            <p>What the autopilot decides when a policy's condition holds, and how it went, shows here.</p>
          </Empty>
        ) : (
          <RecentTable rows={recent} />
        )}
      </section>

      <Policies
        tick={`${poll}/${bump}`}
        who={approver}
        onChanged={refresh}
      />

      <AuditLog kind={params.kind ?? ''} tick={`${poll}/${bump}`} />
    </div>
  );
}
