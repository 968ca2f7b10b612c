import { ConfigError, UserError, type ConfigProblem } from '../errors.js';
import { INLINE_SOURCE, loadConfig, resolveConfigSource } from '../config/load.js';
import type { GatewayConfig } from '../config/types.js';
import { listCatalogue } from '../mcp/probe.js';

export interface ConfigCheckOptions {
  /** `--config FILE`; falls back to MCP_CONFIG_PATH, then MCP_SERVERS_CONFIG. */
  config?: string;
  /** `--json`: print `{ ok, errors, warnings }` instead of text. */
  json?: boolean;
  /** `--probe`: start every enabled backend, list it, and check the exposed names. */
  probe?: boolean;
  out?: NodeJS.WritableStream;
  /** Where probe progress goes (default stderr), so stdout stays the report. */
  progress?: NodeJS.WritableStream;
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
    if (options.probe) errors = await probeProblems(loaded.config, options.progress ?? process.stderr);
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

/**
 * Starts every enabled backend once and reports what the gateway would refuse to expose: backends
 * that do not start, names over the length budget, and names listed twice.
 */
async function probeProblems(config: GatewayConfig, progress: NodeJS.WritableStream): Promise<ConfigProblem[]> {
  const enabled = config.backends.filter((b) => b.enabled).length;
  progress.write(`probing ${enabled} backend${enabled === 1 ? '' : 's'}...\n`);
  const catalogue = await listCatalogue(config, {
    onProgress: (backend, state, done, total) => progress.write(`  [${done}/${total}] ${backend}: ${state}\n`),
  });
  const problems: ConfigProblem[] = catalogue.errors.map(({ backend, message }) => ({
    path: `/mcpServers/${backend}`,
    message: `backend did not start: ${message}`,
    severity: 'error',
  }));
  for (const problem of catalogue.problems) {
    problems.push({ path: `/mcpServers/${problem.backend}`, message: problem.message, severity: 'error' });
  }
  progress.write(`probe done: ${catalogue.tools.length} tools, ${catalogue.resources.length} resources, ${catalogue.prompts.length} prompts\n`);
  return problems;
}
