/** One problem found in a configuration document, located by its JSON path (e.g. `/mcpServers/x/url`). */
export interface ConfigProblem {
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

/**
 * A user error in configuration: printed as one paragraph per problem (file, JSON path, fix), never
 * with a stack trace. `problems` holds every error found, not just the first.
 */
export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: ConfigProblem[]) {
    super(formatProblems(source, problems));
    this.name = 'ConfigError';
  }
}

export function formatProblems(source: string, problems: ConfigProblem[]): string {
  const lines = problems.map((p) => `  ${p.severity === 'warning' ? 'warning' : 'error'} at ${p.path || '/'}: ${p.message}`);
  const errors = problems.filter((p) => p.severity === 'error').length;
  const header = errors > 0
    ? `${source}: ${errors} configuration error${errors === 1 ? '' : 's'}`
    : `${source}: configuration warnings`;
  return [header, ...lines].join('\n');
}

/** Any other error a user can fix (bad flag, port in use, unreadable file): message only, exit 1. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
