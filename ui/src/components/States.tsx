import type { ApiError } from '../api';

export function Loading({ what }: { what: string }) {
  return (
    <div class="state loading" data-testid="loading" aria-busy="true">
      <span class="spinner" /> Loading {what}…
    </div>
  );
}

export function ErrorBox({ error, what }: { error: ApiError; what: string }) {
  return (
    <div class="state error" data-testid="error" role="alert">
      <strong>{error.unreachable ? 'Server unreachable' : `Could not load ${what}`}</strong>
      <div class="mono">{error.message}</div>
      {error.status === 401 && <div>The server needs a token: reload the page to be asked for it.</div>}
    </div>
  );
}

export function Empty({ children }: { children: preact.ComponentChildren }) {
  return (
    <div class="state empty" data-testid="empty">
      {children}
    </div>
  );
}
