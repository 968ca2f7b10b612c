import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Tests that need a system package (nginx, chromium, redis-server) call `requireSystemBinary` first.
 * On a developer machine without the package the test is skipped with a printed reason; in CI
 * (`GATEHOUSE_REQUIRE_SYSTEM_DEPS=1`, set by .ci/run after installing the packages) a missing binary
 * is a failure, so nothing silently skips there.
 */

interface Tap {
  plan(n: number, comment?: string): void;
  fail(message: string): unknown;
}

export interface SystemBinary {
  /** Names to look for on PATH (and in /usr/sbin, /usr/local/sbin, which non-root PATHs often lack). */
  names: readonly string[];
  /** The Debian package that provides it, for the message. */
  debianPackage: string;
}

export const NGINX: SystemBinary = { names: ['nginx'], debianPackage: 'nginx' };
export const CHROMIUM: SystemBinary = { names: ['chromium', 'chromium-browser'], debianPackage: 'chromium' };

const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The absolute path of the first executable found, or undefined. */
export function findBinary(names: readonly string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

export function systemDepsRequired(): boolean {
  return process.env.GATEHOUSE_REQUIRE_SYSTEM_DEPS === '1';
}

/**
 * Returns the binary's path, or undefined after having skipped (developer machine) or failed (CI)
 * the test `t`; the caller then returns without adding assertions.
 */
export function requireSystemBinary(t: Tap, binary: SystemBinary): string | undefined {
  const found = findBinary(binary.names);
  if (found) return found;
  const what = `${binary.names.join(' / ')} (Debian package "${binary.debianPackage}")`;
  if (systemDepsRequired()) {
    t.fail(`${what} is required because GATEHOUSE_REQUIRE_SYSTEM_DEPS=1, but it is not installed: add "${binary.debianPackage}" to PACKAGES in .ci/run`);
  } else {
    t.plan(0, `${what} is not installed (apt-get install ${binary.debianPackage}); CI sets GATEHOUSE_REQUIRE_SYSTEM_DEPS=1 and runs it`);
  }
  return undefined;
}
