/**
 * The validated shape of `servers.json` (see schemas/servers.schema.json, which is the source of
 * truth for descriptions and defaults). Every module reads configuration through these types only.
 * Defaults from the schema are already applied and `${VAR}` references already expanded.
 */

export type ProviderName = 'bearer' | 'oauth_as' | 'jwks' | 'forwarded' | 'none';
export type Sharing = 'shared' | 'per-session';
export type HttpTransportKind = 'streamable-http' | 'sse' | 'auto';

/** Identity-independent tool filter applied before the ACL, for everyone. */
export interface ToolFilterConfig {
  allow?: string[];
  deny?: string[];
}

interface BackendCommon {
  /** Name exposed to clients before `__`; defaults to the backend's key in `mcpServers`. */
  prefix: string;
  enabled: boolean;
  timeoutSeconds: number;
  tools: ToolFilterConfig;
  sharing: Sharing;
}

export interface StdioBackendConfig extends BackendCommon {
  kind: 'stdio';
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Absolute path (relative paths are resolved against the config file's directory). */
  cwd: string;
}

export interface HttpBackendConfig extends BackendCommon {
  kind: 'http';
  url: string;
  headers: Record<string, string>;
  transport: HttpTransportKind;
}

export type BackendConfig = (StdioBackendConfig | HttpBackendConfig) & { name: string };

export interface BearerTokenGrant {
  subject: string;
  roles: string[];
}

export interface BearerProviderConfig {
  /** token value → identity. Keys are secrets: never log them. */
  tokens: Record<string, BearerTokenGrant>;
}

export interface ForwardedProviderConfig {
  trustedSourceCidrs: string[];
  userHeader: string;
  groupsHeader: string;
}

export interface JwksProviderConfig {
  issuer: string;
  audience: string;
  jwksUri?: string;
  rolesClaim: string;
  subjectClaim: string;
}

export interface PreRegisteredClientConfig {
  client_id: string;
  client_name?: string;
  redirect_uris: string[];
  /** Present only for confidential clients; stored hashed at runtime. */
  client_secret?: string;
  token_endpoint_auth_method?: 'none' | 'client_secret_basic' | 'client_secret_post';
}

export interface OAuthAsConfig {
  issuerUrl: string;
  jwtSecret?: string;
  trustedSourceCidrs: string[];
  trustedUserHeader: string;
  trustedGroupsHeader: string;
  redirectUriAllowlist: string[];
  injectedRoles: string[];
  scopesSupported: string[];
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  sessionMaxLifetimeSeconds: number;
  refreshGraceSeconds: number;
  authorizationCodeTtlSeconds: number;
  consent: 'always' | 'first-use' | 'never';
  registration: {
    enabled: boolean;
    ratePerMinute: number;
    maxClients: number;
    unusedClientTtlSeconds: number;
    clientIdleTtlSeconds: number;
  };
  clientIdMetadataDocuments: {
    enabled: boolean;
    allowPrivateAddresses: boolean;
  };
  clients: PreRegisteredClientConfig[];
}

export interface ServerAuthConfig {
  providers: ProviderName[];
  bearer?: BearerProviderConfig;
  oauthAs?: OAuthAsConfig;
  jwks?: JwksProviderConfig;
  forwarded?: ForwardedProviderConfig;
}

export type AclPolicy = 'allow' | 'deny';

export interface AclRuleConfig {
  subjects?: string[];
  roles?: string[];
  tools?: string[];
  resources?: string[];
  prompts?: string[];
  policy: AclPolicy;
}

export interface AclConfig {
  default: AclPolicy;
  rules: AclRuleConfig[];
}

export interface StateStoreConfig {
  type: 'file' | 'memory' | 'redis';
  /** False when the document has no `stateStore` block (the defaults apply). */
  configured: boolean;
  path?: string;
  url?: string;
  keyPrefix: string;
}

export interface HttpConfig {
  /** Extra allowed `Origin` values for browser clients (exact origins). */
  allowedOrigins: string[];
  /** Extra allowed `Host` values (DNS-rebinding protection); loopback names are always allowed. */
  allowedHosts: string[];
  mcpBodyLimitBytes: number;
  oauthBodyLimitBytes: number;
  sessionIdleTimeoutSeconds: number;
  shutdownGraceSeconds: number;
}

export interface AggregationConfig {
  /** Longest exposed name clients accept (`<prefix>__<name>`). */
  nameMaxLength: number;
  /** How long a list request waits for backends that are still starting. */
  startupWaitMs: number;
}

export interface MetricsConfig {
  /** Serve `GET /metrics`. */
  enabled: boolean;
  /** When set, `/metrics` requires `Authorization: Bearer <it>`. A secret: never log it. */
  bearerToken?: string;
}

export interface AuditConfig {
  destination: 'stderr' | 'stdout' | 'file';
  /** Absolute path of the audit log (resolved against the config file's directory); only for `file`. */
  path?: string;
}

export interface ObservabilityConfig {
  metrics: MetricsConfig;
  audit: AuditConfig;
}

export interface GatewayConfig {
  /** Absolute path of the file the config came from, or undefined for inline `MCP_SERVERS_CONFIG`. */
  sourcePath?: string;
  /** Directory relative paths are resolved against (the config file's directory, or cwd). */
  baseDir: string;
  backends: BackendConfig[];
  serverAuth: ServerAuthConfig;
  acl?: AclConfig;
  stateStore: StateStoreConfig;
  http: HttpConfig;
  aggregation: AggregationConfig;
  observability: ObservabilityConfig;
}
