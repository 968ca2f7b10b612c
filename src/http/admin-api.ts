/**
 * The admin API (`/admin/api/*`, JSON; DESIGN.md §5 and §7 "Admin"): operator view and revocation of
 * the Authorization Server's clients, consents and sessions, over `AuthAdmin` (src/oauth/admin.ts).
 *
 * | method and path                                   | answer                                   |
 * | ------------------------------------------------- | ---------------------------------------- |
 * | `GET /admin/api/clients`                          | `{ clients: ClientSummary[] }`           |
 * | `GET /admin/api/clients/:id`                      | `ClientDetails`                          |
 * | `DELETE /admin/api/clients/:id`                   | `DeletedClient`                          |
 * | `DELETE /admin/api/clients/:id/consents/:subject` | `RevokedConsent`                         |
 * | `GET /admin/api/sessions?client_id=&subject=`     | `{ sessions: SessionSummary[] }`         |
 * | `DELETE /admin/api/sessions/:sid`                 | `RevokedSession`                         |
 *
 * Authentication goes through the same ProviderChain as `/mcp` (a 401 carries the same
 * `WWW-Authenticate` challenge), and the identity must have the `admin` role (403 otherwise).
 * Path segments are percent-decoded after splitting, so a client id that is an https URL is sent
 * as one `encodeURIComponent`-ed segment. Errors are `{ error, error_description }`: 400, 401, 403,
 * 404 (unknown id or route, or no Authorization Server configured), 405, 409 (a pre-registered
 * client cannot be deleted), 503 (state store unreachable). Every request that passes
 * authentication is written to the audit log with the admin's subject and what it touched; refused
 * ones too.
 *
 * No CORS headers are sent: the API is for operators' tools and the CLI, not for browser pages.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthRequest, Identity } from '../auth/types.js';
import type { Logger } from '../log.js';
import { AdminError, type AuthAdmin } from '../oauth/admin.js';
import { StoreUnavailableError } from '../store/types.js';
import type { AuthFailure, RequestNote } from './server.js';
import { json } from './server.js';
import { normalizePeerAddress } from './peer.js';

export const ADMIN_API_PREFIX = '/admin/api';
export const ADMIN_ROLE = 'admin';

export interface AdminApiDeps {
  /** The admin operations; undefined when the Authorization Server is not configured. */
  admin?: AuthAdmin;
  /** The ProviderChain, as `/mcp` uses it (with its audit line). */
  authenticate(request: AuthRequest): Promise<{ ok: true; identity: Identity } | ({ ok: false } & AuthFailure)>;
  audit: Logger;
  logger: Logger;
}

type Route =
  | { action: 'list_clients' }
  | { action: 'show_client'; clientId: string }
  | { action: 'delete_client'; clientId: string }
  | { action: 'revoke_consent'; clientId: string; subject: string }
  | { action: 'list_sessions'; clientId?: string; subject?: string }
  | { action: 'revoke_session'; sid: string };

class RouteError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** Answers `/admin/api` and everything under it; returns false for other paths. */
export function createAdminApi(deps: AdminApiDeps): (req: IncomingMessage, res: ServerResponse, path: string, note?: RequestNote) => Promise<boolean> {
  return async (req, res, path, note) => {
    if (path !== ADMIN_API_PREFIX && !path.startsWith(`${ADMIN_API_PREFIX}/`)) return false;
    req.resume(); // no route reads a body
    if (!deps.admin) {
      json(res, 404, { error: 'not_found', error_description: 'the admin API manages the OAuth Authorization Server, which is not configured on this gateway (add "oauth_as" to serverAuth.providers with a serverAuth.oauthAs block)' });
      return true;
    }
    const outcome = await deps.authenticate({ headers: req.headers, peerAddress: normalizePeerAddress(req.socket.remoteAddress) });
    if (!outcome.ok) {
      json(res, outcome.status, { error: 'unauthorized', error_description: outcome.description }, { 'www-authenticate': outcome.wwwAuthenticate });
      return true;
    }
    const admin = outcome.identity;
    if (note) note.subject = admin.subject;
    if (!admin.roles.includes(ADMIN_ROLE)) {
      deps.audit.warn({ event: 'admin', decision: 'deny', method: req.method, path, admin: admin.subject, provider: admin.via, via: admin.via, reason: `no "${ADMIN_ROLE}" role` }, 'admin API refused');
      json(res, 403, { error: 'forbidden', error_description: `the admin API needs the "${ADMIN_ROLE}" role` });
      return true;
    }
    let route: Route;
    try {
      route = parseRoute(req.method ?? 'GET', path, req.url ?? path);
    } catch (error) {
      if (!(error instanceof RouteError)) throw error;
      json(res, error.status, { error: error.code, error_description: error.message }, error.headers);
      return true;
    }
    try {
      const { status, body, detail } = await run(deps.admin, route);
      deps.audit.info({ event: 'admin', decision: 'allow', action: route.action, admin: admin.subject, provider: admin.via, via: admin.via, ...detail }, `admin: ${route.action.replace(/_/g, ' ')}`);
      json(res, status, body);
    } catch (error) {
      if (error instanceof AdminError) {
        deps.audit.info({ event: 'admin', decision: 'refused', action: route.action, admin: admin.subject, provider: admin.via, via: admin.via, ...routeDetail(route), reason: error.message }, `admin: ${route.action.replace(/_/g, ' ')} refused`);
        json(res, error.status, { error: error.code, error_description: error.message });
      } else if (error instanceof StoreUnavailableError) {
        deps.logger.warn({ path, err: error.message }, 'admin API: state store unavailable');
        json(res, 503, { error: 'temporarily_unavailable', error_description: 'the gateway cannot reach its state store; try again shortly' }, { 'retry-after': '5' });
      } else {
        throw error;
      }
    }
    return true;
  };
}

