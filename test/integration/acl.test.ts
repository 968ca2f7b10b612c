import t from 'tap';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGateway, connectClient, fixtureStdio } from '../helpers/gateway.js';

const ADMIN = 'acl-admin-token-0000000000000';
const USER = 'acl-user-token-00000000000000';
const GUEST = 'acl-guest-token-0000000000000';

async function failure(promise: Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
  return promise.then(() => undefined, (e: { code: number; message: string }) => ({ code: e.code, message: e.message }));
}

t.test('ACL parity: what is hidden from a list is refused on use, exactly like a missing item', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: {
      fx: fixtureStdio({ tools: { deny: ['debug_*'] } }),
      other: fixtureStdio({ tools: { allow: ['echo'] } }),
    },
    serverAuth: {
      providers: ['bearer'],
      bearer: {
        tokens: {
          [ADMIN]: { subject: 'root', roles: ['admin'] },
          [USER]: { subject: 'ada', roles: ['dev'] },
          [GUEST]: { subject: 'guest', roles: [] },
        },
      },
    },
    acl: {
      default: 'deny',
      rules: [
        { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
        { roles: ['dev'], tools: ['fx__fail'], policy: 'deny' },
        { roles: ['dev'], tools: ['fx__*', 'other__*'], resources: ['fx__fixture://docs/*', 'fx__fixture://items/*'], prompts: ['fx__greet'], policy: 'allow' },
      ],
    },
  });
  const admin = await connectClient(t, mcpUrl, ADMIN);
  const dev = await connectClient(t, mcpUrl, USER);
  const guest = await connectClient(t, mcpUrl, GUEST);

  const adminTools = (await admin.listTools()).tools.map((x) => x.name);
  t.notOk(adminTools.includes('fx__debug_dump'), 'backend deny-list hides a tool even from admins');
  t.same(adminTools.filter((n) => n.startsWith('other__')), ['other__echo'], 'backend allow-list keeps only allowed tools');
  t.same(await failure(admin.callTool({ name: 'fx__debug_dump', arguments: {} })), { code: -32602, message: 'MCP error -32602: Unknown tool: fx__debug_dump' });

  const devTools = (await dev.listTools()).tools.map((x) => x.name);
  t.ok(devTools.includes('fx__echo'));
  t.notOk(devTools.includes('fx__fail'), 'deny rule before the allow rule wins');
  const denied = await failure(dev.callTool({ name: 'fx__fail', arguments: {} }));
  const missing = await failure(dev.callTool({ name: 'fx__does_not_exist', arguments: {} }));
  t.same(denied, { code: -32602, message: 'MCP error -32602: Unknown tool: fx__fail' }, 'hidden tool refused like a missing one');
  t.same(missing, { code: -32602, message: 'MCP error -32602: Unknown tool: fx__does_not_exist' });

  t.same((await guest.listTools()).tools, [], 'default deny: guest sees no tools');
  t.same(await failure(guest.callTool({ name: 'fx__echo', arguments: { text: 'x' } })), { code: -32602, message: 'MCP error -32602: Unknown tool: fx__echo' });

  // Parity for every listed and every hidden tool of every identity.
  for (const [name, client] of [['admin', admin], ['dev', dev], ['guest', guest]] as Array<[string, Client]>) {
    const visible = new Set((await client.listTools()).tools.map((x) => x.name));
    for (const tool of adminTools) {
      if (tool.endsWith('__crash') || tool.endsWith('__slow') || tool.endsWith('__add_tool') || tool.endsWith('__touch')) continue;
      const result = await failure(client.callTool({ name: tool, arguments: { text: 'x' } }));
      const refusedAsUnknown = result?.message === `MCP error -32602: Unknown tool: ${tool}`;
      t.equal(refusedAsUnknown, !visible.has(tool), `${name}: ${tool} ${visible.has(tool) ? 'listed and callable' : 'hidden and refused'}`);
    }
  }

  // Resources and templates.
  const devResources = (await dev.listResources()).resources.map((r) => r.uri).sort();
  t.same(devResources, ['fx+fixture://docs/logo', 'fx+fixture://docs/readme'], 'globs written as <prefix>__<uri> match the exposed <prefix>+<uri>');
  t.same((await dev.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate), ['fx+fixture://items/{id}'], 'a template under an allowed glob is listed');
  t.same(await failure(dev.readResource({ uri: 'fx+fixture://secret/keys' })), { code: -32602, message: 'MCP error -32602: Resource not found: fx+fixture://secret/keys' }, 'hidden resource refused in its exposed form');
  t.ok((await dev.readResource({ uri: 'fx__fixture://items/1' })).contents.length, 'a concrete URI under an allowed glob is readable');
  const secret = await failure(dev.readResource({ uri: 'fx__fixture://secret/keys' }));
  const nowhere = await failure(dev.readResource({ uri: 'fx__fixture://nowhere' }));
  t.same(secret, { code: -32602, message: 'MCP error -32602: Resource not found: fx__fixture://secret/keys' });
  t.equal(nowhere?.code, -32602);
  t.same((await guest.listResources()).resources, []);
  t.ok((await admin.readResource({ uri: 'fx__fixture://secret/keys' })).contents.length);

  // Prompts.
  t.same((await dev.listPrompts()).prompts.map((p) => p.name), ['fx__greet']);
  t.same(await failure(dev.getPrompt({ name: 'fx__admin_prompt' })), { code: -32602, message: 'MCP error -32602: Unknown prompt: fx__admin_prompt' });
  t.same(await failure(dev.getPrompt({ name: 'fx__nothing' })), { code: -32602, message: 'MCP error -32602: Unknown prompt: fx__nothing' });
  t.same(await failure(dev.complete({ ref: { type: 'ref/prompt', name: 'fx__admin_prompt' }, argument: { name: 'x', value: '' } })), { code: -32602, message: 'MCP error -32602: Unknown prompt: fx__admin_prompt' }, 'completion follows the prompt ACL');
  t.ok((await admin.getPrompt({ name: 'fx__admin_prompt' })).messages.length);
});

t.test('no acl block allows every authenticated identity', async (t) => {
  const { mcpUrl } = await startGateway(t, {
    mcpServers: { fx: fixtureStdio() },
    serverAuth: { providers: ['bearer'], bearer: { tokens: { [GUEST]: { subject: 'guest', roles: [] } } } },
  });
  const guest = await connectClient(t, mcpUrl, GUEST);
  t.ok((await guest.listTools()).tools.some((x) => x.name === 'fx__echo'));
});
