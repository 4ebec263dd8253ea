import { useMemo, useState } from 'preact/hooks';
import type { TopRow } from '../api';
import { formatValue, pct } from '../format';

type Key = 'name' | 'self_value' | 'total_value';

interface Props {
  rows: TopRow[];
  unit: string;
  selected?: string;
  onSelect: (name: string) => void;
}

const SHOWN = 300;

/** Functions by self or total; click a row for its callers and callees. */
export function TopTable({ rows, unit, selected, onSelect }: Props) {
  const [key, setKey] = useState<Key>('self_value');
  const [desc, setDesc] = useState(true);
  const [filter, setFilter] = useState('');
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const out = f ? rows.filter((r) => r.name.toLowerCase().includes(f)) : rows.slice();
    out.sort((a, b) => {
      const c = key === 'name' ? a.name.localeCompare(b.name) : a[key] - b[key];
      return desc ? -c : c;
    });
    return out;
  }, [rows, key, desc, filter]);
  const sortBy = (k: Key) => {
    if (k === key) setDesc(!desc);
    else {
      setKey(k);
      setDesc(k !== 'name');
    }
  };
  const arrow = (k: Key) => (k === key ? (desc ? ' ▼' : ' ▲') : '');
  return (
    <div class="table-wrap">
      <input
        class="filter"
        data-testid="top-filter"
        placeholder="Filter functions"
        value={filter}
        onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
      />
      <table class="grid" data-testid="top-table">
        <thead>
          <tr>
            <th class="name" onClick={() => sortBy('name')}>Function{arrow('name')}</th>
            <th class="num" data-testid="sort-self" onClick={() => sortBy('self_value')} colSpan={2}>
              Self{arrow('self_value')}
            </th>
            <th class="num" data-testid="sort-total" onClick={() => sortBy('total_value')} colSpan={2}>
              Total{arrow('total_value')}
            </th>
          </tr>
        </thead>
        <tbody>
          {shown.slice(0, SHOWN).map((r) => (
            <tr
              class={r.name === selected ? 'selected' : ''}
              onClick={() => onSelect(r.name)}
              title="Show callers and callees"
              data-function={r.name}
            >
              <td class="name mono" title={r.name}>{r.name}</td>
              <td class="num" data-col="self-percent">{pct(r.self_percent / 100)}</td>
              <td class="num muted">{formatValue(r.self_value, unit)}</td>
              <td class="num" data-col="total-percent">{pct(r.total_percent / 100)}</td>
              <td class="num muted">{formatValue(r.total_value, unit)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length > SHOWN && (
        <div class="muted small">
          {shown.length - SHOWN} more: filter to narrow the list.
        </div>
      )}
      {shown.length === 0 && <div class="muted small">No function matches “{filter}”.</div>}
    </div>
  );
}