function routeDetail(route: Route): Record<string, unknown> {
  const { action: _action, ...rest } = route;
  return rest;
}

async function run(admin: AuthAdmin, route: Route): Promise<{ status: number; body: unknown; detail: Record<string, unknown> }> {
  switch (route.action) {
    case 'list_clients': {
      const clients = await admin.listClients();
      return { status: 200, body: { clients }, detail: { count: clients.length } };
    }
    case 'show_client':
      return { status: 200, body: await admin.showClient(route.clientId), detail: { clientId: route.clientId } };
    case 'list_sessions': {
      const sessions = await admin.listSessions({ clientId: route.clientId, subject: route.subject });
      return { status: 200, body: { sessions }, detail: { clientId: route.clientId, subject: route.subject, count: sessions.length } };
    }
    case 'revoke_session': {
      const result = await admin.revokeSession(route.sid);
      return { status: 200, body: result, detail: { sid: route.sid, clientId: result.client_id, subject: result.subject } };
    }
    case 'revoke_consent': {
      const result = await admin.revokeConsent(route.clientId, route.subject);
      return { status: 200, body: result, detail: { clientId: route.clientId, subject: route.subject, consentRemoved: result.consent_removed, sessionsRevoked: result.sessions_revoked } };
    }
    case 'delete_client': {
      const result = await admin.deleteClient(route.clientId);
      return { status: 200, body: result, detail: { clientId: route.clientId, source: result.source, registrationDeleted: result.registration_deleted, consentsRemoved: result.consents_removed, sessionsRevoked: result.sessions_revoked } };
    }
  }
}

function parseRoute(method: string, path: string, rawUrl: string): Route {
  const segments = path.slice(ADMIN_API_PREFIX.length).split('/').filter((s, i) => i > 0 || s !== '');
  if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop(); // trailing slash
  let parts: string[];
  try {
    parts = segments.map((s) => decodeURIComponent(s));
  } catch {
    throw new RouteError(400, 'invalid_request', 'malformed percent-encoding in the path');
  }
  if (parts.some((p) => p === '')) throw new RouteError(404, 'not_found', `no admin route ${method} ${path}`);
  const allow = (methods: string[]) => {
    if (!methods.includes(method)) throw new RouteError(405, 'method_not_allowed', `use ${methods.join(' or ')} on ${path}`, { allow: methods.join(', ') });
  };
  const [head, id, sub, subject] = parts;
  if (head === 'clients' && parts.length === 1) {
    allow(['GET']);
    return { action: 'list_clients' };
  }
  if (head === 'clients' && parts.length === 2) {
    allow(['GET', 'DELETE']);
    return method === 'GET' ? { action: 'show_client', clientId: id! } : { action: 'delete_client', clientId: id! };
  }
  if (head === 'clients' && parts.length === 4 && sub === 'consents') {
    allow(['DELETE']);
    return { action: 'revoke_consent', clientId: id!, subject: subject! };
  }
  if (head === 'sessions' && parts.length === 1) {
    allow(['GET']);
    const query = new URL(rawUrl, 'http://gateway').searchParams;
    const clientId = query.get('client_id') || undefined;
    const filterSubject = query.get('subject') || undefined;
    return { action: 'list_sessions', clientId, subject: filterSubject };
  }
  if (head === 'sessions' && parts.length === 2) {
    allow(['DELETE']);
    return { action: 'revoke_session', sid: id! };
  }
  throw new RouteError(404, 'not_found', `no admin route ${method} ${path} (routes: GET/DELETE clients[/:id], DELETE clients/:id/consents/:subject, GET sessions, DELETE sessions/:sid)`);
}
