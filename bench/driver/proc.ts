/**
 * Process measurements from /proc: a server's RSS and CPU time, and the driver's own CPU, so
 * every result can say whether the driver (rather than the server) was the bottleneck.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export function readRssKb(pid: number): number | null {
  if (!pid) return null;
  try {
    const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Linux reports CPU times in clock ticks; USER_HZ is 100 on every mainstream architecture. */
const CLK_TCK = 100;

/** utime+stime of a process in seconds (all threads), or null. */
export function readCpuSeconds(pid: number): number | null {
  if (!pid) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

export interface CpuWindow {
  /** driver CPU over the window, in percent of one core */
  driver_cpu_pct: number;
  /** server CPU over the window, in percent of one core (null without a PID) */
  server_cpu_pct: number | null;
}

/** Measures driver and server CPU between start() and stop(). */
export class CpuMeter {
  private t0 = 0;
  private self0 = process.cpuUsage();
  private srv0: number | null = null;

  constructor(private readonly pid: number) {}

  start(): void {
    this.t0 = performance.now();
    this.self0 = process.cpuUsage();
    this.srv0 = readCpuSeconds(this.pid);
  }

  stop(): CpuWindow {
    const wall = (performance.now() - this.t0) / 1000;
    const d = process.cpuUsage(this.self0);
    const srv1 = readCpuSeconds(this.pid);
    const pct = (sec: number): number => Math.round((sec / Math.max(wall, 1e-6)) * 1000) / 10;
    return {
      driver_cpu_pct: pct((d.user + d.system) / 1e6),
      server_cpu_pct: this.srv0 !== null && srv1 !== null ? pct(srv1 - this.srv0) : null,
    };
  }
}
