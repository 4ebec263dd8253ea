import { useEffect, useState } from 'preact/hooks';
import { toApiError, type ApiError } from './api';

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
}

/**
 * Runs `load` whenever `deps` change, cancelling the previous request, so a
 * slow answer for an old selection never replaces a newer one.
 */
export function useLoad<T>(load: ((signal: AbortSignal) => Promise<T>) | null, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: !!load });
  useEffect(() => {
    if (!load) {
      setState({ data: null, error: null, loading: false });
      return;
    }
    const ctl = new AbortController();
    setState((s) => ({ data: s.data, error: null, loading: true }));
    load(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, error: null, loading: false });
      },
      (e: Error) => {
        if (ctl.signal.aborted || e.name === 'AbortError') return;
        setState({ data: null, error: toApiError(e), loading: false });
      },
    );
    return () => ctl.abort();
  }, deps);
  return state;
}

/** Width of the page in CSS pixels, for sizing requests to the screen. */
export function useViewportWidth(): number {
  const [w, setW] = useState(window.innerWidth);
  useEffect(() => {
    const on = () => setW(window.innerWidth);
    window.addEventListener('resize', on);
    return () => window.removeEventListener('resize', on);
  }, []);
  return w;
}

/**
 * How many nodes to ask the server for: a node narrower than a pixel
 * cannot be seen, so about 16 per pixel of width covers the levels that
 * matter and keeps big profiles fast.
 */
export function maxNodesFor(widthPx: number): number {
  return Math.min(65536, Math.max(2048, Math.round(widthPx * 16)));
}

/**
 * A counter that goes up every `ms` while the page is visible, and at once
 * when it becomes visible again: a dependency that makes `useLoad` poll
 * without polling from hidden tabs.
 */
export function usePoll(ms: number): number {
  const [n, setN] = useState(0);
  useEffect(() => {
    let timer: number | undefined;
    const stop = () => {
      if (timer !== undefined) window.clearInterval(timer);
      timer = undefined;
    };
    const start = () => {
      stop();
      timer = window.setInterval(() => setN((x) => x + 1), ms);
    };
    const onVisibility = () => {
      if (document.hidden) {
        stop();
      } else {
        setN((x) => x + 1);
        start();
      }
    };
    if (!document.hidden) start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stop();
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [ms]);
  return n;
}
