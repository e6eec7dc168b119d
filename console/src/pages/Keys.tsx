import { useEffect, useState } from 'preact/hooks';
import { api, Key, when } from '../api';
import { Problem, Notice } from '../components';

export function Keys() {
  const [keys, setKeys] = useState<Key[] | null>(null);
  const [jwks, setJwks] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = async () => {
    try {
      const ring = (await api<{ keys: Key[] }>('GET', '/admin/keys')).keys;
      setKeys(ring);
      // What the JWKS publishes: the public half of every signing and encryption key that
      // is not removed (pending ones first of all, so that verifiers learn them early).
      // Read from the admin API, which the admin listener serves, unlike the JWKS itself.
      const published = ring
        .filter((k) => k.state !== 'removed' && k.use !== 'audit' && k.public_jwk)
        .map((k) => k.public_jwk);
      setJwks(JSON.stringify({ keys: published }, null, 2));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    load();
  }, []);

  const rotate = async (use: string) => {
    setError(null);
    setMessage(null);
    try {
      const r = await api<{ kid: string; activate_at: number }>('POST', '/admin/keys/rotate', { use });
      setMessage(`New ${use} key ${r.kid}: published now, used from ${when(r.activate_at)}.`);
    } catch (e) {
      setError((e as Error).message);
    }
    await load();
  };

  return (
    <>
      <div class="toolbar">
        <button type="button" onClick={() => rotate('sig')}>
          Rotate signing key
        </button>
        <button type="button" onClick={() => rotate('enc')}>
          Rotate encryption key
        </button>
      </div>
      <Notice text={message} />
      <Problem text={error} />
      <div class="scroll">
        <table>
          <caption>The key ring</caption>
          <thead>
            <tr>
              <th scope="col">Key ID</th>
              <th scope="col">Use</th>
              <th scope="col">Algorithm</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
              <th scope="col">Active from</th>
              <th scope="col">Retired</th>
              <th scope="col">Removed after</th>
            </tr>
          </thead>
          <tbody>
            {keys?.map((k) => (
              <tr key={k.kid}>
                <td>
                  <code>{k.kid}</code>
                </td>
                <td>{k.use}</td>
                <td>{k.alg}</td>
                <td>{k.state}</td>
                <td>{when(k.created_at)}</td>
                <td>{when(k.activate_at)}</td>
                <td>{when(k.retired_at)}</td>
                <td>{when(k.remove_after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Published keys (the JWKS)</h2>
      <pre class="json" tabIndex={0} aria-label="Published JWKS">
        {jwks ?? '…'}
      </pre>
    </>
  );
}
