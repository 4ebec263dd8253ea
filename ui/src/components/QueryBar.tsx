import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { useLoad } from '../hooks';
import { formatSelector, parseSelector, type Matcher, type Op } from '../selector';
import { PRESETS, resolveTime } from '../time';
import { formatTime } from '../format';

interface Props {
  /** Prefix of test ids and labels ("Base", "Target"), empty in Explore. */
  side?: string;
  query: string;
  from: string;
  until: string;
  onChange: (patch: { query?: string; from?: string; until?: string }) => void;
}

/**
 * Builds a selector: profile type first, then label filters whose names and
 * values are suggested from the series in range; the raw selector stays
 * editable for anything the chips cannot express.
 */
export function QueryBar({ side = '', query, from, until, onChange }: Props) {
  const tid = (s: string) => (side ? `${side.toLowerCase()}-${s}` : s);
  const range = { from, until };
  const parsed = parseSelector(query);
  const types = useLoad((s) => api.profileTypes(range, s), [from, until]);
  const [text, setText] = useState(query);
  useEffect(() => setText(query), [query]);

  const sel = parsed ?? { profileType: '', matchers: [] };
  const setSel = (profileType: string, matchers: Matcher[]) =>
    onChange({ query: formatSelector({ profileType, matchers }) });

  return (
    <div class="querybar" data-testid={tid('querybar')}>
      {side && <span class="side-label">{side}</span>}
      <select
        data-testid={tid('profile-type')}
        title="Profile type"
        value={sel.profileType}
        onChange={(e) => setSel((e.target as HTMLSelectElement).value, sel.matchers)}
      >
        <option value="">Profile type (any)</option>
        {(types.data?.profile_types ?? []).map((t) => (
          <option value={t}>{t}</option>
        ))}
        {sel.profileType && !(types.data?.profile_types ?? []).includes(sel.profileType) && (
          <option value={sel.profileType}>{sel.profileType}</option>
        )}
      </select>
      {parsed &&
        parsed.matchers.map((m, i) => (
          <span class="chip" data-testid={tid('chip')}>
            {m.name}
            <b>{m.op}</b>"{m.value}"
            <button
              title="Remove this filter"
              aria-label={`Remove ${m.name}`}
              onClick={() => setSel(sel.profileType, sel.matchers.filter((_, k) => k !== i))}
            >
              ×
            </button>
          </span>
        ))}
      {parsed && (
        <AddFilter
          tid={tid}
          query={query}
          range={range}
          onAdd={(m) => setSel(sel.profileType, [...sel.matchers.filter((x) => x.name !== m.name || m.op !== '='), m])}
        />
      )}
      <form
        class="raw"
        onSubmit={(e) => {
          e.preventDefault();
          onChange({ query: text.trim() });
        }}
      >
        <input
          data-testid={tid('selector')}
          class="mono"
          value={text}
          spellcheck={false}
          placeholder='{service_name="checkout"}'
          title="The selector; edit and press Enter"
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
      </form>
      <RangePicker tid={tid} from={from} until={until} onChange={onChange} />
    </div>
  );
}

function AddFilter({
  tid,
  query,
  range,
  onAdd,
}: {
  tid: (s: string) => string;
  query: string;
  range: { from: string; until: string };
  onAdd: (m: Matcher) => void;
}) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [op, setOp] = useState<Op>('=');
  const [value, setValue] = useState('');
  const names = useLoad(open ? (s) => api.labels(query, range, s) : null, [open, query, range.from, range.until]);
  // Values are suggested among the series the rest of the selector matches.
  const values = useLoad(
    open && name ? (s) => api.labelValues(name, query, range, s) : null,
    [open, name, query, range.from, range.until],
  );
  const id = tid('filter');
  if (!open) {
    return (
      <button class="add" data-testid={tid('add-filter')} onClick={() => setOpen(true)}>
        + Filter
      </button>
    );
  }
  const submit = (e: Event) => {
    e.preventDefault();
    if (!name) return;
    onAdd({ name, op, value });
    setName('');
    setValue('');
    setOpen(false);
  };
  return (
    <form class="addform" onSubmit={submit}>
      <input
        data-testid={tid('label-name')}
        list={`${id}-names`}
        placeholder="label"
        value={name}
        autoFocus
        onInput={(e) => setName((e.target as HTMLInputElement).value)}
      />
      <datalist id={`${id}-names`}>
        {(names.data?.names ?? []).filter((n) => n !== '__profile_type__').map((n) => (
          <option value={n} />
        ))}
      </datalist>
      <select value={op} onChange={(e) => setOp((e.target as HTMLSelectElement).value as Op)} title="Match">
        <option value="=">=</option>
        <option value="!=">!=</option>
        <option value="=~">=~</option>
        <option value="!~">!~</option>
      </select>
      <input
        data-testid={tid('label-value')}
        list={`${id}-values`}
        placeholder="value"
        value={value}
        onInput={(e) => setValue((e.target as HTMLInputElement).value)}
      />
      <datalist id={`${id}-values`} data-testid={tid('label-values')}>
        {(values.data?.values ?? []).map((v) => (
          <option value={v} />
        ))}
      </datalist>
      <button type="submit" data-testid={tid('apply-filter')}>
        Add
      </button>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </form>
  );
}

function RangePicker({
  tid,
  from,
  until,
  onChange,
}: {
  tid: (s: string) => string;
  from: string;
  until: string;
  onChange: (p: { from?: string; until?: string }) => void;
}) {
  const preset = until === 'now' && PRESETS.some(([p]) => p === from) ? from : '';
  const [f, setF] = useState(from);
  const [u, setU] = useState(until);
  useEffect(() => {
    setF(from);
    setU(until);
  }, [from, until]);
  const show = (s: string) => {
    const ms = resolveTime(s);
    return /^\d+$/.test(s) && ms !== null ? formatTime(ms) : s;
  };
  return (
    <div class="range">
      <select
        data-testid={tid('range-preset')}
        value={preset}
        onChange={(e) => onChange({ from: (e.target as HTMLSelectElement).value, until: 'now' })}
      >
        {!preset && <option value="">Custom range</option>}
        {PRESETS.map(([v, label]) => (
          <option value={v}>{label}</option>
        ))}
      </select>
      <form
        class="range-abs"
        onSubmit={(e) => {
          e.preventDefault();
          onChange({ from: fromInput(f), until: fromInput(u) });
        }}
      >
        <input data-testid={tid('from')} value={show(f)} title="From: now-1h, 2026-11-22T10:00:00Z or Unix time" onInput={(e) => setF((e.target as HTMLInputElement).value)} />
        <span>→</span>
        <input data-testid={tid('until')} value={show(u)} title="Until" onInput={(e) => setU((e.target as HTMLInputElement).value)} />
        <button type="submit">Apply</button>
      </form>
    </div>
  );
}

/** What the user typed, as the URL keeps it: local "YYYY-MM-DD hh:mm:ss" becomes Unix ms. */
function fromInput(s: string): string {
  const t = s.trim();
  const local = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  if (local) {
    const [, y, mo, d, h, mi, se] = local;
    return String(new Date(+y, +mo - 1, +d, +h, +mi, +(se ?? 0)).getTime());
  }
  return t;
}
