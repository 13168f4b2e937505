/** XEP-0202 Entity Time: UTC time and the server's offset. */
import { x } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import type { VeronaModule } from '../core/module.js';

export function tzo(date: Date): string {
  const off = -date.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

export const timeModule: VeronaModule = {
  name: 'time',
  load(api) {
    api.discoFeature(NS.TIME);
    api.iq('server', 'get', NS.TIME, () => {
      const now = new Date();
      return x('time', NS.TIME, {}, [x('tzo', NS.TIME, {}, [tzo(now)]), x('utc', NS.TIME, {}, [now.toISOString().replace(/\.\d{3}Z$/, 'Z')])]);
    });
  },
};
