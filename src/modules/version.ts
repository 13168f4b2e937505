/** XEP-0092 Software Version. The OS is reported only when configured (it helps attackers more than users). */
import os from 'node:os';
import { createRequire } from 'node:module';
import { x } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import type { VeronaModule } from '../core/module.js';

const require = createRequire(import.meta.url);

export function veronaVersion(): string {
  try {
    return (require('../../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export const versionModule: VeronaModule = {
  name: 'version',
  load(api) {
    api.discoFeature(NS.VERSION);
    const showOs = api.options.showOs === true;
    const version = veronaVersion();
    api.iq('server', 'get', NS.VERSION, () =>
      x('query', NS.VERSION, {}, [
        x('name', NS.VERSION, {}, ['Verona']),
        x('version', NS.VERSION, {}, [version]),
        showOs ? x('os', NS.VERSION, {}, [`${os.type()} ${os.release()}`]) : undefined,
      ]),
    );
  },
};
