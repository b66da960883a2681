/** A plugin's stdin is read whole up to a bound; more is refused in one line, not buffered. */
import t from 'tap';
import { Readable } from 'node:stream';
import { readStdin } from '../../src/util/stdin.js';

const fromText = (...chunks: string[]) =>
  Object.defineProperty(process, 'stdin', { value: Readable.from(chunks), configurable: true });

t.test('the whole input, up to the limit', async (t) => {
  fromText('{"a":', '1}');
  t.equal(await readStdin(16), '{"a":1}');
});

t.test('over the limit: refused', async (t) => {
  fromText('x'.repeat(10), 'y'.repeat(10));
  await t.rejects(readStdin(16), /over 16 bytes/);
});
