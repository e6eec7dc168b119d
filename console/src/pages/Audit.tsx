import { useEffect, useState } from 'preact/hooks';
import { api, AuditEvent, AuditVerification, Checkpoint, when } from '../api';
import { Problem } from '../components';

const PAGE = 50;

export function Audit() {
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [after, setAfter] = useState(0);
  const [history, setHistory] = useState<number[]>([]);
  const [filter, setFilter] = useState('');
  const [checkpoint, setCheckpoint] = useState<Checkpoint | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [verification, setVerification] = useState<AuditVerification | null>(null);
  const [verifying, setVerifying] = useState(false);

  const verify = async () => {
    setVerifying(true);
    setVerification(null);
    setError(null);
    try {
      setVerification(await api<AuditVerification>('POST', '/admin/audit/verify'));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setVerifying(false);
    }
  };

  useEffect(() => {
    api<{ events: AuditEvent[] }>('GET', `/admin/audit?after=${after}&limit=${PAGE}`)
      .then((r) => setEvents(r.events))
      .catch((e) => setError(e.message));
  }, [after]);
  useEffect(() => {
    api<Checkpoint>('GET', '/admin/audit/checkpoint')
      .then(setCheckpoint)
      .catch(() => setCheckpoint(null));
  }, []);

  const shown = filter
    ? events.filter((e) =>
        [e.event, e.client_id, e.subject, e.jti, e.outcome, e.reason].some((v) => v?.includes(filter)),
      )
    : events;
  const last = events.length ? events[events.length - 1].id : after;

  return (
    <>
      <section class="card" aria-labelledby="checkpoint-title">
        <h2 id="checkpoint-title">Newest checkpoint</h2>
        {checkpoint ? (
          <dl>
            <dt>Tree size</dt>
            <dd>{checkpoint.size}</dd>
            <dt>Root hash</dt>
            <dd>
              <code>{checkpoint.root}</code>
            </dd>
            <dt>Signed</dt>
            <dd>{when(checkpoint.created_at)}</dd>
          </dl>
        ) : (
          <p>No checkpoint has been signed yet.</p>
        )}
        <button type="button" onClick={verify} disabled={verifying}>
          Verify
        </button>
        {verifying && <p role="status">Verifying every event and checkpoint…</p>}
        {verification?.ok && (
          <p role="status" class="verified">
            {verification.summary}
          </p>
        )}
        {verification && !verification.ok && (
          <p role="alert" class="error">
            The log does not verify: {verification.summary}
          </p>
        )}
        <p>
          This checks with the audit keys the database holds. To check without trusting it,
          verify an export offline with <code>tokengate audit export --out log.jsonl</code> and{' '}
          <code>tokengate audit verify log.jsonl --keys keys.json</code>.
        </p>
      </section>
      <Problem text={error} />
      <div class="toolbar">
        <label for="audit-filter">Filter this page</label>
        <input id="audit-filter" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        <button
          type="button"
          disabled={history.length === 0}
          onClick={() => {
            setAfter(history[history.length - 1] ?? 0);
            setHistory(history.slice(0, -1));
          }}
        >
          Previous page
        </button>
        <button
          type="button"
          disabled={events.length < PAGE}
          onClick={() => {
            setHistory([...history, after]);
            setAfter(last);
          }}
        >
          Next page
        </button>
      </div>
      <div class="scroll">
        <table>
          <caption>Audit events</caption>
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Outcome</th>
              <th scope="col">Client</th>
              <th scope="col">Subject</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.id}>
                <td>{e.seq ?? '–'}</td>
                <td>{when(e.time)}</td>
                <td>{e.event}</td>
                <td>{e.outcome}</td>
                <td>{e.client_id ?? ''}</td>
                <td>{e.subject ?? ''}</td>
                <td>{e.reason ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
