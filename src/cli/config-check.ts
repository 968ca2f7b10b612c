import { ConfigError, UserError, type ConfigProblem } from '../errors.js';
import { INLINE_SOURCE, loadConfig, resolveConfigSource } from '../config/load.js';

export interface ConfigCheckOptions {
  /** `--config FILE`; falls back to MCP_CONFIG_PATH, then MCP_SERVERS_CONFIG. */
  config?: string;
  /** `--json`: print `{ ok, errors, warnings }` instead of text. */
  json?: boolean;
  out?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
}

/**
 * `mcp config check`: validates the configuration without starting anything and prints every
 * problem with its JSON path, then a summary line. Returns the exit code: 1 on any error (including
 * no configuration or an unreadable file), 0 otherwise (warnings included). Never prints a stack
 * trace for a user error; unexpected errors propagate to the CLI's top-level handler.
 */
export async function configCheckCommand(options: ConfigCheckOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const env = options.env ?? process.env;
  let source = options.config ?? env.MCP_CONFIG_PATH ?? INLINE_SOURCE;
  let errors: ConfigProblem[] = [];
  let warnings: ConfigProblem[] = [];
  let backends = 0;
  try {
    const resolved = resolveConfigSource({ path: options.config, env });
    source = resolved.kind === 'file' ? resolved.path : INLINE_SOURCE;
    const loaded = await loadConfig({ path: options.config, env });
    warnings = loaded.warnings;
    backends = loaded.config.backends.length;
  } catch (error) {
    if (error instanceof ConfigError) {
      errors = error.problems.filter((p) => p.severity === 'error');
      warnings = error.problems.filter((p) => p.severity === 'warning');
    } else if (error instanceof UserError) {
      errors = [{ path: '', message: error.message, severity: 'error' }];
    } else {
      throw error;
    }
  }

  if (options.json) {
    const strip = ({ path, message }: ConfigProblem) => ({ path: path || '/', message });
    out.write(JSON.stringify({ ok: errors.length === 0, source, errors: errors.map(strip), warnings: warnings.map(strip) }, null, 2) + '\n');
    return errors.length === 0 ? 0 : 1;
  }

  for (const p of [...errors, ...warnings]) out.write(`${p.severity} at ${p.path || '/'}: ${p.message}\n`);
  const w = `${warnings.length} warning${warnings.length === 1 ? '' : 's'}`;
  out.write(errors.length === 0
    ? `${source}: OK (${backends} backend${backends === 1 ? '' : 's'}, ${w})\n`
    : `${source}: ${errors.length} error${errors.length === 1 ? '' : 's'}, ${w}\n`);
  return errors.length === 0 ? 0 : 1;
}
