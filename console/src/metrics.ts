// The node's metrics (GET /admin/metrics, the OpenMetrics text of /metrics) read into
// samples, and what the Overview charts worked out from two readings a few seconds apart.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One `name{label="value",...} number` line; `null` for anything else. */
function parseLine(line: string): Sample | null {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  if (space < 0) return null;
  const labels: Record<string, string> = {};
  let rest: string;
  let name: string;
  if (brace >= 0 && brace < space) {
    name = line.slice(0, brace);
    let i = brace + 1;
    while (i < line.length && line[i] !== '}') {
      const eq = line.indexOf('="', i);
      if (eq < 0) return null;
      const key = line.slice(i, eq);
      let value = '';
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          j++;
          value += line[j] === 'n' ? '\n' : line[j];
        } else {
          value += line[j];
        }
      }
      labels[key] = value;
      i = j + 1;
      if (line[i] === ',') i++;
    }
    rest = line.slice(i + 1).trim();
  } else {
    name = line.slice(0, space);
    rest = line.slice(space + 1).trim();
  }
  const text = rest.split(' ')[0];
  const value = Number(text);
  return text === '' || Number.isNaN(value) ? null : { name, labels, value };
}

export function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map(parseLine)
    .filter((s): s is Sample => s !== null);
}

/** The sum of the samples named `name` whose labels pass `keep`. */
export function total(samples: Sample[], name: string, keep: (l: Record<string, string>) => boolean = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((sum, s) => sum + s.value, 0);
}

/** Sums by one label's value. */
export function byLabel(samples: Sample[], name: string, label: string, keep: (l: Record<string, string>) => boolean = () => true) {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !keep(s.labels)) continue;
    const key = s.labels[label] ?? '';
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/**
 * The `q` quantile (0..1) of the observations between two readings of a histogram's
 * cumulative buckets (`le` → count), interpolated within its bucket; `null` without any.
 */
export function quantile(before: Map<string, number>, after: Map<string, number>, q: number): number | null {
  const bounds = [...after.keys()]
    .map((le) => ({ le, bound: le === '+Inf' ? Infinity : Number(le) }))
    .sort((a, b) => a.bound - b.bound);
  const counts = bounds.map(({ le, bound }) => ({ bound, n: (after.get(le) ?? 0) - (before.get(le) ?? 0) }));
  const all = counts.length ? counts[counts.length - 1].n : 0;
  if (all <= 0) return null;
  const want = q * all;
  let lower = 0;
  let below = 0;
  for (const { bound, n } of counts) {
    if (n >= want) {
      if (bound === Infinity) return lower;
      return lower + ((want - below) / Math.max(n - below, 1)) * (bound - lower);
    }
    lower = bound;
    below = n;
  }
  return lower;
}
