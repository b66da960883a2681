/** --rate values refused in one line: the unit test's cases, and seeds of the fuzzer's. */
export const BAD_RATES = [
  '',
  '-',
  '-/-',
  '10xbit',
  '1kbit',
  '101gbit',
  '10mbit/5mbit/1mbit',
  '10mbit:1b',
  '10mbit:2gb',
  '10kbit:900mb',
  '10mbit:32kb:1',
  'mbit',
  '1e6bit',
  '-10mbit',
];
