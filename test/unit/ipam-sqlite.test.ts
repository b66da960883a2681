import t from 'tap';
import { Store } from '../../src/store/store.js';
import { SqliteLeaseBackend } from '../../src/ipam/sqlite-backend.js';
import { ipamSuite } from '../helpers/ipam-suite.js';

ipamSuite(t, async (t) => {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  return new SqliteLeaseBackend(store);
});
