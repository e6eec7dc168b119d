import { useState } from 'preact/hooks';
import { api, IssuedToken, when } from '../api';
import { Problem, Notice } from '../components';

const FIELDS = [
  { key: 'client_id', label: 'Client ID' },
  { key: 'subject', label: 'Subject' },
  { key: 'jti', label: 'Token ID (jti)' },
];

/** "in 4 min", "2 h ago": how far a time is from now. */
function fromNow(unix: number): string {
  const seconds = unix - Math.floor(Date.now() / 1000);
  const span = Math.abs(seconds);
  const amount =
    span < 90 ? `${span} s` : span < 5400 ? `${Math.round(span / 60)} min` : `${Math.round(span / 3600)} h`;
  return seconds >= 0 ? `in ${amount}` : `${amount} ago`;
}

export function Tokens() {
  const [field, setField] = useState('client_id');
  const [value, setValue] = useState('');
  const [tokens, setTokens] = useState<IssuedToken[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const search = async () => {
    setError(null);
    try {
      const query = new URLSearchParams({ [field]: value.trim() });
      setTokens((await api<{ tokens: IssuedToken[] }>('GET', `/admin/tokens?${query}`)).tokens);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const revoke = async (t: IssuedToken) => {
    setError(null);
    try {
      await api('POST', '/admin/revocations', { jti: t.jti });
      setMessage(`Token ${t.jti} is revoked; gateways refuse it within a second.`);
    } catch (e) {
      setError((e as Error).message);
    }
    await search();
  };

  return (
    <>
      <form
        class="card"
        onSubmit={(e) => {
          e.preventDefault();
          setMessage(null);
          search();
        }}
      >
        <label for="token-field">Search by</label>
        <select id="token-field" value={field} onChange={(e) => setField((e.target as HTMLSelectElement).value)}>
          {FIELDS.map((f) => (
            <option value={f.key}>{f.label}</option>
          ))}
        </select>
        <label for="token-value">Value</label>
        <input id="token-value" required value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
        <button type="submit">Search</button>
      </form>
      <Notice text={message} />
      <Problem text={error} />
      {tokens && (
        <div class="scroll">
          <table>
            <caption>
              {tokens.length} token{tokens.length === 1 ? '' : 's'} found, newest first
            </caption>
            <thead>
              <tr>
                <th scope="col">Token ID (jti)</th>
                <th scope="col">Client</th>
                <th scope="col">Subject</th>
                <th scope="col">Audience</th>
                <th scope="col">Scope</th>
                <th scope="col">Issued</th>
                <th scope="col">Expires</th>
                <th scope="col">State</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => (
                <tr key={t.jti} data-jti={t.jti}>
                  <td>
                    <code>{t.jti}</code>
                  </td>
                  <td>
                    <code>{t.client_id}</code>
                  </td>
                  <td>{t.subject}</td>
                  <td>{t.audience}</td>
                  <td>{t.scope}</td>
                  <td>{when(t.issued_at)}</td>
                  <td title={when(t.expires_at)}>{fromNow(t.expires_at)}</td>
                  <td>{t.state}</td>
                  <td class="actions">
                    {t.state === 'active' && (
                      <button type="button" class="danger" onClick={() => revoke(t)}>
                        Revoke<span class="visually-hidden"> token {t.jti}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
