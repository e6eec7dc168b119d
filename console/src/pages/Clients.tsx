import { useEffect, useState } from 'preact/hooks';
import { api, Client, Credentials, when } from '../api';
import { Problem } from '../components';

const words = (s: string) => s.split(/[\s,]+/).filter(Boolean);

/** The secret of a created or rotated client, shown once: the server keeps only its hash. */
function SecretOnce({ creds, onDone }: { creds: Credentials; onDone: () => void }) {
  return (
    <section class="once" role="status" aria-labelledby="once-title">
      <h2 id="once-title">Credentials of {creds.client_id}</h2>
      {creds.client_secret ? (
        <>
          <p>Copy the secret now: it is not shown again.</p>
          <dl>
            <dt>Client ID</dt>
            <dd>
              <code data-testid="client-id">{creds.client_id}</code>
            </dd>
            <dt>Client secret</dt>
            <dd>
              <code data-testid="client-secret">{creds.client_secret}</code>
            </dd>
          </dl>
        </>
      ) : (
        <p>This client has no secret (it authenticates with its keys, or is public).</p>
      )}
      <button type="button" onClick={onDone}>
        Done
      </button>
    </section>
  );
}

function CreateClient({ onCreated }: { onCreated: (c: Credentials) => void }) {
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState('');
  const [audiences, setAudiences] = useState('');
  const [method, setMethod] = useState('client_secret_basic');
  const [redirects, setRedirects] = useState('');
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const creds = await api<Credentials>('POST', '/admin/clients', {
        name,
        scopes: words(scopes),
        audiences: words(audiences),
        auth_method: method,
        redirect_uris: words(redirects),
      });
      setName('');
      setScopes('');
      setAudiences('');
      setRedirects('');
      onCreated(creds);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <form class="card" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">New client</h2>
      <label for="client-name">Name</label>
      <input id="client-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      <label for="client-scopes">Scopes (space-separated)</label>
      <input id="client-scopes" value={scopes} onInput={(e) => setScopes((e.target as HTMLInputElement).value)} />
      <label for="client-audiences">Audiences (space-separated)</label>
      <input
        id="client-audiences"
        value={audiences}
        onInput={(e) => setAudiences((e.target as HTMLInputElement).value)}
      />
      <label for="client-method">Authentication</label>
      <select id="client-method" value={method} onChange={(e) => setMethod((e.target as HTMLSelectElement).value)}>
        <option value="client_secret_basic">client_secret_basic</option>
        <option value="client_secret_post">client_secret_post</option>
        <option value="none">none (public, sign-in only)</option>
      </select>
      <label for="client-redirects">Redirect URIs (space-separated, for sign-in)</label>
      <input
        id="client-redirects"
        value={redirects}
        onInput={(e) => setRedirects((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Create client</button>
      <Problem text={error} />
    </form>
  );
}

export function Clients() {
  const [clients, setClients] = useState<Client[] | null>(null);
  const [shown, setShown] = useState<Credentials | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = () =>
    api<{ clients: Client[] }>('GET', '/admin/clients')
      .then((r) => setClients(r.clients))
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);

  const act = async (what: () => Promise<unknown>) => {
    setError(null);
    try {
      await what();
    } catch (e) {
      setError((e as Error).message);
    }
    await load();
  };
  const path = (c: Client) => `/admin/clients/${encodeURIComponent(c.client_id)}`;

  return (
    <>
      {shown && <SecretOnce creds={shown} onDone={() => setShown(null)} />}
      <Problem text={error} />
      <CreateClient
        onCreated={(c) => {
          setShown(c);
          load();
        }}
      />
      <div class="scroll">
        <table>
          <caption>Registered clients</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Client ID</th>
              <th scope="col">Authentication</th>
              <th scope="col">Scopes</th>
              <th scope="col">Audiences</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {clients?.map((c) => (
              <tr key={c.client_id} data-client={c.client_id}>
                <td>{c.name}</td>
                <td>
                  <code>{c.client_id}</code>
                </td>
                <td>{c.auth_method}</td>
                <td>{c.scopes.join(' ')}</td>
                <td>{c.audiences.join(' ')}</td>
                <td>{when(c.created_at)}</td>
                <td>{c.disabled ? 'disabled' : 'enabled'}</td>
                <td class="actions">
                  <button
                    type="button"
                    onClick={() => act(() => api('POST', `${path(c)}/${c.disabled ? 'enable' : 'disable'}`))}
                  >
                    {c.disabled ? 'Enable' : 'Disable'}
                    <span class="visually-hidden"> {c.name}</span>
                  </button>
                  {c.auth_method.startsWith('client_secret') && (
                    <button
                      type="button"
                      onClick={() =>
                        act(async () => setShown(await api<Credentials>('POST', `${path(c)}/rotate-secret`)))
                      }
                    >
                      Rotate secret<span class="visually-hidden"> of {c.name}</span>
                    </button>
                  )}
                  <button
                    type="button"
                    class="danger"
                    onClick={() => {
                      if (confirm(`Delete ${c.name} (${c.client_id})? This cannot be undone.`)) {
                        act(() => api('DELETE', path(c)));
                      }
                    }}
                  >
                    Delete<span class="visually-hidden"> {c.name}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {clients?.length === 0 && <p>No clients yet.</p>}
    </>
  );
}
