import t from 'tap';
import { MemoryStore } from '../../src/store/memory.js';
import { storeContract } from './store.suite.js';

storeContract(t, 'memory', async () => ({ store: new MemoryStore() }));

t.test('memory: the sweep removes expired entries without a read', async (t) => {
  const store = new MemoryStore({ sweepIntervalMs: 50 });
  t.teardown(() => store.close());
  await store.put('codes', 'c', { v: 1 }, 1);
  await new Promise((resolve) => setTimeout(resolve, 1_150));
  t.same(await store.list('codes'), [], 'swept');
});

t.test('memory: bad arguments are programming errors', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  await t.rejects(store.put('codes', 'c', { v: 1 }, 0), RangeError, 'a TTL must be positive');
  await t.rejects(store.put('codes', 'c', [] as never), TypeError, 'values are objects');
  await t.rejects(store.get('nope' as never, 'c'), TypeError, 'unknown namespace');
  await store.close();
  t.equal(await store.healthy(), false, 'unhealthy once closed');
  await t.rejects(store.get('codes', 'c'), /closed/, 'closed stores refuse work');
});
