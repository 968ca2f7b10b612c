import type { GatewayConfig } from '../config/types.js';
import { Backend } from '../backends/backend.js';
import { closeDispatchers } from '../backends/dispatcher.js';
import { silentLogger, type Logger } from '../log.js';
import { Catalogue, type CatalogueProblem } from './catalogue.js';

export interface ProbedCatalogue {
  tools: { name: string; backend: string; localName: string }[];
  resources: { uri: string; backend: string }[];
  resourceTemplates: { uriTemplate: string; backend: string }[];
  prompts: { name: string; backend: string }[];
  errors: { backend: string; message: string }[];
  problems: CatalogueProblem[];
}

/**
 * Starts every enabled backend once, lists what it offers, and stops it again: the catalogue the
 * gateway would expose (after backend tool filters, before the ACL). Used by `config check --probe`
 * and `acl explain --all`. `onProgress` reports each backend as it finishes.
 */
export async function listCatalogue(
  config: GatewayConfig,
  options: { logger?: Logger; onProgress?: (backend: string, state: string, done: number, total: number) => void } = {},
): Promise<ProbedCatalogue> {
  const logger = options.logger ?? silentLogger;
  const backends = config.backends.filter((b) => b.enabled).map((c) => new Backend(c, logger, { onListsChanged: () => {}, onNotification: () => {} }));
  const catalogue = new Catalogue(config.aggregation.nameMaxLength);
  catalogue.setBackends(backends);
  let done = 0;
  try {
    await Promise.all(backends.map(async (backend) => {
      backend.start();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([backend.firstAttempt, new Promise((resolve) => (timer = setTimeout(resolve, backend.timeoutMs)))]);
      clearTimeout(timer);
      options.onProgress?.(backend.name, backend.state, ++done, backends.length);
    }));
    catalogue.rebuild(backends);
    return {
      tools: [...catalogue.tools].map(([name, e]) => ({ name, backend: e.backend.name, localName: e.local })),
      resources: [...catalogue.resources].map(([uri, e]) => ({ uri, backend: e.backend.name })),
      resourceTemplates: [...catalogue.resourceTemplates].map(([uriTemplate, e]) => ({ uriTemplate, backend: e.backend.name })),
      prompts: [...catalogue.prompts].map(([name, e]) => ({ name, backend: e.backend.name })),
      errors: backends.filter((b) => b.state !== 'ready').map((b) => ({ backend: b.name, message: b.lastError ?? `did not become ready within ${b.config.timeoutSeconds}s` })),
      problems: catalogue.problems,
    };
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
    await closeDispatchers();
  }
}
