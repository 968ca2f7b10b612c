import t from 'tap';
import { AccessPolicy, compileToolFilter, type ItemKind } from '../../src/acl/decide.js';
import type { AclConfig } from '../../src/config/types.js';

type Who = { subject: string; roles: string[] };
const admin: Who = { subject: 'ci', roles: ['admin'] };
const oauthUser: Who = { subject: 'alice@example.com', roles: ['oauth-user'] };
const nobody: Who = { subject: 'eve', roles: [] };

const acl: AclConfig = {
  default: 'deny',
  rules: [
    /* 0 */ { subjects: ['bob@example.com'], tools: ['*'], policy: 'deny' },
    /* 1 */ { roles: ['admin'], tools: ['*'], resources: ['*'], prompts: ['*'], policy: 'allow' },
    /* 2 */ { roles: ['oauth-user'], tools: ['sentry__*_debug'], policy: 'deny' },
    /* 3 */ { roles: ['oauth-user', 'dev'], tools: ['sentry__*', 'everything__echo'], policy: 'allow' },
    /* 4 */ { subjects: ['*@example.com'], prompts: ['everything__simple_*'], policy: 'allow' },
    /* 5 */ { roles: ['docs'], resources: ['everything__demo://resource/static/document/*'], policy: 'allow' },
    /* 6 */ { subjects: ['svc-?'], roles: [], tools: ['everything__{add,echo}'], policy: 'allow' },
    /* 7 */ { roles: ['empty-list'], tools: [], policy: 'allow' },
  ],
};

const cases: [string, Who, ItemKind, string, boolean, string][] = [
  ['admin rule allows any tool', admin, 'tool', 'everything__echo', true, 'rules[1]'],
  ['admin rule allows any resource URI, across /', admin, 'resource', 'everything__demo://resource/static/document/1', true, 'rules[1]'],
  ['admin rule allows any prompt', admin, 'prompt', 'everything__complex_prompt', true, 'rules[1]'],
  ['first match wins: deny before allow', oauthUser, 'tool', 'sentry__trace_debug', false, 'rules[2]'],
  ['later allow rule matches', oauthUser, 'tool', 'sentry__search_issues', true, 'rules[3]'],
  ['second glob of a list', oauthUser, 'tool', 'everything__echo', true, 'rules[3]'],
  ['roles intersect (any of)', { subject: 'x', roles: ['qa', 'dev'] }, 'tool', 'sentry__x', true, 'rules[3]'],
  ['no matching rule → default deny', oauthUser, 'tool', 'github__create_issue', false, 'default'],
  ['no roles → default deny', nobody, 'tool', 'everything__echo', false, 'default'],
  ['kind-specific: tools-only rule does not cover prompts', oauthUser, 'prompt', 'sentry__x', false, 'default'],
  ['subject glob (prompts)', oauthUser, 'prompt', 'everything__simple_prompt', true, 'rules[4]'],
  ['subject glob does not match other domains', { subject: 'alice@evil.com', roles: [] }, 'prompt', 'everything__simple_prompt', false, 'default'],
  ['subject deny rule first, even for admin', { subject: 'bob@example.com', roles: ['admin'] }, 'tool', 'everything__echo', false, 'rules[0]'],
  ['subject deny rule says nothing about resources', { subject: 'bob@example.com', roles: ['admin'] }, 'resource', 'x__y://z', true, 'rules[1]'],
  ['resource glob crosses / (nested path)', { subject: 'd', roles: ['docs'] }, 'resource', 'everything__demo://resource/static/document/a/b.txt', true, 'rules[5]'],
  ['resource glob does not match a sibling path', { subject: 'd', roles: ['docs'] }, 'resource', 'everything__demo://resource/static/image/1', false, 'default'],
  ['resource rule does not cover resource-shaped tools', { subject: 'd', roles: ['docs'] }, 'tool', 'everything__demo://resource/static/document/1', false, 'default'],
  ['resource template names are resources', admin, 'resource', 'everything__demo://resource/dynamic/{id}', true, 'rules[1]'],
  ['? and braces; empty roles = any role', { subject: 'svc-1', roles: ['whatever'] }, 'tool', 'everything__add', true, 'rules[6]'],
  ['? is one character', { subject: 'svc-12', roles: [] }, 'tool', 'everything__add', false, 'default'],
  ['braces are exact alternatives', { subject: 'svc-1', roles: [] }, 'tool', 'everything__addx', false, 'default'],
  ['an empty glob list matches nothing', { subject: 'z', roles: ['empty-list'] }, 'tool', 'everything__echo', false, 'default'],
  ['case-sensitive names', oauthUser, 'tool', 'SENTRY__search', false, 'default'],
  ['case-sensitive subjects', { subject: 'Alice@Example.COM', roles: [] }, 'prompt', 'everything__simple_prompt', false, 'default'],
];

