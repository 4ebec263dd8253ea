import { useEffect, useState } from 'preact/hooks';

// Every view keeps its whole state in the URL (path and query string), so a
// link reloads exactly what was on screen.

export type Params = Record<string, string>;

let listeners: (() => void)[] = [];

function notify() {
  for (const l of listeners) l();
}

window.addEventListener('popstate', notify);

export function currentParams(): Params {
  return Object.fromEntries(new URLSearchParams(location.search).entries());
}

export function navigate(path: string, params: Params, replace = false) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined) qs.set(k, v);
  const s = qs.toString();
  const url = `${path}${s ? '?' + s : ''}`;
  if (url === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  notify();
}

export function useLocation(): { path: string; params: Params } {
  const [, tick] = useState(0);
  useEffect(() => {
    const l = () => tick((n) => n + 1);
    listeners.push(l);
    return () => {
      listeners = listeners.filter((x) => x !== l);
    };
  }, []);
  return { path: location.pathname, params: currentParams() };
}

/** Merges `patch` into the current URL's parameters. */
export function setParams(patch: Params, replace = false) {
  const next = { ...currentParams(), ...patch };
  for (const k of Object.keys(next)) if (next[k] === '') delete next[k];
  navigate(location.pathname, next, replace);
}
