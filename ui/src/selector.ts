// Selectors in the server's syntax: an optional profile type id followed by
// Prometheus-style matchers, `type{name="value", other=~"re.*"}`.

export type Op = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: Op;
  value: string;
}

export interface Selector {
  profileType: string;
  matchers: Matcher[];
}

const MATCHER = /\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;

/** Parses a selector; null when it is not one the picker can show as chips. */
export function parseSelector(text: string): Selector | null {
  const t = text.trim();
  const brace = t.indexOf('{');
  const profileType = (brace < 0 ? t : t.slice(0, brace)).trim();
  if (profileType && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+){4}$/.test(profileType)) return null;
  if (brace < 0) return { profileType, matchers: [] };
  if (!t.endsWith('}')) return null;
  const body = t.slice(brace + 1, -1);
  const matchers: Matcher[] = [];
  MATCHER.lastIndex = 0;
  let pos = 0;
  while (pos < body.length && body.slice(pos).trim() !== '') {
    MATCHER.lastIndex = pos;
    const m = MATCHER.exec(body);
    if (!m) return null;
    matchers.push({ name: m[1], op: m[2] as Op, value: m[3].replace(/\\(.)/g, '$1') });
    pos = MATCHER.lastIndex;
  }
  return { profileType, matchers };
}

export function formatSelector(s: Selector): string {
  const body = s.matchers
    .map((m) => `${m.name}${m.op}"${m.value.replace(/[\\"]/g, (c) => '\\' + c)}"`)
    .join(', ');
  return `${s.profileType}{${body}}`;
}
