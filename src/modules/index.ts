/**
 * The module list, in load order. Load order matters only for services one
 * module provides to another; hook order is set by priorities (core/events.ts).
 */
import type { VeronaModule } from '../core/module.js';
import { discoModule } from './disco.js';
import { pingModule } from './ping.js';
import { versionModule } from './version.js';
import { timeModule } from './time.js';
import { rosterModule } from './roster/index.js';

export const allModules: readonly VeronaModule[] = [discoModule, pingModule, versionModule, timeModule, rosterModule];
