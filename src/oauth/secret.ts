/**
 * The HMAC secret behind our access tokens (HS256) and refresh tokens (an HKDF-derived key).
 *
 * - `oauthAs.jwtSecret` configured: its UTF-8 bytes ARE the key (no decoding: a base64url value from
 *   `mcp secret generate` is 43 characters and is used as those 43 bytes). It must be at least 32
 *   bytes, or the boot fails with a UserError that gives the length, never the value.
 * - Absent: the key lives in `jwt.secret` next to the state file (`dirname(statePath)/jwt.secret`).
 *   If the file exists, its content (surrounding whitespace trimmed) is used exactly like a
 *   configured `jwtSecret`, so copying the file's content into `jwtSecret` keeps issued tokens valid.
 *   A file readable by group or others is used but warned about. If it does not exist, 32 random
 *   bytes are generated and written as base64url with mode 0600 (temp file + fsync + hard link, so
 *   two processes starting together never end up with different secrets: the second one reads the
 *   first one's file), and a WARNING explains that every replica needs the same secret.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { Logger } from '../log.js';

export const MIN_SECRET_BYTES = 32;
export const SECRET_FILE_NAME = 'jwt.secret';

export interface ResolveJwtSecretOptions {
  /** `oauthAs.jwtSecret`, already expanded from the environment/Secret. */
  configured?: string;
  /** Path of the state file (e.g. auth_server.json); the generated secret goes next to it. */
  statePath: string;
  logger: Logger;
}

export async function resolveJwtSecret(options: ResolveJwtSecretOptions): Promise<Uint8Array> {
  const { configured, logger } = options;
  if (configured !== undefined) {
    const key = new TextEncoder().encode(configured);
    if (key.byteLength < MIN_SECRET_BYTES) {
      throw new UserError(
        `oauthAs.jwtSecret is ${key.byteLength} bytes long; it must be at least ${MIN_SECRET_BYTES} bytes. ` +
        'Generate one with "mcp secret generate" and set it through a Secret or an environment variable.',
      );
    }
    return key;
  }

  const file = path.join(path.dirname(path.resolve(options.statePath)), SECRET_FILE_NAME);
  const existing = await readSecretFile(file, logger);
  if (existing) return existing;

  await fs.mkdir(path.dirname(file), { recursive: true });
  const value = randomBytes(32).toString('base64url');
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(`${value}\n`, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // link() never replaces an existing file: if another process won the race, use its secret.
    await fs.link(temp, file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      await fs.rm(temp, { force: true });
      const raced = await readSecretFile(file, logger);
      if (raced) return raced;
      throw new UserError(`${file} exists but could not be read as a JWT secret`);
    }
    // File systems without hard links: rename (atomic, last writer wins).
    await fs.rename(temp, file);
  }
  await fs.rm(temp, { force: true });
  await syncDirectory(path.dirname(file));

  logger.warn(
    { path: file },
    `WARNING: oauthAs.jwtSecret is not set, so a signing secret was generated at ${file}. ` +
    'Every replica must use the same secret: when running more than one replica, set oauthAs.jwtSecret ' +
    '(from a Kubernetes Secret or an environment variable) instead. Deleting this file invalidates every ' +
    'issued access and refresh token.',
  );
  return new TextEncoder().encode(value);
}

async function readSecretFile(file: string, logger: Logger): Promise<Uint8Array | undefined> {
  let content: string;
  try {
    content = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`cannot read the JWT secret file ${file}: ${(error as Error).message}`);
  }
  const key = new TextEncoder().encode(content.trim());
  if (key.byteLength < MIN_SECRET_BYTES) {
    throw new UserError(
      `the JWT secret file ${file} holds ${key.byteLength} bytes; it must hold at least ${MIN_SECRET_BYTES}. ` +
      'Delete it to have a new one generated (this invalidates issued tokens), or set oauthAs.jwtSecret.',
    );
  }
  if (process.platform !== 'win32') {
    try {
      const stat = await fs.stat(file);
      if ((stat.mode & 0o077) !== 0) {
        logger.warn(
          { path: file, mode: (stat.mode & 0o777).toString(8) },
          `the JWT secret file ${file} is readable by group or others; restrict it with: chmod 600 ${file}`,
        );
      }
    } catch {
      // The content was read; a failed stat only loses the warning.
    }
  }
  return key;
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Not supported everywhere (e.g. Windows); the rename/link itself is still atomic.
  } finally {
    await handle?.close();
  }
}
