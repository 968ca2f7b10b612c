/** Exit code 0 when `url` answers 2xx within 5 seconds, 1 otherwise (one line on stderr says why). */
export async function healthcheckCommand(url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (response.ok) return 0;
    process.stderr.write(`mcp healthcheck: ${url} answered ${response.status}\n`);
  } catch (error) {
    process.stderr.write(`mcp healthcheck: ${url}: ${(error as Error).message}\n`);
  }
  return 1;
}
