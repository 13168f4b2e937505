/**
 * Extra HTTP routes that modules serve on the web listener (the upload
 * service's /upload/...). A module provides them as the 'http-routes'
 * service (an array it pushes to) before the listeners start; the listener
 * hands every request whose path starts with `prefix` to `handle`, before its
 * own GET/HEAD-only rule, so a route answers any method (PUT, OPTIONS) itself.
 */
import type http from 'node:http';
import type { ClientInfo } from './http.js';

export interface HttpRoute {
  /** Path prefix, e.g. '/upload/'. */
  readonly prefix: string;
  /** Seconds a request on this route may take to arrive in full (raises the listener's request timeout). */
  readonly requestTimeout?: number;
  handle(req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void;
}

export const HTTP_ROUTES_SERVICE = 'http-routes';
