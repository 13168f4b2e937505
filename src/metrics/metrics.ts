/**
 * A tiny metrics registry with Prometheus text exposition. Counters for every
 * path that could lose or duplicate a message live here (see docs/operations.md).
 */
type Labels = Record<string, string>;

function key(labels: Labels | undefined): string {
  if (!labels) return '';
  const ks = Object.keys(labels).sort();
  return ks.map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`).join(',');
}

export class Counter {
  readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels?: Labels, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
}

export class Gauge {
  constructor(readonly name: string, readonly help: string, readonly read: () => number) {}
}

export class Metrics {
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, Gauge>();

  counter(name: string, help: string): Counter {
    let c = this.counters.get(name);
    if (!c) {
      c = new Counter(name, help);
      this.counters.set(name, c);
    }
    return c;
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, new Gauge(name, help, read));
  }

  /** Prometheus text format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const c of this.counters.values()) {
      out.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} counter`);
      if (c.values.size === 0) out.push(`${c.name} 0`);
      for (const [k, v] of c.values) out.push(k ? `${c.name}{${k}} ${v}` : `${c.name} ${v}`);
    }
    for (const g of this.gauges.values()) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`, `${g.name} ${g.read()}`);
    }
    return out.join('\n') + '\n';
  }
}
