/**
 * The module API. A module is one file that declares what it adds: hooks,
 * IQ handlers by namespace, stream features and disco features. It receives
 * the server API as an argument (no hidden globals).
 */
import type { Config } from '../config/types.js';
import type { Storage } from '../storage/types.js';
import type { Element } from '../xml/element.js';
import type { HookEvents } from './events.js';
import type { HookHandler } from './hooks.js';
import type { Logger } from './logger.js';
import type { IqHandler, IqTarget, Router } from './router.js';
import type { SessionRegistry } from './registry.js';
import type { Metrics } from '../metrics/metrics.js';

export interface DiscoIdentity {
  category: string;
  type: string;
  name?: string;
}

export interface ModuleApi {
  readonly name: string;
  readonly domain: string;
  readonly config: Config;
  /** This module's options (config.moduleOptions[name] or {}). */
  readonly options: Record<string, unknown>;
  readonly log: Logger;
  readonly storage: Storage;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly metrics: Metrics;
  hook<K extends keyof HookEvents>(name: K, handler: HookHandler<HookEvents[K]>, priority?: number): void;
  /** Handle IQs of `type` whose payload is in `ns`, addressed to the server or to an account's bare JID. */
  iq(target: IqTarget, type: 'get' | 'set', ns: string, handler: IqHandler): void;
  /** Advertise a feature in disco#info of the server ('server') or of every account ('account'). */
  discoFeature(ns: string, target?: 'server' | 'account'): void;
  discoIdentity(identity: DiscoIdentity, target?: 'server' | 'account'): void;
  /** Extra disco#info content (e.g. XEP-0128 forms). */
  discoExtension(el: Element, target?: 'server' | 'account'): void;
  /** Find another loaded module's exported service (e.g. 'mam'). */
  service<T>(name: string): T | undefined;
  provide(name: string, service: unknown): void;
  /** Called at shutdown, in reverse load order. */
  onClose(fn: () => void | Promise<void>): void;
}

export interface VeronaModule {
  readonly name: string;
  load(api: ModuleApi): void | Promise<void>;
}

export interface DiscoRegistry {
  features: { server: Set<string>; account: Set<string> };
  identities: { server: DiscoIdentity[]; account: DiscoIdentity[] };
  extensions: { server: Element[]; account: Element[] };
}
