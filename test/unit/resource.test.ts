import t from 'tap';
import { canonicalResource, resolveResource } from '../../src/oauth/resource.js';

t.test('canonicalResource', async (t) => {
  t.equal(canonicalResource('https://gw.example.com'), 'https://gw.example.com/mcp');
  t.equal(canonicalResource('https://gw.example.com/'), 'https://gw.example.com/mcp');
  t.equal(canonicalResource('https://example.com/gateway'), 'https://example.com/gateway/mcp');
  t.equal(canonicalResource('http://localhost:8080'), 'http://localhost:8080/mcp');
});

t.test('resolveResource: issuer without a path', async (t) => {
  const issuer = 'https://gw.example.com';
  const canonical = 'https://gw.example.com/mcp';
  const rows: Array<[string, string | undefined, string | undefined]> = [
    ['absent → canonical', undefined, canonical],
    ['empty → canonical', '', canonical],
    ['canonical', canonical, canonical],
    ['trailing-slash twin', 'https://gw.example.com/mcp/', canonical],
    ['bare origin', 'https://gw.example.com', canonical],
    ['bare origin with slash (Claude Code, old SDK)', 'https://gw.example.com/', canonical],
    ['uppercase host', 'https://GW.Example.COM/mcp', canonical],
    ['uppercase scheme', 'HTTPS://gw.example.com/mcp', canonical],
    ['explicit default port', 'https://gw.example.com:443/mcp', canonical],
    ['path case differs', 'https://gw.example.com/MCP', undefined],
    ['other path', 'https://gw.example.com/other', undefined],
    ['sub-path', 'https://gw.example.com/mcp/x', undefined],
    ['double slash', 'https://gw.example.com/mcp//', undefined],
    ['other host', 'https://evil.example.com/mcp', undefined],
    ['lookalike host', 'https://gw.example.com.evil.com/mcp', undefined],
    ['other scheme', 'http://gw.example.com/mcp', undefined],
    ['other port', 'https://gw.example.com:8443/mcp', undefined],
    ['query', 'https://gw.example.com/mcp?x=1', undefined],
    ['fragment', 'https://gw.example.com/mcp#x', undefined],
    ['userinfo', 'https://user@gw.example.com/mcp', undefined],
    ['dot segments', 'https://gw.example.com/x/../mcp', undefined],
    ['encoded path', 'https://gw.example.com/%6dcp', undefined],
    ['relative', '/mcp', undefined],
    ['scheme-relative', '//gw.example.com/mcp', undefined],
    ['whitespace', ' https://gw.example.com/mcp', undefined],
    ['urn', 'urn:example:mcp', undefined],
    ['garbage', 'not a url', undefined],
  ];
  for (const [name, requested, expected] of rows) t.equal(resolveResource(requested, issuer), expected, name);
});

t.test('resolveResource: issuer with a path and a port', async (t) => {
  const issuer = 'http://localhost:8080/gateway';
  const canonical = 'http://localhost:8080/gateway/mcp';
  const rows: Array<[string, string | undefined, string | undefined]> = [
    ['canonical', canonical, canonical],
    ['trailing-slash twin', `${canonical}/`, canonical],
    ['bare origin', 'http://localhost:8080', canonical],
    ['bare origin with slash', 'http://localhost:8080/', canonical],
    ['path-less /mcp', 'http://localhost:8080/mcp', undefined],
    ['issuer itself', issuer, undefined],
    ['other port', 'http://localhost:8081/gateway/mcp', undefined],
    ['127.0.0.1 alias is another origin', 'http://127.0.0.1:8080/gateway/mcp', undefined],
  ];
  for (const [name, requested, expected] of rows) t.equal(resolveResource(requested, issuer), expected, name);
});
