import { render } from 'preact';
import { Explore } from './views/Explore';
import { Compare } from './views/Compare';
import { Alerts } from './views/Alerts';
import { Actions } from './views/Actions';
import { Baselines } from './views/Baselines';
import { navigate, useLocation } from './router';
import './style.css';

interface Page {
  path: string;
  title: string;
}

const PAGES: Page[] = [
  { path: '/explore', title: 'Explore' },
  { path: '/compare', title: 'Compare' },
  { path: '/alerts', title: 'Alerts' },
  { path: '/baselines', title: 'Baselines' },
  { path: '/actions', title: 'Actions' },
];

function App() {
  const { path, params } = useLocation();
  const page = PAGES.find((p) => path.startsWith(p.path)) ?? PAGES[0];
  const go = (e: MouseEvent, p: Page) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    // Carry the selection over between Explore and Compare.
    const keep: Record<string, string> = {};
    for (const k of ['query', 'from', 'until']) if (params[k]) keep[k] = params[k];
    navigate(p.path, keep);
  };
  return (
    <div class="shell">
      <nav class="nav">
        <a class="brand" href="/explore" onClick={(e) => go(e as MouseEvent, PAGES[0])}>
          <span class="logo" aria-hidden="true" />
          perfpilot
        </a>
        {PAGES.map((p) => (
          <a
            href={p.path}
            class={`nav-link${p === page ? ' active' : ''}`}
            onClick={(e) => go(e as MouseEvent, p)}
          >
            {p.title}
          </a>
        ))}
      </nav>
      <main class="main">
        {page.path === '/explore' && <Explore params={params} />}
        {page.path === '/compare' && <Compare params={params} />}
        {page.path === '/alerts' && <Alerts />}
        {page.path === '/baselines' && <Baselines params={params} />}
        {page.path === '/actions' && <Actions params={params} />}
      </main>
    </div>
  );
}

if (location.pathname === '/' || location.pathname === '/index.html') {
  history.replaceState(null, '', '/explore' + location.search);
}
render(<App />, document.getElementById('app')!);
