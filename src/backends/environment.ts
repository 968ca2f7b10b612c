/**
 * The only variables a stdio backend inherits from the gateway: enough to find executables, a home
 * and temp directory, locale and time zone, and CA settings. Never the gateway's secrets or other
 * backends' variables; a backend's own `env` is added on top by the caller.
 */
const INHERITED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'TEMP', 'TMP', 'TERM', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'SYSTEMROOT', 'COMSPEC', 'PATHEXT', 'APPDATA', 'LOCALAPPDATA', 'USERPROFILE'];

export function safeEnvironment(source: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED) {
    const value = source[key];
    if (value !== undefined && !value.startsWith('()')) env[key] = value;
  }
  return env;
}
