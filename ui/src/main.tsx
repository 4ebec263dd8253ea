import { render } from 'preact';
import { Explore } from './views/Explore';
import { Compare } from './views/Compare';
import { Upcoming } from './views/Upcoming';
import { Alerts } from './views/Alerts';
import { Actions } from './views/Actions';
import { navigate, useLocation } from './router';
import './style.css';

interface Page {
  path: string;
  title: string;
  ready: boolean;
}

// Baselines arrive with the baseline pages; its place in the navigation is
// kept from the start.
const PAGES: Page[] = [
  { path: '/explore', title: 'Explore', ready: true },
  { path: '/compare', title: 'Compare', ready: true },
  { path: '/alerts', title: 'Alerts', ready: true },
  { path: '/baselines', title: 'Baselines', ready: false },
  { path: '/actions', title: 'Actions', ready: true },
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
    navigate(p.path, p.ready ? keep : {});
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
            class={`nav-link${p === page ? ' active' : ''}${p.ready ? '' : ' upcoming'}`}
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
        {page.path === '/actions' && <Actions params={params} />}
        {!page.ready && <Upcoming title={page.title} />}
      </main>
    </div>
  );
}

if (location.pathname === '/' || location.pathname === '/index.html') {
  history.replaceState(null, '', '/explore' + location.search);
}
render(<App />, document.getElementById('app')!);
