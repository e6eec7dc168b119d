// The console's shell: sign-in, then a navigation of pages, each a route under /console/.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { restoreSession, signOut, whenSignedOut } from './api';
import { SignIn } from './pages/SignIn';
import { Overview } from './pages/Overview';
import { Clients } from './pages/Clients';
import { Keys } from './pages/Keys';
import { Tokens } from './pages/Tokens';
import { Audit } from './pages/Audit';
import { Routes } from './pages/Routes';
import './style.css';

const PAGES = [
  { path: '/console/overview', title: 'Overview', view: Overview },
  { path: '/console/clients', title: 'Clients', view: Clients },
  { path: '/console/keys', title: 'Keys', view: Keys },
  { path: '/console/tokens', title: 'Tokens', view: Tokens },
  { path: '/console/audit', title: 'Audit', view: Audit },
  { path: '/console/routes', title: 'Routes', view: Routes },
];

function currentPage() {
  // `/console` itself opens the first page, the Overview.
  return PAGES.find((p) => location.pathname === p.path) ?? PAGES[0];
}

function App() {
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  const [page, setPage] = useState(currentPage());
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    whenSignedOut(() => setSignedIn(false));
    restoreSession()
      .then(setSignedIn)
      .catch((e) => setProblem(String(e.message ?? e)));
    const back = () => setPage(currentPage());
    addEventListener('popstate', back);
    return () => removeEventListener('popstate', back);
  }, []);

  useEffect(() => {
    document.title = `${page.title} · tokengate console`;
  }, [page]);

  if (problem) return <p role="alert">The console cannot reach the server: {problem}</p>;
  if (signedIn === null) return <p aria-busy="true">Loading…</p>;
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;

  const go = (e: MouseEvent, p: (typeof PAGES)[number]) => {
    e.preventDefault();
    history.pushState(null, '', p.path);
    setPage(p);
  };
  const View = page.view;
  return (
    <>
      <header>
        <span class="brand">tokengate</span>
        <nav aria-label="Console pages">
          {PAGES.map((p) => (
            <a
              href={p.path}
              aria-current={p === page ? 'page' : undefined}
              onClick={(e) => go(e, p)}
            >
              {p.title}
            </a>
          ))}
        </nav>
        <button
          type="button"
          class="quiet"
          onClick={async () => {
            await signOut();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <h1>{page.title}</h1>
        <View />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
