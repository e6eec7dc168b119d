import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { metricsText } from '../api';
import { byLabel, parse, quantile, Sample, total } from '../metrics';
import { Problem } from '../components';

/** Seconds between readings, and readings kept (five minutes). */
const EVERY = 3;
const KEEP = 100;

const REQUESTS = 'tokengate_gateway_requests_total';
const VERIFICATIONS = 'tokengate_gateway_token_verifications_total';
const LIMITS = 'tokengate_rate_limit_requests_total';
const DURATION = 'tokengate_gateway_request_duration_seconds_bucket';
const CACHE_EVENTS = 'tokengate_response_cache_events_total';

interface Reading {
  at: number;
  samples: Sample[];
}

/** What one interval between two readings showed. */
interface Point {
  at: number;
  rps: number;
  ok: number;
  clientErrors: number;
  serverErrors: number;
  denials: number;
  limited: number;
  p50: number | null;
  p99: number | null;
  tokenCache: number | null;
  responseCache: number | null;
}

function ratio(hits: number, misses: number): number | null {
  return hits + misses > 0 ? (100 * hits) / (hits + misses) : null;
}

function point(a: Reading, b: Reading): Point {
  const dt = Math.max((b.at - a.at) / 1000, 0.001);
  const rate = (name: string, keep?: (l: Record<string, string>) => boolean) =>
    Math.max(total(b.samples, name, keep) - total(a.samples, name, keep), 0) / dt;
  const status = (lo: number, hi: number) => (l: Record<string, string>) =>
    Number(l.status) >= lo && Number(l.status) < hi;
  const buckets = (r: Reading) => byLabel(r.samples, DURATION, 'le');
  const delta = (name: string, keep?: (l: Record<string, string>) => boolean) =>
    total(b.samples, name, keep) - total(a.samples, name, keep);
  const p = (q: number) => {
    const s = quantile(buckets(a), buckets(b), q);
    return s === null ? null : s * 1000;
  };
  return {
    at: b.at / 1000,
    rps: rate(REQUESTS),
    ok: rate(REQUESTS, status(200, 400)),
    clientErrors: rate(REQUESTS, status(400, 500)),
    serverErrors: rate(REQUESTS, status(500, 600)),
    denials: rate(VERIFICATIONS, (l) => l.outcome !== 'valid'),
    limited: rate(LIMITS, (l) => l.outcome === 'limited'),
    p50: p(0.5),
    p99: p(0.99),
    tokenCache: ratio(delta('tokengate_token_cache_hits_total'), delta('tokengate_token_cache_misses_total')),
    responseCache: ratio(
      delta(CACHE_EVENTS, (l) => l.event === 'hit'),
      delta(CACHE_EVENTS, (l) => l.event === 'miss'),
    ),
  };
}

interface ChartProps {
  id: string;
  title: string;
  unit: string;
  series: { label: string; value: (p: Point) => number | null; stroke: string }[];
  points: Point[];
}

/** One live line chart (uPlot, on a canvas), with its latest values as text beside it. */
function Chart({ id, title, unit, series, points }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => [
    points.map((p) => p.at),
    ...series.map((s) => points.map((p) => s.value(p))),
  ];
  useEffect(() => {
    if (!box.current) return;
    const width = () => Math.max((box.current?.clientWidth ?? 300) - 8, 200);
    plot.current = new uPlot(
      {
        width: width(),
        height: 180,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true }))],
        axes: [{}, { label: unit, size: 60 }],
        legend: { show: true },
      },
      data(),
      box.current,
    );
    const resized = new ResizeObserver(() => plot.current?.setSize({ width: width(), height: 180 }));
    resized.observe(box.current);
    return () => {
      resized.disconnect();
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(data());
  }, [points]);
  const latest = points[points.length - 1];
  const shown = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toFixed(v < 10 ? 2 : 0));
  return (
    <figure class="chart" data-testid={id} data-latest={latest ? String(series[0].value(latest) ?? '') : ''}>
      <figcaption>
        {title}:{' '}
        {series.map((s, i) => (
          <span>
            {i > 0 && ', '}
            {s.label} {shown(latest ? s.value(latest) : null)} {unit}
          </span>
        ))}
      </figcaption>
      <div ref={box} aria-hidden="true" />
    </figure>
  );
}

