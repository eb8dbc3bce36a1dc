// The web UI's entry: the token gate, then the sidebar and the page of the current route.
import './style.css';

import { render } from 'preact';
import { useEffect } from 'preact/hooks';

import { get, needsToken } from './api';
import { startFeed, stopFeed } from './feed';
import { ApprovePage, Inbox } from './inbox';
import { Login } from './login';
import { NewSession } from './new-session';
import { PoliciesPage } from './policies-page';
import { onLinkClick, route } from './router';
import { SessionPage } from './session-page';
import { Sidebar } from './sidebar';

function Page() {
  const r = route.value;
  switch (r.page) {
    case 'new':
      return <NewSession />;
    case 'session':
      return <SessionPage key={r.id} id={r.id} item={r.item} />;
    case 'approve':
      return <ApprovePage session={r.session} elicitation={r.elicitation} />;
    case 'inbox':
      return <Inbox />;
    case 'policies':
      return <PoliciesPage />;
    case 'missing':
      return (
        <main class="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{r.path}</code>. <a href="/">Start a session</a>.
          </p>
        </main>
      );
  }
}

function App() {
  useEffect(() => {
    // One cheap call tells whether this server wants a token before anything streams.
    get('/v1/me').then(startFeed, () => undefined);
    return stopFeed;
  }, []);
  if (needsToken.value) return <Login />;
  return (
    <div class="app" onClick={onLinkClick}>
      <a class="skip-link" href="#page-title">
        Skip to content
      </a>
      <Sidebar />
      <Page />
    </div>
  );
}

render(<App />, document.getElementById('app')!);