t.test('decision table', async (t) => {
  const policy = new AccessPolicy(acl);
  for (const [name, who, kind, item, allow, rule] of cases) {
    t.same(policy.decide(who, kind, item), { allow, rule }, name);
  }
  // Same table again: answers now come from the cache and must not change.
  for (const [name, who, kind, item, allow, rule] of cases) {
    t.same(policy.decide(who, kind, item), { allow, rule }, `${name} (cached)`);
  }
});

t.test('no acl block → allow everything', async (t) => {
  const policy = new AccessPolicy(undefined);
  for (const kind of ['tool', 'resource', 'prompt'] as const) {
    t.same(policy.decide(nobody, kind, 'anything__at/all'), { allow: true, rule: 'no acl' });
  }
});

t.test('acl.default allow', async (t) => {
  const policy = new AccessPolicy({ default: 'allow', rules: [{ tools: ['danger__*'], policy: 'deny' }] });
  t.same(policy.decide(nobody, 'tool', 'danger__rm'), { allow: false, rule: 'rules[0]' });
  t.same(policy.decide(nobody, 'tool', 'safe__ls'), { allow: true, rule: 'default' });
  t.same(policy.decide(nobody, 'resource', 'danger__x'), { allow: true, rule: 'default' });
  t.same(new AccessPolicy({ default: 'deny', rules: [] }).decide(admin, 'tool', 'x'), { allow: false, rule: 'default' });
});

t.test('resource globs: * crosses /, ** too, no .. normalisation', async (t) => {
  const policy = new AccessPolicy({
    default: 'deny',
    rules: [
      { resources: ['fs__file:///tmp/*'], policy: 'allow' },
      { resources: ['*__https://**'], policy: 'allow' },
      { resources: ['*'], policy: 'deny' },
    ],
  });
  t.same(policy.decide(nobody, 'resource', 'fs__file:///tmp/a/b/c.txt'), { allow: true, rule: 'rules[0]' });
  t.same(policy.decide(nobody, 'resource', 'fs__file:///etc/passwd'), { allow: false, rule: 'rules[2]' });
  t.same(policy.decide(nobody, 'resource', 'web__https://example.com/a/b'), { allow: true, rule: 'rules[1]' });
  t.same(policy.decide(nobody, 'resource', 'fs__file:///tmp/.hidden'), { allow: true, rule: 'rules[0]' }, 'dot: true');
  t.same(policy.decide(nobody, 'resource', '.x'), { allow: false, rule: 'rules[2]' }, '* matches a leading dot');
  t.same(policy.decide(nobody, 'resource', 'fs__file:///tmp/../etc/passwd'), { allow: true, rule: 'rules[0]' }, 'strings, not paths: no .. normalisation');
});

