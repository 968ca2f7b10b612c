import { Command, Option } from 'commander';
import { ConfigError, UserError } from '../errors.js';
import { randomToken } from '../crypto/random.js';
import { healthcheckCommand } from './healthcheck.js';
import { authCommandGroup } from './auth.js';

function collectRoles(value: string): string[] {
  return value.split(',').map((r) => r.trim()).filter(Boolean);
}

export function buildProgram(): Command {
  const program = new Command('mcp')
    .description('Gatehouse: an MCP gateway with an OAuth 2.1 Authorization Server, ACLs and backend aggregation')
    .version('0.1.0')
    .showHelpAfterError();

  program
    .command('serve')
    .description('start the gateway')
    .option('--config <file>', 'servers.json (default: $MCP_CONFIG_PATH, then inline $MCP_SERVERS_CONFIG)')
    .option('--http <host:port>', 'listen address', '127.0.0.1:8080')
    .option('--insecure', 'allow a non-loopback bind without TLS (TLS terminated by a proxy in front)')
    .option('--log-level <level>', 'trace, debug, info, warn, error')
    .addOption(new Option('--log-format <format>', 'log line format').choices(['json', 'pretty']).default('json'))
    .action(async (opts) => {
      // Commands load what they need when they run, so the small ones start fast.
      const { serveCommand } = await import('./serve.js');
      await serveCommand(opts);
    });

  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description('validate servers.json without starting; exit 1 on any error')
    .option('--config <file>', 'servers.json (default: $MCP_CONFIG_PATH, then $MCP_SERVERS_CONFIG)')
    .option('--probe', 'also start every backend and check the exposed names (collisions, length budget)')
    .option('--json', 'machine-readable output')
    .action(async (opts) => {
      const { configCheckCommand } = await import('./config-check.js');
      process.exitCode = await configCheckCommand(opts);
    });

  const acl = program.command('acl').description('access-control tools');
  acl
    .command('explain')
    .description('show the ACL decision for an identity, and the rule that made it')
    .option('--config <file>', 'servers.json')
    .requiredOption('--subject <subject>', 'the subject (user or token name)')
    .option('--roles <a,b>', 'comma-separated roles', collectRoles, [])
    .option('--tool <name>', 'an exposed tool name (<prefix>__<tool>)')
    .option('--resource <uri>', 'an exposed resource URI')
    .option('--prompt <name>', 'an exposed prompt name')
    .option('--all', 'start the backends and list everything this identity would see')
    .option('--json', 'machine-readable output')
    .action(async (opts) => {
      const { aclExplainCommand } = await import('./acl-explain.js');
      process.exitCode = await aclExplainCommand(opts);
    });

  program.addCommand(authCommandGroup());

  const secret = program.command('secret').description('secrets');
  secret
    .command('generate')
    .description('print a fresh 32-byte base64url secret (for serverAuth.oauthAs.jwtSecret)')
    .action(() => {
      process.stdout.write(`${randomToken(32)}\n`);
    });

  program
    .command('healthcheck')
    .argument('[url]', 'the /healthz URL', 'http://127.0.0.1:8080/healthz')
    .description('exit 0 when the gateway answers 2xx on /healthz (for images without curl)')
    .action(async (url: string) => {
      process.exitCode = await healthcheckCommand(url);
    });

  return program;
}

/** Runs the CLI. User errors print one clear message and exit 1; never a stack trace for them. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UserError) {
      process.stderr.write(`mcp: ${error.message}\n`);
    } else {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`mcp: unexpected error: ${message}\n`);
      if (process.env.MCP_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    }
    process.exit(1);
  }
}
