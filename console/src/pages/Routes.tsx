import { useEffect, useState } from 'preact/hooks';
import { api, when } from '../api';
import { Problem, Notice } from '../components';

interface Route {
  name: string;
  path: string | null;
  path_prefix: string | null;
  host: string | null;
  methods: string[] | null;
  upstreams: string[];
  public: boolean;
  issuers: string[] | null;
  audience: string | null;
}

interface Shown {
  configuration: { routes?: Route[] } & Record<string, unknown>;
  reloadable: boolean;
  reloaded_at: number | null;
  fingerprint: string | null;
}

export function Routes() {
  const [shown, setShown] = useState<Shown | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = () =>
    api<Shown>('GET', '/admin/config')
      .then(setShown)
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);

  const reload = async () => {
    setMessage(null);
    setError(null);
    try {
      const r = await api<{ reloaded: boolean; routes: number }>('POST', '/admin/reload');
      setMessage(`Reloaded: ${r.routes} route${r.routes === 1 ? '' : 's'} now serve.`);
    } catch (e) {
      setError(`Reload refused, the running configuration keeps serving: ${(e as Error).message}`);
    }
    await load();
  };

  const routes = shown?.configuration.routes ?? [];
  return (
    <>
      <div class="toolbar">
        <button type="button" onClick={reload} disabled={!shown?.reloadable}>
          Reload
        </button>
        {shown && !shown.reloadable && <span> (started without --config: nothing to reload from)</span>}
      </div>
      <Notice text={message} />
      <Problem text={error} />
      {shown?.reloaded_at && (
        <p>
          Routes last reloaded {when(shown.reloaded_at)} (file fingerprint <code>{shown.fingerprint}</code>).
        </p>
      )}
      <div class="scroll">
        <table>
          <caption>Routes in effect (read-only: they change by editing the file and reloading)</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Serves</th>
              <th scope="col">Methods</th>
              <th scope="col">Upstreams</th>
              <th scope="col">Tokens</th>
              <th scope="col">Audience</th>
            </tr>
          </thead>
          <tbody>
            {routes.map((r) => (
              <tr key={r.name} data-route={r.name}>
                <td>{r.name}</td>
                <td>
                  <code>
                    {r.host ?? ''}
                    {r.path ?? `${r.path_prefix}…`}
                  </code>
                </td>
                <td>{r.methods?.join(' ') ?? 'any'}</td>
                <td>{r.upstreams.join(' ')}</td>
                <td>{r.public ? 'none (public)' : `from ${r.issuers?.join(', ')}`}</td>
                <td>{r.audience ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {shown && routes.length === 0 && <p>No routes: the gateway forwards nothing.</p>}
      <details>
        <summary>The whole effective configuration</summary>
        <pre class="json" tabIndex={0} aria-label="Effective configuration">
          {shown ? JSON.stringify(shown.configuration, null, 2) : '…'}
        </pre>
      </details>
    </>
  );
}