t.test('a deny glob is not dodged by dot segments or slashes', async (t) => {
  const policy = new AccessPolicy({
    default: 'allow',
    rules: [
      { resources: ['fs__*'], tools: ['fs__*'], policy: 'deny' },
      { resources: ['a/**/b'], policy: 'deny' },
    ],
  });
  for (const uri of ['fs__file:///a/../b', 'fs__file:///a/./b', 'fs__a/..', 'fs__../x', 'fs__//x', 'fs__x/']) {
    t.same(policy.decide(nobody, 'resource', uri), { allow: false, rule: 'rules[0]' }, uri);
  }
  t.same(policy.decide(nobody, 'tool', 'fs__odd/name'), { allow: false, rule: 'rules[0]' }, 'a tool name with / still matches *');
  t.same(policy.decide(nobody, 'resource', 'a/x/y/b'), { allow: false, rule: 'rules[1]' }, '** crosses / like *');
  t.same(policy.decide(nobody, 'resource', 'a/b'), { allow: true, rule: 'default' }, '** is not a path globstar: a/**/b needs both slashes');
});

t.test('the cache does not leak decisions between roles or subjects', async (t) => {
  const policy = new AccessPolicy({
    default: 'deny',
    rules: [
      { subjects: ['alice'], tools: ['*'], policy: 'allow' },
      { roles: ['admin'], tools: ['*'], policy: 'allow' },
    ],
  });
  t.same(policy.decide({ subject: 'alice', roles: [] }, 'tool', 'a__b'), { allow: true, rule: 'rules[0]' });
  t.same(policy.decide({ subject: 'bob', roles: [] }, 'tool', 'a__b'), { allow: false, rule: 'default' }, 'other subject, same roles');
  t.same(policy.decide({ subject: 'bob', roles: ['admin'] }, 'tool', 'a__b'), { allow: true, rule: 'rules[1]' });
  t.same(policy.decide({ subject: 'bob', roles: ['user'] }, 'tool', 'a__b'), { allow: false, rule: 'default' }, 'other roles');
  t.same(policy.decide({ subject: 'bob', roles: ['user', 'admin'] }, 'tool', 'a__b'), { allow: true, rule: 'rules[1]' });
  t.same(policy.decide({ subject: 'bob', roles: ['admin', 'user'] }, 'tool', 'a__b'), { allow: true, rule: 'rules[1]' }, 'role order irrelevant');
  t.same(policy.decide({ subject: 'bob', roles: ['admin'] }, 'prompt', 'a__b'), { allow: false, rule: 'default' }, 'other kind');
  // Role strings that would collide under naive joining.
  const tricky = new AccessPolicy({ default: 'deny', rules: [{ roles: ['a,b'], tools: ['*'], policy: 'allow' }] });
  t.same(tricky.decide({ subject: 's', roles: ['a', 'b'] }, 'tool', 'x'), { allow: false, rule: 'default' });
  t.same(tricky.decide({ subject: 's', roles: ['a,b'] }, 'tool', 'x'), { allow: true, rule: 'rules[0]' });
});

t.test('role-only ACLs share cache entries across subjects, and the cache is bounded', async (t) => {
  const policy = new AccessPolicy({ default: 'deny', rules: [{ roles: ['r'], tools: ['*'], policy: 'allow' }] }, { cacheSize: 3 });
  for (let i = 0; i < 10; i++) {
    t.same(policy.decide({ subject: `user${i}`, roles: ['r'] }, 'tool', `t${i}`), { allow: true, rule: 'rules[0]' });
    t.same(policy.decide({ subject: `user${i}`, roles: [] }, 'tool', `t${i}`), { allow: false, rule: 'default' });
  }
});

t.test('decisions are frozen and the caller cannot poison the cache', async (t) => {
  const policy = new AccessPolicy({ default: 'deny', rules: [] });
  const decision = policy.decide(nobody, 'tool', 'x');
  t.throws(() => { (decision as { allow: boolean }).allow = true; });
  t.same(policy.decide(nobody, 'tool', 'x'), { allow: false, rule: 'default' });
  const roles = ['admin'];
  const p2 = new AccessPolicy({ default: 'deny', rules: [{ roles: ['admin'], tools: ['*'], policy: 'allow' }] });
  t.ok(p2.decide({ subject: 's', roles }, 'tool', 'x').allow);
  t.same(roles, ['admin'], 'identity roles are not sorted in place');
});

