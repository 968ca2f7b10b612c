import { Agent, fetch as undiciFetch } from 'undici';
import { Http1Pool } from './http1.js';

/**
 * One keep-alive undici pool per backend origin, shared by every connection to it. Long-lived SSE
 * streams need no body timeout; per-request deadlines are enforced by the MCP client instead.
 */
const agents = new Map<string, Agent>();

function agentFor(origin: string): Agent {
  let agent = agents.get(origin);
  if (!agent) {
    agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000, connections: 256, bodyTimeout: 0, headersTimeout: 60_000 });
    agents.set(origin, agent);
  }
  return agent;
}

const posters = new Map<string, Http1Pool>();

/** The hot path's keep-alive HTTP/1.1 pool for `url`'s origin (forwarded requests; see http1.ts). */
export function http1PoolFor(url: string): Http1Pool {
  const origin = new URL(url).origin;
  let pool = posters.get(origin);
  if (!pool) {
    pool = new Http1Pool(origin);
    posters.set(origin, pool);
  }
  return pool;
}

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

export function fetchFor(url: string): FetchLike {
  const dispatcher = agentFor(new URL(url).origin);
  return ((input: string | URL, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher } as never)) as unknown as FetchLike;
}

const CLOSE_GRACE_MS = 2_000;

export async function closeDispatchers(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  const pools = [...posters.values()];
  posters.clear();
  // A graceful close waits for responses still streaming; past a bound they are cut.
  await Promise.all([...pools.map((pool) => pool.close(CLOSE_GRACE_MS)), ...all.map(async (agent) => {
    let timer: NodeJS.Timeout | undefined;
    const closed = agent.close().then(() => true, () => true);
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS)));
    if (!(await Promise.race([closed, late]))) await agent.destroy().catch(() => {});
    clearTimeout(timer);
  })]);
}
