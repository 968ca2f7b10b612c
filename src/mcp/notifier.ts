import type { Notification } from '@modelcontextprotocol/sdk/types.js';
import type { Backend } from '../backends/backend.js';
import type { Catalogue } from './catalogue.js';
import { Router } from './router.js';
import type { FrontSession, SessionRegistry } from './session.js';

/**
 * Routes what backends announce to the client sessions it concerns: catalogue changes to every
 * session, log messages to the sessions with a request in flight on that backend (on the request's
 * own stream when it has one), resource updates to the sessions subscribed to that resource.
 */
export class Notifier {
  constructor(
    private readonly catalogue: Catalogue,
    private readonly sessions: SessionRegistry,
    private readonly backends: () => readonly Backend[],
  ) {}

  listsChanged(): void {
    const changed = this.catalogue.rebuild(this.backends());
    const methods: string[] = [];
    if (changed.tools) methods.push('notifications/tools/list_changed');
    if (changed.prompts) methods.push('notifications/prompts/list_changed');
    if (changed.resources) methods.push('notifications/resources/list_changed');
    if (methods.length === 0) return;
    for (const session of this.sessions.all()) {
      for (const method of methods) session.notify({ jsonrpc: '2.0', method });
    }
  }

  fromBackend(backend: Backend, notification: Notification): void {
    if (notification.method === 'notifications/message') return this.log(backend, notification);
    if (notification.method === 'notifications/resources/updated') {
      const uri = (notification.params as Record<string, unknown> | undefined)?.uri;
      if (typeof uri !== 'string') return;
      const exposed = this.catalogue.exposeUri(backend, uri);
      for (const session of this.sessions.all()) {
        if (session.subscriptions.has(exposed)) {
          session.notify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { ...notification.params, uri: exposed } });
        }
      }
    }
  }

  /** A notification from a session's own (`per-session`) backend connection: only that session gets it. */
  toSession(session: FrontSession, backend: Backend, notification: Notification): void {
    if (notification.method === 'notifications/message') {
      if (!Router.wantsLog(session, (notification.params as Record<string, unknown> | undefined)?.level)) return;
      const message = { jsonrpc: '2.0', method: notification.method, params: { ...notification.params, logger: prefixedLogger(backend, notification.params) } };
      for (const request of session.inflight.values()) {
        if (request.backend === backend.name && request.stream?.send(message)) return;
      }
      session.notify(message);
    } else if (notification.method === 'notifications/resources/updated') {
      const uri = (notification.params as Record<string, unknown> | undefined)?.uri;
      if (typeof uri !== 'string') return;
      const exposed = this.catalogue.exposeUri(backend, uri);
      if (session.subscriptions.has(exposed)) {
        session.notify({ jsonrpc: '2.0', method: notification.method, params: { ...notification.params, uri: exposed } });
      }
    }
  }

  private log(backend: Backend, notification: Notification): void {
    const message = { jsonrpc: '2.0', method: notification.method, params: { ...notification.params, logger: prefixedLogger(backend, notification.params) } };
    const level = (notification.params as Record<string, unknown> | undefined)?.level;
    let routed = false;
    for (const session of this.sessions.all()) {
      for (const request of session.inflight.values()) {
        if (request.backend !== backend.name) continue;
        routed = true;
        if (!Router.wantsLog(session, level)) break;
        if (!(request.stream && request.stream.send(message))) session.notify(message);
        break;
      }
    }
    if (routed) return;
    // Not tied to any request: only sessions that opted in with logging/setLevel receive it.
    for (const session of this.sessions.all()) {
      if (session.logLevel && Router.wantsLog(session, level)) session.notify(message);
    }
  }
}

function prefixedLogger(backend: Backend, params: unknown): string {
  const logger = (params as Record<string, unknown> | undefined)?.logger;
  return typeof logger === 'string' && logger ? `${backend.name}/${logger}` : backend.name;
}