t.test('bad rules fail at construction, naming the rule', async (t) => {
  const bad = (rules: AclConfig['rules']) => () => new AccessPolicy({ default: 'deny', rules });
  t.throws(bad([{ tools: ['ok__*'], policy: 'allow' }, { tools: ['x__['], policy: 'allow' }]), /acl\.rules\[1\]\.tools\[0\].*not a valid glob/);
  t.throws(bad([{ resources: ['!secret*'], policy: 'allow' }]), /acl\.rules\[0\]\.resources\[0\].*negated globs/);
  t.throws(bad([{ prompts: [''], policy: 'allow' }]), /acl\.rules\[0\]\.prompts\[0\]/);
  t.throws(bad([{ subjects: ['a{b'], tools: ['*'], policy: 'allow' }]), /acl\.rules\[0\]\.subjects\[0\]/);
  t.throws(bad([{ roles: ['admin'], policy: 'allow' }]), /at least one of/);
});

t.test('backend tool filters', async (t) => {
  const table: [string, Parameters<typeof compileToolFilter>[0], string, null | string][] = [
    ['no filter passes everything', {}, 'anything', null],
    ['empty lists pass everything', { allow: [], deny: [] }, 'anything', null],
    ['deny list', { deny: ['*_debug'] }, 'trace_debug', 'backend deny-list'],
    ['deny list passes others', { deny: ['*_debug'] }, 'trace', null],
    ['allow list', { allow: ['echo', 'add'] }, 'echo', null],
    ['allow list refuses others', { allow: ['echo', 'add'] }, 'longRunningOperation', 'backend allow-list'],
    ['deny wins over allow', { allow: ['*'], deny: ['rm*'] }, 'rm_rf', 'backend deny-list'],
    ['deny wins even when listed in allow exactly', { allow: ['rm'], deny: ['rm'] }, 'rm', 'backend deny-list'],
    ['allow passes when not denied', { allow: ['*'], deny: ['rm*'] }, 'ls', null],
  ];
  for (const [name, filter, tool, rule] of table) {
    const decision = compileToolFilter(filter)(tool);
    t.same(decision, rule === null ? null : { allow: false, rule }, name);
  }
  t.throws(() => compileToolFilter({ deny: ['a['] }), /tools\.deny\[0\]/);
});

t.test('a frozen identity keeps its own decisions, the same as an unfrozen one gets', async (t) => {
  const policy = new AccessPolicy(acl);
  const reference = new AccessPolicy(acl);
  const freeze = (who: Who) => Object.freeze({ subject: who.subject, roles: Object.freeze([...who.roles]) as string[] });
  for (const [name, who, kind, item] of cases) {
    const frozen = freeze(who);
    const first = policy.decide(frozen, kind, item);
    t.same(first, reference.decide({ subject: who.subject, roles: [...who.roles] }, kind, item), name);
    t.equal(policy.decide(frozen, kind, item), first, `${name}: the same decision object from the identity's cache`);
  }
  // Two frozen identities of the same subject with different roles never share a decision.
  const asAdmin = freeze({ subject: 'alice@example.com', roles: ['admin'] });
  const asUser = freeze({ subject: 'alice@example.com', roles: ['oauth-user'] });
  t.equal(policy.decide(asAdmin, 'tool', 'sentry__trace_debug').allow, true);
  t.equal(policy.decide(asUser, 'tool', 'sentry__trace_debug').allow, false);
  t.equal(policy.decide(asAdmin, 'tool', 'sentry__trace_debug').allow, true, 'still allowed for the admin identity');
  // A tool and a prompt of the same name are separate entries.
  const dev = freeze({ subject: 'dana@example.com', roles: ['dev'] });
  t.equal(policy.decide(dev, 'tool', 'everything__simple_prompt').allow, false);
  t.equal(policy.decide(dev, 'prompt', 'everything__simple_prompt').allow, true);
});
