import type { OAuthAsConfig } from '../config/types.js';

/** Paths of the Authorization Server's endpoints, relative to the issuer. */
export const ENDPOINTS = {
  authorize: '/oauth/authorize',
  token: '/oauth/token',
  register: '/oauth/register',
  revoke: '/oauth/revoke',
} as const;

export const MCP_PATH = '/mcp';

/** The issuer without a trailing slash: byte-identical in every document that names it. */
export function issuerOf(config: OAuthAsConfig): string {
  return config.issuerUrl.replace(/\/+$/, '');
}

/** RFC 8414 Authorization Server metadata. */
export function authorizationServerMetadata(config: OAuthAsConfig, hasConfidentialClients: boolean): Record<string, unknown> {
  const issuer = issuerOf(config);
  const authMethods = ['none', ...(hasConfidentialClients || config.registration.enabled ? ['client_secret_basic', 'client_secret_post'] : [])];
  return {
    issuer,
    authorization_endpoint: issuer + ENDPOINTS.authorize,
    token_endpoint: issuer + ENDPOINTS.token,
    ...(config.registration.enabled ? { registration_endpoint: issuer + ENDPOINTS.register } : {}),
    revocation_endpoint: issuer + ENDPOINTS.revoke,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_methods_supported: authMethods,
    scopes_supported: config.scopesSupported,
    client_id_metadata_document_supported: config.clientIdMetadataDocuments.enabled,
    authorization_response_iss_parameter_supported: true,
  };
}

/** RFC 9728 Protected Resource Metadata for `/mcp`. */
export function protectedResourceMetadata(config: OAuthAsConfig): Record<string, unknown> {
  const issuer = issuerOf(config);
  return {
    resource: issuer + MCP_PATH,
    authorization_servers: [issuer],
    scopes_supported: config.scopesSupported,
    bearer_methods_supported: ['header'],
    resource_name: 'Gatehouse MCP gateway',
  };
}

/**
 * Where the documents are served. With an issuer path (`https://host/gw`) the RFC 8414 / RFC 9728
 * path-inserted forms are served too, for a proxy that forwards them unchanged.
 */
export function discoveryPaths(config: OAuthAsConfig): { authorizationServer: string[]; protectedResource: string[] } {
  const path = new URL(issuerOf(config)).pathname.replace(/\/+$/, '');
  const as = ['/.well-known/oauth-authorization-server'];
  const prm = ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp'];
  if (path) {
    as.push(`/.well-known/oauth-authorization-server${path}`);
    prm.push(`/.well-known/oauth-protected-resource${path}`, `/.well-known/oauth-protected-resource${path}/mcp`);
  }
  return { authorizationServer: as, protectedResource: prm };
}