export function Overview() {
  const [points, setPoints] = useState<Point[]>([]);
  const [routes, setRoutes] = useState<[string, number][]>([]);
  const [reasons, setReasons] = useState<[string, number][]>([]);
  const [error, setError] = useState<string | null>(null);
  const last = useRef<Reading | null>(null);

  useEffect(() => {
    let stopped = false;
    const read = async () => {
      // Not while the tab is hidden: an unattended Overview would otherwise keep the
      // session alive past its idle timeout, and read metrics no one looks at.
      if (document.hidden) {
        last.current = null;
        if (!stopped) timer = setTimeout(read, EVERY * 1000);
        return;
      }
      try {
        const reading = { at: Date.now(), samples: parse(await metricsText()) };
        const before = last.current;
        last.current = reading;
        setError(null);
        if (before) {
          setPoints((old) => [...old, point(before, reading)].slice(-KEEP));
          const dt = Math.max((reading.at - before.at) / 1000, 0.001);
          const now = byLabel(reading.samples, REQUESTS, 'route');
          const then = byLabel(before.samples, REQUESTS, 'route');
          setRoutes([...now].map(([r, n]) => [r, Math.max(n - (then.get(r) ?? 0), 0) / dt] as [string, number]));
        }
        const refused = byLabel(reading.samples, VERIFICATIONS, 'outcome', (l) => l.outcome !== 'valid');
        setReasons([...refused].sort((x, y) => y[1] - x[1]));
      } catch (e) {
        setError((e as Error).message);
      }
      if (!stopped) timer = setTimeout(read, EVERY * 1000);
    };
    let timer = setTimeout(read, 0);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  return (
    <>
      <p>
        This node's gateway, read every {EVERY} seconds from its metrics (<code>GET /admin/metrics</code>, the
        same as <code>/metrics</code>).
      </p>
      <Problem text={error} />
      <div class="charts">
        <Chart
          id="chart-requests"
          title="Requests per second"
          unit="req/s"
          points={points}
          series={[
            { label: 'all', value: (p) => p.rps, stroke: '#0b5cad' },
            { label: '2xx-3xx', value: (p) => p.ok, stroke: '#146c2e' },
            { label: '4xx', value: (p) => p.clientErrors, stroke: '#b35c00' },
            { label: '5xx', value: (p) => p.serverErrors, stroke: '#a4161a' },
          ]}
        />
        <Chart
          id="chart-denials"
          title="Refused per second"
          unit="req/s"
          points={points}
          series={[
            { label: 'token refused', value: (p) => p.denials, stroke: '#a4161a' },
            { label: 'rate-limited', value: (p) => p.limited, stroke: '#6a3d9a' },
          ]}
        />
        <Chart
          id="chart-latency"
          title="Latency to the response head"
          unit="ms"
          points={points}
          series={[
            { label: 'p50', value: (p) => p.p50, stroke: '#0b5cad' },
            { label: 'p99', value: (p) => p.p99, stroke: '#a4161a' },
          ]}
        />
        <Chart
          id="chart-caches"
          title="Cache hit ratio"
          unit="%"
          points={points}
          series={[
            { label: 'verified tokens', value: (p) => p.tokenCache, stroke: '#0b5cad' },
            { label: 'responses', value: (p) => p.responseCache, stroke: '#146c2e' },
          ]}
        />
      </div>
      <div class="scroll">
        <table>
          <caption>Requests per second by route, over the last {EVERY} seconds</caption>
          <thead>
            <tr>
              <th scope="col">Route</th>
              <th scope="col">req/s</th>
            </tr>
          </thead>
          <tbody>
            {routes.map(([route, rps]) => (
              <tr key={route}>
                <td>{route === '-' ? '(no route matched)' : route}</td>
                <td>{rps.toFixed(2)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="scroll">
        <table>
          <caption>Tokens refused since the node started, by reason</caption>
          <thead>
            <tr>
              <th scope="col">Reason</th>
              <th scope="col">Count</th>
            </tr>
          </thead>
          <tbody>
            {reasons.map(([reason, n]) => (
              <tr key={reason}>
                <td>
                  <code>{reason}</code>
                </td>
                <td>{n}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
